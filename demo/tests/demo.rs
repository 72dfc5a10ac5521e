//! The README's main job keeps working: the same [`demo::run`] that `scripts/demo.sh` runs, against
//! the binaries `cargo build --workspace --bins` (or `cargo test --workspace`) put in the target dir.

use std::net::TcpStream;
use std::time::Duration;

use demo::{Binaries, BrokerKind, Outcome};

async fn run(broker: BrokerKind) -> Outcome {
    let binaries = Binaries::next_to_current_exe().unwrap();
    demo::run(broker, &binaries).await.unwrap()
}

/// What `run` checks already is checked here again from the outcome, so that a change making the
/// demo lenient does not go unnoticed.
fn assert_flowed(outcome: &Outcome) {
    assert_eq!(outcome.order["status"], "CONFIRMED", "{:#}", outcome.order);
    assert_eq!(outcome.invoice["orderId"], outcome.order["id"]);
    assert_eq!(outcome.invoice["total"]["amount"], "25.50");
    assert_eq!(outcome.invoice["total"]["currency"], "USD");
    let types: Vec<&str> = outcome
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["OrderCreated", "OrderConfirmed"]);
    for event in &outcome.events {
        assert_eq!(event.correlation_id, outcome.correlation_id);
        assert_eq!(event.destination, "outbox.event.order");
    }
    assert_eq!(outcome.invoice_event_id, outcome.events[1].id);
    assert_eq!(outcome.invoice_correlation_id, outcome.correlation_id);
    assert_saga(outcome);
}

/// `(input, outcome, to)` of each entry of the order's saga history.
fn history(order: &serde_json::Value) -> Vec<(String, String, String)> {
    order["saga"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |key: &str| e[key].as_str().unwrap().to_owned();
            (field("input"), field("outcome"), field("to"))
        })
        .collect()
}

fn entries(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

/// Both services and both relays took part: the invoice came back as `InvoiceIssued`, the cancellation
/// waited for `InvoiceVoided`, and the order over the credit limit was rejected and cancelled.
fn assert_saga(outcome: &Outcome) {
    let saga = &outcome.saga;
    assert_eq!(saga.invoiced["id"], outcome.order["id"]);
    assert_eq!(saga.invoiced["status"], "INVOICED");
    assert_eq!(saga.invoiced["saga"]["status"], "COMPLETED");
    assert_eq!(saga.cancelled["status"], "CANCELLED");
    assert_eq!(
        history(&saga.cancelled),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("InvoiceIssued", "applied", "INVOICED"),
            ("CancelRequested", "applied", "VOIDING"),
            ("InvoiceVoided", "applied", "CANCELLED"),
        ])
    );
    assert_eq!(saga.rejected["status"], "CANCELLED");
    assert_eq!(
        history(&saga.rejected),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("InvoiceRejected", "applied", "CANCELLED"),
        ])
    );
    assert!(saga.rejected_correlation_id.starts_with("demo-rejected-"));
}

/// Nothing the demo started still listens once it has returned.
fn assert_stopped(outcome: &Outcome) {
    for addr in &outcome.addresses {
        assert!(
            TcpStream::connect_timeout(addr, Duration::from_millis(500)).is_err(),
            "{addr} still accepts connections after the demo"
        );
    }
}

#[tokio::test]
async fn demo_with_redis_invoices_the_confirmed_order_and_cleans_up() {
    let outcome = run(BrokerKind::Redis).await;
    assert_flowed(&outcome);
    assert_stopped(&outcome);
}

#[tokio::test]
async fn demo_with_rabbitmq_invoices_the_confirmed_order_and_cleans_up() {
    let outcome = run(BrokerKind::RabbitMq).await;
    assert_flowed(&outcome);
    assert_stopped(&outcome);
}

/// Needs Tansu, as every Kafka test does (scripts/install-tansu.sh, or TANSU_BIN).
#[tokio::test]
async fn demo_with_kafka_invoices_the_confirmed_order_and_cleans_up() {
    let outcome = run(BrokerKind::Kafka).await;
    assert_flowed(&outcome);
    assert_stopped(&outcome);
}

/// The invoice-service down past the deadline: the order is cancelled once (`invoice-timeout`), the
/// late invoice is not applied but voided, so the cancelled order keeps no open invoice.
async fn timeout_path(broker: BrokerKind) {
    let binaries = Binaries::next_to_current_exe().unwrap();
    let outcome = demo::run_timeout(broker, &binaries).await.unwrap();
    assert_eq!(outcome.order["status"], "CANCELLED", "{:#}", outcome.order);
    assert_eq!(
        history(&outcome.order),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("DeadlinePassed", "applied", "CANCELLED"),
            ("InvoiceIssued", "late", "VOIDING_LATE_INVOICE"),
            ("InvoiceVoided", "applied", "CANCELLED"),
        ])
    );
    assert_eq!((outcome.invoices, outcome.credit_notes), (1, 1));
}

#[tokio::test]
async fn saga_timeout_with_redis_voids_the_late_invoice() {
    timeout_path(BrokerKind::Redis).await;
}

#[tokio::test]
async fn saga_timeout_with_rabbitmq_voids_the_late_invoice() {
    timeout_path(BrokerKind::RabbitMq).await;
}

#[tokio::test]
async fn saga_timeout_with_kafka_voids_the_late_invoice() {
    timeout_path(BrokerKind::Kafka).await;
}

/// 50 sagas while the order-service, the invoice-service and both relays are killed with SIGKILL and
/// started again: every saga ends in one terminal state, no order is compensated twice, and no
/// cancelled order keeps an open invoice (checked across both databases).
async fn chaos(broker: BrokerKind) {
    let binaries = Binaries::next_to_current_exe().unwrap();
    let outcome = demo::run_chaos(broker, &binaries, 50, 6).await.unwrap();
    println!("{outcome:?}");
    assert!(outcome.violations.is_empty(), "{:#?}", outcome.violations);
    assert_eq!(outcome.sagas, 50);
    assert_eq!(outcome.invoiced + outcome.cancelled, 50);
    // Every fourth order is over the credit limit and can only end cancelled.
    assert!(outcome.cancelled >= 12, "{outcome:?}");
    assert_eq!(outcome.kills.len(), 6);
}

#[tokio::test]
async fn saga_chaos_with_redis_ends_every_saga_once() {
    chaos(BrokerKind::Redis).await;
}

#[tokio::test]
async fn saga_chaos_with_rabbitmq_ends_every_saga_once() {
    chaos(BrokerKind::RabbitMq).await;
}

#[tokio::test]
async fn saga_chaos_with_kafka_ends_every_saga_once() {
    chaos(BrokerKind::Kafka).await;
}
