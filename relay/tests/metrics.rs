//! The operator endpoint on a real relay: Prometheus metrics and health probes, while the broker
//! goes away and comes back.

mod support;

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
