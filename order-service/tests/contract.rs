//! Contract tests: every event the order-service writes to the outbox validates against its schema in
//! the `contracts` crate, with the headers and columns the relay and the consumers rely on.

mod support;

use contracts::{CORRELATION_HEADER, VERSION_HEADER};
use support::{App, OutboxRow};

fn assert_valid(event: &OutboxRow, order_id: &str) {
    contracts::validate(
        &event.event_type,
        event.header(VERSION_HEADER),
        &event.payload,
    )
    .unwrap_or_else(|e| panic!("{}: {e}\n{}", event.event_type, event.payload));
    assert_eq!(event.header(VERSION_HEADER), Some("1"));
    assert!(event.header(CORRELATION_HEADER).is_some());
    assert_eq!(event.aggregatetype, "order");
    assert_eq!(event.aggregateid, order_id);
    // Header values are strings, as the relay expects.
    assert!(event
        .headers
        .as_object()
        .unwrap()
        .values()
        .all(|v| v.is_string()));
}

#[tokio::test]
async fn created_confirmed_and_cancelled_events_match_their_schemas() {
    let app = App::start().await;
    let confirmed = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{confirmed}/confirm")).await;
    let cancelled = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{cancelled}/cancel")).await;

    let mut seen = Vec::new();
    for id in [&confirmed, &cancelled] {
        for event in app.events_of(id).await {
            assert_valid(&event, id);
            seen.push(event.event_type);
        }
    }
    assert_eq!(
        seen,
        [
            "OrderCreated",
            "OrderConfirmed",
            "OrderCreated",
            "OrderCancelled"
        ]
    );
}

#[tokio::test]
async fn a_consumer_decodes_the_confirmed_event_to_the_order_it_saw() {
    let app = App::start().await;
    let order = app.create_order().await;
    let id = order["id"].as_str().unwrap();
    app.post(&format!("/orders/{id}/confirm")).await;
    let events = app.events_of(id).await;
    let confirmed = &events[1];
    let decoded =
        contracts::decode_order_confirmed(confirmed.header(VERSION_HEADER), &confirmed.payload)
            .unwrap();
    assert_eq!(decoded.order_id.to_string(), id);
    assert_eq!(decoded.customer_id.to_string(), order["customerId"]);
    assert_eq!(decoded.total.amount.to_string(), "30.99");
    assert_eq!(decoded.total.currency, "USD");
    assert_eq!(decoded.lines.len(), 2);
    assert_eq!(decoded.lines[0].unit_price.to_string(), "10.00");
    assert_eq!(decoded.sales_channel, contracts::UNKNOWN_SALES_CHANNEL);
    let created =
        contracts::decode_order_created(events[0].header(VERSION_HEADER), &events[0].payload)
            .unwrap();
    assert_eq!(created.lines, decoded.lines);
}
