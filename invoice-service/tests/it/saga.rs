//! The invoice-service's side of the saga against real servers: under a credit limit it answers each
//! `OrderConfirmed` with `InvoiceIssued` or `InvoiceRejected`, voids an invoice on
//! `OrderCancellationRequested` with one credit note (answering a repeated request again), and writes
//! every answer to its own outbox in the relay's DDL, valid against its contract and keyed by the order.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{eventually, Setup, WireEvent};

/// An `OrderConfirmed` v2 of 25.50 USD for `customer`.
fn confirmed_for(customer: Uuid) -> WireEvent {
    let event = WireEvent::order_confirmed("2");
    let mut payload: Value = serde_json::from_str(&event.payload).unwrap();
    payload["customerId"] = json!(customer);
    event.with_payload(&payload.to_string())
}

fn cancellation_requested(order_id: Uuid, customer: Uuid) -> WireEvent {
    WireEvent {
        id: Uuid::new_v4(),
        event_type: "OrderCancellationRequested".to_owned(),
        aggregate_id: order_id,
        row_headers: vec![
            (
                "correlation_id".to_owned(),
                format!("corr-{}", Uuid::new_v4()),
            ),
            ("event_version".to_owned(), "1".to_owned()),
        ],
        payload: json!({
            "orderId": order_id,
            "customerId": customer,
            "reason": "requested",
            "requestedAt": "2026-12-06T10:00:00Z"
        })
        .to_string(),
    }
}

fn correlation(event: &WireEvent) -> &str {
    event
        .row_headers
        .iter()
        .find(|(name, _)| name == "correlation_id")
        .map(|(_, value)| value.as_str())
        .unwrap()
}

/// One row of the service's outbox.
#[derive(Debug)]
struct Reply {
    event_type: String,
    aggregatetype: String,
    aggregateid: String,
    payload: Value,
    headers: Value,
}

async fn outbox(setup: &Setup) -> Vec<Reply> {
    let client = setup.pg.client().await.unwrap();
    client
        .query(
            "select type, aggregatetype, aggregateid, payload::text, headers from outbox order by seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Reply {
            event_type: row.get(0),
            aggregatetype: row.get(1),
            aggregateid: row.get(2),
            payload: serde_json::from_str(row.get::<_, &str>(3)).unwrap(),
            headers: row.get(4),
        })
        .collect()
}

