//! The `order-service` binary as deployed: configured by environment, migrating at start, waiting for
//! its database, a correlation id on every log line of a request, and a graceful stop on SIGTERM that
//! finishes the request in flight, and, when enabled, saga deadlines that cancel an order nobody
//! invoiced.

use std::process::Command;
use std::time::Duration;

use futures::channel::mpsc;
use futures::SinkExt;
use harness::{Postgres, Process};
use serde_json::{json, Value};
use uuid::Uuid;

/// Log messages that belong to the process, not to a request.
const LIFECYCLE: &[&str] = &[
    "applied migration",
    "database schema up to date",
    "database not reachable yet; retrying",
    "serving HTTP",
    "saga deadlines are recorded but not enforced",
    "no MESSAGING_MODE: the invoice-service's replies are not consumed",
    "SIGTERM received; shutting down",
    "stopped",
];

struct Service {
    process: Process,
    base: String,
}

fn start(postgres: &Postgres) -> Service {
    start_with(postgres, &[])
}

fn start_with(postgres: &Postgres, env: &[(&str, &str)]) -> Service {
    let port = harness::free_port().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_order-service"));
    command
        .env("DATABASE_URL", postgres.url())
        .env("ORDER_SERVICE_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("MESSAGING_MODE")
        .envs(env.iter().copied());
    Service {
        process: Process::start(command).unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_healthy(service: &Service) {
    let url = format!("{}/health", service.base);
    harness::poll_until(Duration::from_secs(60), "order-service health", || async {
        matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
    })
    .await
    .unwrap();
}

fn order() -> Value {
    json!({
        "customerId": Uuid::new_v4(),
        "lines": [{"productId": Uuid::new_v4(), "quantity": 2, "unitPrice": "5.00", "currency": "EUR"}]
    })
}

fn log_lines(process: &Process) -> Vec<Value> {
    process
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_request_carries_its_correlation_id() {
    let postgres = Postgres::start().unwrap();
    let service = start(&postgres);
    wait_healthy(&service).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/orders", service.base))
        .header("X-Correlation-Id", "trace-create")
        .json(&order())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    for correlation in ["trace-confirm", "trace-confirm-again"] {
        http.post(format!("{}/orders/{id}/confirm", service.base))
            .header("X-Correlation-Id", correlation)
            .send()
            .await
            .unwrap();
    }
    http.post(format!("{}/orders", service.base))
        .header("X-Correlation-Id", "trace-invalid")
        .json(&json!({"lines": []}))
        .send()
        .await
        .unwrap();

    let lines = log_lines(&service.process);
    let of = |correlation: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|line| line["span"]["correlation_id"] == correlation)
            .map(message)
            .collect()
    };
    assert_eq!(of("trace-create"), ["order placed", "request finished"]);
    assert_eq!(
        of("trace-confirm"),
        [
            "saga effect written",
            "order confirmed; saga started",
            "request finished"
        ]
    );
    assert_eq!(
        of("trace-confirm-again"),
        ["order already in that state; no event", "request finished"]
    );
    assert_eq!(of("trace-invalid"), ["request finished"]);
    for line in &lines {
        if !LIFECYCLE.contains(&message(line)) {
            assert!(
                line["span"]["correlation_id"].is_string(),
                "a log line outside any request span: {line}"
            );
        }
    }
    // The order id appears only on lines that also carry the correlation id.
    let with_order: Vec<&Value> = lines
        .iter()
        .filter(|line| line["fields"]["order_id"] == id)
        .collect();
    assert_eq!(with_order.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_waits_for_its_database_and_migrates_once() {
    let mut postgres = Postgres::start().unwrap();
    postgres.stop().unwrap();
    let mut first = start(&postgres);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        first.process.exited().unwrap().is_none(),
        "{}",
        first.process.log()
    );
    postgres.start_again().unwrap();
    wait_healthy(&first).await;
    let messages: Vec<String> = log_lines(&first.process)
        .iter()
        .map(|line| message(line).to_owned())
        .collect();
    assert!(messages.contains(&"database not reachable yet; retrying".to_owned()));
    assert_eq!(
        messages
            .iter()
            .filter(|m| *m == "applied migration")
            .count(),
        order_service::store::MIGRATIONS.len()
    );
    first.process.terminate().unwrap();
    first.process.wait_timeout(Duration::from_secs(10)).unwrap();

    let second = start(&postgres);
    wait_healthy(&second).await;
    let lines = log_lines(&second.process);
    assert!(lines
        .iter()
        .all(|line| message(line) != "applied migration"));
    let up_to_date = lines
        .iter()
        .find(|line| message(line) == "database schema up to date")
        .unwrap();
    assert_eq!(up_to_date["fields"]["applied"], "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits_cleanly() {
    let postgres = Postgres::start().unwrap();
    let mut service = start(&postgres);
    wait_healthy(&service).await;

    let body = order().to_string().into_bytes();
    let (head, tail) = body.split_at(body.len() / 2);
    let (mut sender, chunks) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    sender.send(Ok(head.to_vec())).await.unwrap();
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/orders", service.base))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    // The server is now reading the body of a request it has accepted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.process.terminate().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        service.process.exited().unwrap().is_none(),
        "exited with a request in flight"
    );
    assert!(
        reqwest::get(format!("{}/health", service.base))
            .await
            .is_err(),
        "still accepting connections after SIGTERM"
    );
    sender.send(Ok(tail.to_vec())).await.unwrap();
    drop(sender);
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);

    let status = tokio::task::spawn_blocking(move || {
        let status = service
            .process
            .wait_timeout(Duration::from_secs(10))
            .unwrap();
        (status, service.process.log())
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM received; shutting down"), "{log}");
    assert!(log.contains("\"stopped\""), "{log}");
}

/// No invoice-service answers here, so with deadlines enforced the saga times out and compensates; the
/// order is polled, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_sweeper_cancels_an_order_whose_invoice_never_comes() {
    let postgres = Postgres::start().unwrap();
    let service = start_with(
        &postgres,
        &[
            ("SAGA_TIMEOUT_SECS", "1"),
            ("SAGA_SWEEP_INTERVAL_MS", "100"),
        ],
    );
    wait_healthy(&service).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/orders", service.base))
        .json(&order())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/orders/{}",
        service.base,
        created["id"].as_str().unwrap()
    );
    let confirmed = http.post(format!("{url}/confirm")).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    harness::poll_until(Duration::from_secs(30), "the saga's timeout", || async {
        let order: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        order["status"] == "CANCELLED"
    })
    .await
    .unwrap();
    let order: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(order["saga"]["step"], "CANCELLED");
    assert_eq!(order["saga"]["history"][1]["input"], "DeadlinePassed");
    assert!(log_lines(&service.process)
        .iter()
        .any(|line| message(line) == "saga deadline passed"));
}

/// README.md shows `order-service --help` as the binary prints it.
#[test]
fn the_readme_shows_the_real_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_order-service"))
        .env_clear()
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let readme = include_str!("../README.md");
    let start = readme.find("prints this):\n\n```\n").unwrap() + "prints this):\n\n```\n".len();
    let sample = &readme[start..start + readme[start..].find("```").unwrap()];
    assert_eq!(help, sample, "order-service/README.md's help differs");
}
