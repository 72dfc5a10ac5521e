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

/// The log lines of `log` that carry `id` and say `message`, each also saying every one of `also`.
fn lines_with<'a>(log: &'a str, id: &str, message: &str, also: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| line.contains(id) && line.contains(message))
        .filter(|line| also.iter().all(|word| line.contains(word)))
        .collect()
}

/// Requests without `X-Correlation-Id`: the id `POST /orders` generated is the order's own, the later
/// requests about the order answer with it, and grepping it in both services' logs finds every step of
/// the saga on each side: the command written, the reply consumed, the state it led to.
#[tokio::test]
async fn the_orders_own_correlation_id_follows_its_saga_through_both_services_logs() {
    let binaries = Binaries::next_to_current_exe().unwrap();
    let outcome = demo::run_uncorrelated(BrokerKind::Redis, &binaries)
        .await
        .unwrap();
    let id = outcome.order_correlation_id.as_str();
    assert_eq!(outcome.confirm_correlation_id, id);
    assert_eq!(outcome.cancel_correlation_id, id);
    let order_log = outcome.order_service_log.as_str();
    let invoice_log = outcome.invoice_service_log.as_str();
    for (log, message, also) in [
        (order_log, "order placed", &[][..]),
        (order_log, "saga effect written", &["IssueInvoice"][..]),
        (
            order_log,
            "order confirmed; saga started",
            &["INVOICING"][..],
        ),
        (invoice_log, "invoiced", &["OrderConfirmed"][..]),
        (order_log, "reply taken", &["InvoiceIssued"][..]),
        (
            order_log,
            "saga input taken",
            &["InvoiceIssued", "INVOICED"][..],
        ),
        (
            order_log,
            "saga input taken",
            &["CancelRequested", "VOIDING"][..],
        ),
        (order_log, "saga effect written", &["VoidInvoice"][..]),
        (
            invoice_log,
            "cancellation request handled",
            &["OrderCancellationRequested"][..],
        ),
        (order_log, "reply taken", &["InvoiceVoided"][..]),
        (
            order_log,
            "saga input taken",
            &["InvoiceVoided", "CANCELLED"][..],
        ),
    ] {
        assert!(
            !lines_with(log, id, message, also).is_empty(),
            "no line with {id} says {message:?} and {also:?}:\n{log}"
        );
    }
}
