//! The invoice-service's replies as the order-service takes them, against a real PostgreSQL: each
//! contract's payload, as its producer writes it, decodes to the saga input it is and moves the saga;
//! a redelivery (same event id) is recorded in `processed_events` once and changes nothing, while a
//! second reply with a new id is the saga's to judge.

mod support;

use std::collections::BTreeMap;

use chrono::Utc;
use contracts::{Event, InvoiceIssuedV1, InvoiceRejectedV1, InvoiceVoidedV1, Money};
use order_service::replies::{self, Reply};
use order_service::saga::Outcome;
use order_service::service::OrderService;
use rust_decimal::Decimal;
use serde_json::Value;
use support::App;
use uuid::Uuid;

/// The message the relay publishes for `event`: its headers and payload.
fn message<E: Event>(event: &E, event_id: Uuid) -> (BTreeMap<String, String>, String) {
    let headers = [
        ("type", E::EVENT_TYPE.to_owned()),
        ("id", event_id.to_string()),
        ("aggregatetype", E::AGGREGATE_TYPE.to_owned()),
        ("aggregateid", event.aggregate_id().to_string()),
        (contracts::VERSION_HEADER, E::VERSION.to_owned()),
        (contracts::CORRELATION_HEADER, "c-1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (headers, serde_json::to_string(event).unwrap())
}

fn reply_of<E: Event>(event: &E) -> Reply {
    let (headers, payload) = message(event, Uuid::new_v4());
    replies::decode(&headers, &payload).unwrap().unwrap()
}

fn total() -> Money {
    Money {
        amount: Decimal::new(3099, 2),
        currency: "USD".to_owned(),
    }
}

fn issued(order_id: Uuid, customer_id: Uuid) -> InvoiceIssuedV1 {
    InvoiceIssuedV1 {
        order_id,
        customer_id,
        invoice_id: Uuid::new_v4(),
        invoice_number: "INV-2026-000001".to_owned(),
        total: total(),
        issued_at: Utc::now(),
    }
}

/// A confirmed order's id and customer.
async fn confirmed(app: &App) -> (Uuid, Uuid) {
    let order = app.create_order().await;
    let id = order["id"].as_str().unwrap();
    app.post(&format!("/orders/{id}/confirm")).await;
    (
        id.parse().unwrap(),
        order["customerId"].as_str().unwrap().parse().unwrap(),
    )
}

async fn status(app: &App, id: Uuid) -> Value {
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    order["status"].clone()
}

#[tokio::test]
async fn each_reply_as_its_producer_writes_it_moves_the_saga() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());

    let (invoiced, customer) = confirmed(&app).await;
    let taken = service
        .take_reply(&reply_of(&issued(invoiced, customer)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.outcome, Outcome::Applied);
    assert_eq!(status(&app, invoiced).await, "INVOICED");

    app.post(&format!("/orders/{invoiced}/cancel")).await;
    let voided = InvoiceVoidedV1 {
        order_id: invoiced,
        customer_id: customer,
        invoice_id: Uuid::new_v4(),
        credit_note_number: "CN-2026-000001".to_owned(),
        credited: total(),
        voided_at: Utc::now(),
    };
    service
        .take_reply(&reply_of(&voided))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&app, invoiced).await, "CANCELLED");

    let (rejected, customer) = confirmed(&app).await;
    let rejection = InvoiceRejectedV1 {
        order_id: rejected,
        customer_id: customer,
        reason: "credit-limit-exceeded".to_owned(),
        detail: None,
        rejected_at: Utc::now(),
    };
    service
        .take_reply(&reply_of(&rejection))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&app, rejected).await, "CANCELLED");
    assert_eq!(app.count("processed_events").await, 3);
}

#[tokio::test]
async fn a_redelivered_reply_is_taken_once_and_a_new_one_is_judged_by_the_saga() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let (id, customer) = confirmed(&app).await;
    let reply = reply_of(&issued(id, customer));

    let results = futures::future::join_all((0..4).map(|_| service.take_reply(&reply))).await;
    let taken: Vec<Outcome> = results
        .into_iter()
        .filter_map(|result| result.unwrap().map(|taken| taken.outcome))
        .collect();
    assert_eq!(taken, [Outcome::Applied]);
    assert!(service.take_reply(&reply).await.unwrap().is_none());

    let again = service
        .take_reply(&reply_of(&issued(id, customer)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate);

    let outcomes: Vec<(String, String)> = app
        .db
        .query(
            "SELECT event_type, outcome FROM processed_events ORDER BY processed_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("InvoiceIssued".to_owned(), "applied".to_owned()),
            ("InvoiceIssued".to_owned(), "duplicate".to_owned())
        ]
    );
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["saga"]["version"], 3);
    assert_eq!(
        order["saga"]["history"][1]["eventId"],
        reply.event_id.to_string()
    );
}
