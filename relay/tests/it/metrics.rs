//! The operator endpoint on a real relay: Prometheus metrics and health probes, while the broker
//! goes away and comes back.

use crate::support;

use std::time::Duration;

use harness::Reader;
use support::check::check;
use support::scenarios::{Target, CLEAN};
use support::workload::{self, Workload};
use support::{http_get, metric, metrics_addr};

const DEADLINE: Duration = Duration::from_secs(120);
const SMALL: Workload = Workload {
    writers: 2,
    transactions_per_writer: 10,
    ..CLEAN
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_follow_the_broker() {
    let pg = support::outbox_database().await;
    let mut redis = harness::Redis::start().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis.url()]);
    let mut reader = Reader::redis(&redis.url(), &target.destinations());
    let mut relay = target.relay(&pg, &[]);
    let addr = metrics_addr(&relay);
    assert_eq!(http_get(&addr, "/health/live").0, 200);
    harness::wait_until(DEADLINE, "readiness", || {
        http_get(&addr, "/health/ready").0 == 200
    })
    .unwrap();

    let first = workload::write(&pg.url(), &SMALL).await;
    reader
        .collect_until(DEADLINE, |r| check(&first, r).lost == 0)
        .await;
    let scrape = || http_get(&addr, "/metrics").1;
    harness::wait_until(DEADLINE, "the published counter", || {
        let text = scrape();
        let published = metric(
            &text,
            "outbox_relay_events_published_total",
            &["sink=\"redis\""],
        );
        published == Some(first.committed() as f64)
            && metric(&text, "outbox_relay_lag_seconds", &[]) == Some(0.0)
    })
    .unwrap();
    let text = scrape();
    for name in [
        "outbox_relay_commit_to_ack_seconds_count",
        "outbox_relay_batch_size_events_count",
        "outbox_relay_in_flight_events",
        "outbox_relay_acknowledged_lsn",
        "outbox_relay_build_info",
    ] {
        assert!(
            metric(&text, name, &[]).is_some(),
            "{name} missing:\n{text}"
        );
    }
    assert_eq!(
        metric(&text, "outbox_relay_mode", &["mode=\"logical\""]),
        Some(1.0)
    );
    assert!(
        metric(
            &text,
            "outbox_relay_events_published_total",
            &[&format!("destination=\"{}.order\"", target.prefix)]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        metric(&text, "outbox_relay_commit_to_ack_seconds_count", &[]),
        Some(first.committed() as f64)
    );

    redis.stop().unwrap();
    let second = workload::write(&pg.url(), &SMALL).await;
    harness::wait_until(DEADLINE, "not ready while the broker is down", || {
        http_get(&addr, "/health/ready").0 == 503
    })
    .unwrap();
    let lag = || metric(&scrape(), "outbox_relay_lag_seconds", &[]).unwrap();
    harness::wait_until(DEADLINE, "lag to build up", || lag() > 1.0).unwrap();
    let earlier = lag();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(lag() > earlier, "lag keeps rising while the broker is down");
    assert!(
        metric(
            &scrape(),
            "outbox_relay_failures_total",
            &["kind=\"broker\""]
        )
        .unwrap()
            >= 1.0
    );

    redis.start_again().unwrap();
    reader
        .collect_until(DEADLINE, |r| check(&second, r).lost == 0)
        .await;
    harness::wait_until(DEADLINE, "ready and caught up", || {
        http_get(&addr, "/health/ready").0 == 200 && lag() == 0.0
    })
    .unwrap();
    assert!(metric(&scrape(), "outbox_relay_retries_total", &[]).unwrap() >= 1.0);
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_lag_is_reported_in_bytes() {
    let pg = support::outbox_database().await;
    let (target, _) = (Target::new(&["--sink", "stdout"]), ());
    let mut relay = target.relay(&pg, &[]);
    let addr = metrics_addr(&relay);
    // The monitor samples every 10 s; the first sample comes at start.
    harness::wait_until(DEADLINE, "a slot lag sample", || {
        metric(
            &http_get(&addr, "/metrics").1,
            "outbox_relay_slot_lag_bytes",
            &[],
        )
        .is_some_and(|b| b >= 0.0)
    })
    .unwrap();
    support::stop_relay(&mut relay);
}

/// For users who expose the endpoint beyond the pod: TLS, and a bearer token on `/metrics` only
/// (probes carry none). The token comes from a file, by the `_FILE` convention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_tls_demand_the_bearer_token() {
    let pg = support::outbox_database().await;
    let dir = tempfile::tempdir().unwrap();
    let certificates = harness::Certificates::make(dir.path()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-scrape-token\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env(
            "OUTBOX_RELAY_METRICS_TLS_CERT_FILE",
            &certificates.server_cert,
        )
        .env(
            "OUTBOX_RELAY_METRICS_TLS_KEY_FILE",
            &certificates.server_key,
        )
        .env("OUTBOX_RELAY_METRICS_TOKEN_FILE", &token_file)
        .args(["run", "--sink", "stdout", "--database-url", &pg.url()]);
    let mut relay = harness::Process::start(cmd).unwrap();
    let addr = metrics_addr(&relay);
    let ca = &certificates.ca_cert;

    let (status, body) = support::https_get(&addr, ca, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"status\":401"), "{body}");
    let (status, _) = support::https_get(&addr, ca, "/metrics", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, body) =
        support::https_get(&addr, ca, "/metrics", Some("s3cret-scrape-token")).await;
    assert_eq!(status, 200);
    assert!(body.contains("outbox_relay_build_info"), "{body}");
    assert_eq!(
        support::https_get(&addr, ca, "/health/live", None).await.0,
        200
    );
    let plain = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    };
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP gets no HTTP answer from a TLS endpoint"
    );
    assert!(!relay.log().contains("s3cret-scrape-token"));
    support::stop_relay(&mut relay);
}

/// A destination template with a high-cardinality field: every destination used to get a series of
/// its own, kept for good (100,000 of them made a 9.9 MB page). Beyond `metrics_max_destinations`
/// they share `destination="(other)"`, and the total stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_labels_are_capped() {
    const EVENTS: i64 = 3_000;
    let pg = support::outbox_database().await;
    let mut relay = support::start_relay(&pg, &["--sink", "stdout", "--destination", "d.{type}"]);
    support::scenarios::wait_streaming(&relay);
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             SELECT gen_random_uuid(), 'order', 'a', 'T' || g, '{{}}' FROM generate_series(1, {EVENTS}) AS g"
        ))
        .await
        .unwrap();
    let addr = metrics_addr(&relay);
    let total = |text: &str| metric(text, "outbox_relay_events_published_total", &[]);
    harness::wait_until(DEADLINE, "every event counted", || {
        total(&http_get(&addr, "/metrics").1) == Some(EVENTS as f64)
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", http_get(&addr, "/metrics").1));
    let text = http_get(&addr, "/metrics").1;
    let series = text
        .lines()
        .filter(|l| l.starts_with("outbox_relay_events_published_total{"))
        .count();
    eprintln!("{series} series, /metrics is {} bytes", text.len());
    // The default cap, 1000 destinations, plus the shared label.
    assert_eq!(series, 1001);
    assert_eq!(
        metric(
            &text,
            "outbox_relay_events_published_total",
            &["destination=\"(other)\""]
        ),
        Some((EVENTS - 1000) as f64)
    );
    support::stop_relay(&mut relay);
}