/// Customer C may owe 30.00 USD: A (25.50) is invoiced, B (25.50 more) rejected; A's invoice is voided
/// twice over (one credit note, two answers); B redelivered changes nothing; D (25.50) is invoiced, the
/// void having freed the credit.
pub async fn answers_go_to_the_services_own_outbox(mut setup: Setup) {
    setup.config.credit_limit = Some("30.00".parse().unwrap());
    setup.start().await;
    let customer = Uuid::new_v4();
    let a = confirmed_for(customer);
    let b = confirmed_for(customer);
    let void_a = cancellation_requested(a.aggregate_id, customer);
    let void_a_again = cancellation_requested(a.aggregate_id, customer);
    let d = confirmed_for(customer);
    for event in [&a, &b, &void_a, &void_a_again, &b, &d] {
        setup.publish(event).await;
    }
    // Each broker delivers this test's messages in publish order.
    setup.wait_for_invoice(d.aggregate_id).await;
    let invoice_a = setup.wait_for_invoice(a.aggregate_id).await;
    assert!(setup.invoices_for(b.aggregate_id).await.is_empty());
    assert_eq!(setup.count("processed_events").await, 5);
    assert_eq!(setup.count("credit_notes").await, 1);
    assert_eq!(setup.count("invoices").await, 2);

    let replies = outbox(&setup).await;
    let summary: Vec<(&str, Uuid)> = replies
        .iter()
        .map(|r| (r.event_type.as_str(), r.aggregateid.parse().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("InvoiceIssued", a.aggregate_id),
            ("InvoiceRejected", b.aggregate_id),
            ("InvoiceVoided", a.aggregate_id),
            ("InvoiceVoided", a.aggregate_id),
            ("InvoiceIssued", d.aggregate_id),
        ]
    );
    for (reply, cause) in replies.iter().zip([&a, &b, &void_a, &void_a_again, &d]) {
        let version = reply.headers["event_version"].as_str();
        contracts::validate(&reply.event_type, version, &reply.payload.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", reply.event_type, reply.payload));
        assert_eq!(version, Some("1"));
        assert_eq!(reply.aggregatetype, contracts::INVOICE_AGGREGATE_TYPE);
        assert_eq!(reply.headers["correlation_id"], correlation(cause));
        assert_eq!(reply.payload["customerId"], json!(customer));
    }
    let issued =
        contracts::decode_invoice_issued(Some("1"), &replies[0].payload.to_string()).unwrap();
    assert_eq!(json!(issued.invoice_id), invoice_a["id"]);
    assert_eq!(json!(issued.invoice_number), invoice_a["number"]);
    assert_eq!(issued.total.amount.to_string(), "25.50");
    let rejected =
        contracts::decode_invoice_rejected(Some("1"), &replies[1].payload.to_string()).unwrap();
    assert_eq!(rejected.reason, "credit-limit-exceeded");
    assert_eq!(
        rejected.detail.as_deref(),
        Some(
            "open invoices 25.50 USD plus this order's 25.50 USD exceed the credit limit 30.00 USD"
        )
    );
    let voided: Vec<_> = replies[2..4]
        .iter()
        .map(|r| contracts::decode_invoice_voided(Some("1"), &r.payload.to_string()).unwrap())
        .collect();
    assert_eq!(voided[0].credit_note_number, voided[1].credit_note_number);
    assert!(voided[0].credit_note_number.starts_with("CN-"));
    assert_eq!(json!(voided[0].invoice_id), invoice_a["id"]);
    assert_eq!(voided[0].credited.amount.to_string(), "25.50");
    setup.stop().await;
}

/// A request to void an order that has no invoice (here: rejected) is recorded and answers nothing.
pub async fn nothing_to_void_answers_nothing(mut setup: Setup) {
    setup.config.credit_limit = Some("0".parse().unwrap());
    setup.start().await;
    let customer = Uuid::new_v4();
    let rejected = confirmed_for(customer);
    setup.publish(&rejected).await;
    setup
        .publish(&cancellation_requested(rejected.aggregate_id, customer))
        .await;
    eventually("both events processed", || async {
        (setup.count("processed_events").await == 2).then_some(())
    })
    .await;
    let types: Vec<String> = outbox(&setup)
        .await
        .into_iter()
        .map(|r| r.event_type)
        .collect();
    assert_eq!(types, ["InvoiceRejected"]);
    assert_eq!(setup.count("credit_notes").await, 0);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_go_to_the_services_own_outbox() {
    answers_go_to_the_services_own_outbox(Setup::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_answers_go_to_the_services_own_outbox() {
    answers_go_to_the_services_own_outbox(Setup::rabbitmq()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_answers_go_to_the_services_own_outbox() {
    answers_go_to_the_services_own_outbox(Setup::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_nothing_to_void_answers_nothing() {
    nothing_to_void_answers_nothing(Setup::redis()).await;
}

/// The relay's DDL in relay/sql/ is the wire contract for the outbox table; the migration carries a
/// copy (after its comment lines) so this crate builds on its own.
#[test]
fn the_outbox_migration_is_the_relays_ddl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let relay: String = ["outbox.sql", "outbox_polling.sql"]
        .iter()
        .map(|file| fs::read_to_string(root.join("../relay/sql").join(file)).unwrap())
        .collect();
    let migration = fs::read_to_string(root.join("migrations/0002_outbox.sql")).unwrap();
    let ddl: String = migration
        .lines()
        .skip_while(|line| line.starts_with("--"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(ddl, relay);
}
