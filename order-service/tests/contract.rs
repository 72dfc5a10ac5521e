//! Contract tests: every event the order-service writes to the outbox validates against its schema in
//! the `contracts` crate, with the headers and columns the relay and the consumers rely on.

mod support;

use contracts::{CORRELATION_HEADER, VERSION_HEADER};
use order_service::saga::Input;
use order_service::service::OrderService;
use support::{App, OutboxRow};
use uuid::Uuid;

/// The version the order-service writes of each event type.
fn written_version(event_type: &str) -> &'static str {
    match event_type {
        "OrderCancelled" => "2",
        _ => "1",
    }
}

fn assert_valid(event: &OutboxRow, order_id: &str) {
    contracts::validate(
        &event.event_type,
        event.header(VERSION_HEADER),
        &event.payload,
    )
    .unwrap_or_else(|e| panic!("{}: {e}\n{}", event.event_type, event.payload));
    assert_eq!(
        event.header(VERSION_HEADER),
        Some(written_version(&event.event_type))
    );
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

#[tokio::test]
async fn a_consumer_decodes_the_cancelled_event_with_its_reason() {
    let app = App::start().await;
    let id = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{id}/cancel")).await;
    let events = app.events_of(&id).await;
    let cancelled =
        contracts::decode_order_cancelled(events[1].header(VERSION_HEADER), &events[1].payload)
            .unwrap();
    assert_eq!(cancelled.order_id.to_string(), id);
    assert_eq!(cancelled.reason, "requested");
}

#[tokio::test]
async fn the_sagas_commands_and_compensations_match_their_schemas() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let rejected = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{rejected}/confirm")).await;
    let rejected_id = rejected.parse().unwrap();
    service
        .take(rejected_id, Input::InvoiceRejected, Some(Uuid::new_v4()))
        .await
        .unwrap();
    service
        .take(rejected_id, Input::InvoiceIssued, Some(Uuid::new_v4()))
        .await
        .unwrap();
    let voided = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{voided}/confirm")).await;
    let voided_id = voided.parse().unwrap();
    service
        .take(voided_id, Input::InvoiceIssued, Some(Uuid::new_v4()))
        .await
        .unwrap();
    app.post(&format!("/orders/{voided}/cancel")).await;
    service
        .take(voided_id, Input::InvoiceVoided, Some(Uuid::new_v4()))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for id in [&rejected, &voided] {
        for event in app.events_of(id).await {
            assert_valid(&event, id);
            if event.event_type.starts_with("OrderCancel") {
                let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
                seen.push(format!("{} {}", event.event_type, payload["reason"]));
            }
        }
    }
    assert_eq!(
        seen,
        [
            r#"OrderCancelled "invoice-rejected""#,
            r#"OrderCancellationRequested "late-invoice""#,
            r#"OrderCancellationRequested "requested""#,
            r#"OrderCancelled "requested""#,
        ]
    );
}
