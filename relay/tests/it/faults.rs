//! Fault injection beyond the per-sink scenarios: the relay killed at random points again and
//! again, and the relay frozen (SIGSTOP) past PostgreSQL's wal_sender_timeout, then thawed.
//! `FAULT_KILLS` sets the number of kills (CI runs a few; the full run in docs/RELIABILITY.md, 20).

use crate::support;

use std::time::Duration;

use harness::Reader;
use rand::Rng;
use support::check::check;
use support::scenarios::{Target, FAULT};
use support::workload::{self, Workload};

const DEADLINE: Duration = Duration::from_secs(300);

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_at_random_points_loses_nothing() {
    let kills: usize = std::env::var("FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let pg = support::outbox_database().await;
    let (target, mut reader) = redis_target();
    let window = ["--batch-size", "20", "--max-in-flight", "200"];
    let mut relay = target.relay(&pg, &window);
    let workload = Workload {
        transactions_per_writer: 40 * kills,
        pause: Duration::from_millis(30),
        ..FAULT
    };
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &workload).await });
    for kill in 0..kills {
        let pause = rand::rng().random_range(100..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        relay.kill9().unwrap();
        eprintln!("kill {}: after {pause} ms", kill + 1);
        relay = target.relay(&pg, &window);
    }
    let written = writers.await.unwrap();
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!(
        "after {kills} kills of the relay: {} committed, {report:?}",
        written.committed()
    );
    report.assert_lossless();
    support::stop_relay(&mut relay);
}

/// Frozen longer than wal_sender_timeout, the relay finds its session gone when it wakes, and
/// resumes from the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_frozen_past_the_servers_timeout_resumes_after_thawing() {
    let pg = harness::Postgres::start_with_settings(&["wal_sender_timeout=2s"]).unwrap();
    support::create_outbox(&pg).await;
    let (target, mut reader) = redis_target();
    let mut relay = target.relay(&pg, &[]);
    let small = Workload {
        writers: 2,
        transactions_per_writer: 20,
        ..FAULT
    };
    let before = workload::write(&pg.url(), &small).await;
    reader
        .collect_until(DEADLINE, |r| check(&before, r).lost == 0)
        .await;

    relay.pause().unwrap();
    let during = workload::write(&pg.url(), &small).await;
    harness::wait_until(
        Duration::from_secs(30),
        "the server to drop the frozen session",
        || pg.psql("SELECT count(*) FROM pg_stat_replication").unwrap() == "0",
    )
    .unwrap();
    relay.resume().unwrap();
    let received = reader
        .collect_until(DEADLINE, |r| check(&during, r).lost == 0)
        .await;
    check(&during, &received).assert_lossless();
    assert!(
        relay.log().contains("relay session failed"),
        "{}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}
