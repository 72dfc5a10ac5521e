//! The order-service's consumer of the invoice-service's replies against a real PostgreSQL and Redis
//! Streams, messages written as the relay's Redis sink writes them: a reply moves its saga once however
//! often it is delivered, other event types are acknowledged, and what cannot be taken is dead-lettered
//! with its reason while consumption goes on.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use brokers::{Messaging, Mode};
use chrono::Utc;
use contracts::{Event, InvoiceIssuedV1, InvoiceRejectedV1, Money};
use order_service::service::OrderService;
use redis::AsyncCommands;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::App;
use uuid::Uuid;

/// Appends a message to `stream` as the relay's Redis sink does.
async fn xadd(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    id: Uuid,
    event_type: &str,
    aggregate_id: Uuid,
    payload: &str,
) {
    let headers = json!({"event_version": "1", "correlation_id": format!("corr-{id}")}).to_string();
    let (id, aggregate_id) = (id.to_string(), aggregate_id.to_string());
    let fields = [
        ("id", id.as_str()),
        ("aggregatetype", "invoice"),
        ("aggregateid", aggregate_id.as_str()),
        ("type", event_type),
        ("payload", payload),
        ("headers", headers.as_str()),
    ];
    let _: String = connection.xadd(stream, "*", &fields).await.unwrap();
}

async fn publish<E: Event>(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    id: Uuid,
    event: &E,
) {
    let payload = serde_json::to_string(event).unwrap();
    xadd(
        connection,
        stream,
        id,
        E::EVENT_TYPE,
        event.aggregate_id(),
        &payload,
    )
    .await;
}

async fn confirmed(app: &App) -> (Uuid, Uuid) {
    let order = app.create_order().await;
    let id = order["id"].as_str().unwrap();
    app.post(&format!("/orders/{id}/confirm")).await;
    (
        id.parse().unwrap(),
        order["customerId"].as_str().unwrap().parse().unwrap(),
    )
}

async fn order(app: &App, id: Uuid) -> Value {
    app.get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

fn issued(order_id: Uuid, customer_id: Uuid) -> InvoiceIssuedV1 {
    InvoiceIssuedV1 {
        order_id,
        customer_id,
        invoice_id: Uuid::new_v4(),
        invoice_number: "INV-2026-000001".to_owned(),
        total: Money {
            amount: Decimal::new(3099, 2),
            currency: "USD".to_owned(),
        },
        issued_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replies_are_taken_once_and_the_rest_acknowledged_or_dead_lettered() {
    let app = App::start().await;
    let url = harness::Redis::shared().unwrap();
    let stream = harness::unique("outbox.event.invoice");
    let mut messaging = Messaging::local(Mode::Redis, &stream, &harness::unique("order-service"));
    messaging.redis.url = url.clone();
    let dead_letters = messaging.dead_letter_destination.clone();
    let consumer = tokio::spawn(order_service::consumer::run(
        messaging,
        OrderService::new(app.pool.clone()),
    ));
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let (invoiced, customer) = confirmed(&app).await;
    let (rejected, other_customer) = confirmed(&app).await;
    let reply_id = Uuid::new_v4();
    let invoice = issued(invoiced, customer);
    publish(&mut redis, &stream, reply_id, &invoice).await;
    publish(&mut redis, &stream, reply_id, &invoice).await;
    xadd(
        &mut redis,
        &stream,
        Uuid::new_v4(),
        "InvoiceIssued",
        invoiced,
        "{}",
    )
    .await;
    xadd(
        &mut redis,
        &stream,
        Uuid::new_v4(),
        "InvoiceDrafted",
        invoiced,
        "{}",
    )
    .await;
    let stranger = Uuid::new_v4();
    publish(
        &mut redis,
        &stream,
        Uuid::new_v4(),
        &issued(stranger, customer),
    )
    .await;
    let rejection = InvoiceRejectedV1 {
        order_id: rejected,
        customer_id: other_customer,
        reason: "credit-limit-exceeded".to_owned(),
        detail: None,
        rejected_at: Utc::now(),
    };
    publish(&mut redis, &stream, Uuid::new_v4(), &rejection).await;

    // The stream is consumed in order: the last reply taken means every earlier one was handled.
    harness::poll_until(Duration::from_secs(60), "the rejection taken", || async {
        order(&app, rejected).await["status"] == "CANCELLED"
    })
    .await
    .unwrap();
    let invoiced_order = order(&app, invoiced).await;
    assert_eq!(invoiced_order["status"], "INVOICED");
    let inputs: Vec<&str> = invoiced_order["saga"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["input"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["Started", "InvoiceIssued"]);
    assert_eq!(app.count("processed_events").await, 2);

    let letters: redis::streams::StreamRangeReply = redis.xrange_all(&dead_letters).await.unwrap();
    let reasons: Vec<BTreeMap<String, String>> = letters
        .ids
        .into_iter()
        .map(|entry| {
            entry
                .map
                .into_iter()
                .filter(|(key, _)| key.starts_with("dlq_") || key == "aggregateid")
                .map(|(key, value)| (key, redis::from_redis_value(value).unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0]["dlq_reason"], "invalid-payload");
    assert_eq!(reasons[1]["dlq_reason"], "unknown-saga");
    assert_eq!(reasons[1]["aggregateid"], stranger.to_string());
    consumer.abort();
}
