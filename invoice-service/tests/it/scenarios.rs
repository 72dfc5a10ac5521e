//! The behaviour every broker must show, written once; `kafka`, `rabbitmq` and `redis` run each
//! scenario against their broker.

use chrono::{Datelike, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{Setup, WireEvent};

/// One invoice per event, v1 upcast (sales channel "unknown") and v2 as sent, each served by both
/// GET endpoints.
pub async fn v1_and_v2_each_produce_one_invoice(mut setup: Setup) {
    setup.start().await;
    let v1 = WireEvent::order_confirmed("1");
    let v2 = WireEvent::order_confirmed("2");
    setup.publish(&v1).await;
    setup.publish(&v2).await;

    let first = setup.wait_for_invoice(v1.aggregate_id).await;
    let second = setup.wait_for_invoice(v2.aggregate_id).await;
    assert_eq!(first["salesChannel"], "unknown");
    assert_eq!(second["salesChannel"], "web");
    let year = Utc::now().year();
    let mut numbers = vec![first["number"].clone(), second["number"].clone()];
    numbers.sort_by_key(ToString::to_string);
    assert_eq!(
        numbers,
        [
            json!(format!("INV-{year}-000001")),
            json!(format!("INV-{year}-000002"))
        ]
    );
    for invoice in [&first, &second] {
        assert_eq!(invoice["currency"], "USD");
        assert_eq!(
            invoice["total"],
            json!({"amount": "25.50", "currency": "USD"})
        );
        let lines = invoice["lines"].as_array().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["quantity"], 2);
        assert_eq!(lines[0]["unitPrice"], "10.00");
        assert_eq!(lines[0]["lineTotal"], "20.00");
        assert_eq!(lines[1]["lineTotal"], "5.50");
        assert!(invoice["issuedAt"].as_str().is_some(), "{invoice}");

        let (status, content_type, body) = setup
            .get(&format!("/invoices/{}", invoice["id"].as_str().unwrap()))
            .await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert_eq!(&serde_json::from_str::<Value>(&body).unwrap(), invoice);
    }
    assert_eq!(first["orderId"], json!(v1.aggregate_id));
    assert_eq!(
        first["customerId"],
        serde_json::from_str::<Value>(&v1.payload).unwrap()["customerId"]
    );
    assert_eq!(setup.count("processed_events").await, 2);
    setup.stop().await;
}

/// The same event twice, then a second event about the same order: one invoice.
pub async fn a_redelivered_event_produces_one_invoice(mut setup: Setup) {
    setup.start().await;
    let event = WireEvent::order_confirmed("2");
    let mut other_event_same_order = event.clone();
    other_event_same_order.id = Uuid::new_v4();
    setup.publish(&event).await;
    setup.publish(&event).await;
    setup.publish(&other_event_same_order).await;
    // Published last, so once it is invoiced everything before it has been handled.
    let sentinel = WireEvent::order_confirmed("1");
    setup.publish(&sentinel).await;

    setup.wait_for_invoice(sentinel.aggregate_id).await;
    assert_eq!(setup.invoices_for(event.aggregate_id).await.len(), 1);
    assert_eq!(setup.count("invoices").await, 2);
    let client = setup.pg.client().await.unwrap();
    let outcomes: Vec<(Uuid, String)> = client
        .query("select event_id, outcome from processed_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(outcomes.contains(&(event.id, "invoiced".to_owned())));
    assert!(outcomes.contains(&(
        other_event_same_order.id,
        "order-already-invoiced".to_owned()
    )));
    setup.stop().await;
}

/// A malformed payload and an unknown major version are dead-lettered with their reasons; an
/// `OrderCreated` is skipped; the valid event after them is invoiced.
pub async fn poison_events_are_dead_lettered_and_consumption_continues(mut setup: Setup) {
    setup.start().await;
    let malformed = WireEvent::order_confirmed("1").with_payload(r#"{"orderId": 42"#);
    let unknown_version = WireEvent::order_confirmed("2").with_version("9");
    let created = WireEvent::order_created();
    let good = WireEvent::order_confirmed("2");
    for event in [&malformed, &unknown_version, &created, &good] {
        setup.publish(event).await;
    }

    setup.wait_for_invoice(good.aggregate_id).await;
    let letters = setup.dead_letters(2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let letter = |event: &WireEvent| {
        letters
            .iter()
            .find(|letter| letter.headers.get("id") == Some(&event.id.to_string()))
            .unwrap_or_else(|| panic!("no dead letter for {}: {letters:?}", event.id))
    };
    let bad_json = letter(&malformed);
    assert_eq!(bad_json.headers["dlq_reason"], "invalid-payload");
    assert!(
        bad_json.headers["dlq_detail"].contains("not JSON"),
        "{bad_json:?}"
    );
    assert_eq!(bad_json.payload, malformed.payload);
    assert_eq!(bad_json.headers["type"], "OrderConfirmed");
    let version_9 = letter(&unknown_version);
    assert_eq!(version_9.headers["dlq_reason"], "unknown-version");
    assert!(
        version_9.headers["dlq_detail"].contains("\"9\""),
        "{version_9:?}"
    );
    assert_eq!(version_9.headers["event_version"], "9");
    assert_eq!(version_9.payload, unknown_version.payload);

    for skipped in [&malformed, &unknown_version, &created] {
        assert!(setup.invoices_for(skipped.aggregate_id).await.is_empty());
    }
    assert_eq!(setup.count("invoices").await, 1);
    assert_eq!(setup.count("processed_events").await, 1);
    setup.stop().await;
}
