//! Trace export (`--features otlp`): the relay sends a span per relayed event to an OTLP/HTTP
//! endpoint, as a child of the trace in the row's `traceparent`. The endpoint here is a small HTTP
//! server that keeps what it receives.
#![cfg(feature = "otlp")]

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use support::scenarios::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_events_continue_the_services_trace() {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: String| async move { store.lock().unwrap().push(body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let pg = support::outbox_database().await;
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .args([
            "run",
            "--database-url",
            &pg.url(),
            "--sink",
            "redis",
            "--redis-url",
            &redis,
        ])
        .args(["--destination", &destination]);
    let mut relay = harness::Process::start(cmd).unwrap();
    support::scenarios::wait_streaming(&relay);

    let (trace_id, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    pg.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
             VALUES (gen_random_uuid(), 'order', 'o-1', 'OrderConfirmed', '{}', jsonb_build_object('traceparent', $1::text))",
            &[&format!("00-{trace_id}-{parent}-01")],
        )
        .await
        .unwrap();
    harness::wait_until(
        Duration::from_secs(30),
        "the span to reach the collector",
        || {
            received
                .lock()
                .unwrap()
                .iter()
                .any(|body| body.contains(trace_id) && body.contains(parent))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", received.lock().unwrap(), relay.log()));
    let bodies = received.lock().unwrap().join("\n");
    assert!(
        bodies.contains("outbox.relayed") && bodies.contains("outbox-relay"),
        "{bodies}"
    );
    support::stop_relay(&mut relay);
}
