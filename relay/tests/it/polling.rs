//! Polling mode, on clusters without logical decoding (`wal_level=replica`): `auto` chooses it, it
//! passes the end-to-end and kill -9 scenarios of logical mode, keeps per-aggregate order while
//! writers commit out of sequence order, wakes on notifications, runs one leader at a time, and
//! parks poison events.

use crate::support;

use std::time::{Duration, Instant};

use harness::Reader;
use support::check::check;
use support::scenarios::{self, Target};
use support::{http_get, metric, metrics_addr, workload};

const DEADLINE: Duration = Duration::from_secs(180);

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]).polling();
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

async fn unpublished(pg: &harness::Postgres) -> i64 {
    pg.client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits up to `within` for every row to be marked relayed; returns how many are still not.
async fn wait_all_marked(pg: &harness::Postgres, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    while unpublished(pg).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unpublished(pg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_everything_in_order() {
    let (target, reader) = redis_target();
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_relay_kill() {
    let (target, reader) = redis_target();
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_chooses_polling_without_logical_decoding_and_marks_relayed_rows() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &[]);
    assert!(
        relay
            .log()
            .lines()
            .any(|l| l.contains("mode auto: chose the source")
                && l.contains("polling")
                && l.contains("wal_level is 'replica'")),
        "{}",
        relay.log()
    );
    let addr = metrics_addr(&relay);
    let text = http_get(&addr, "/metrics").1;
    assert_eq!(
        metric(&text, "outbox_relay_mode", &["mode=\"polling\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "outbox_relay_leader", &[]), Some(1.0));
    let written = workload::write(&pg.url(), &scenarios::CLEAN).await;
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    // Rows are marked once confirmed; the mark commits right after the broker's confirmation.
    assert_eq!(
        wait_all_marked(&pg, Duration::from_secs(30)).await,
        0,
        "every relayed row is marked"
    );
    // Polling reads no WAL: its event lines name the row's sequence number instead of an LSN.
    let log = relay.log();
    let relayed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pipeline: relayed "))
        .collect();
    assert!(
        !relayed.is_empty()
            && relayed
                .iter()
                .all(|l| l.contains(" seq=") && !l.contains("lsn=")),
        "{log}"
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_delete_deletes_relayed_rows() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &["--mode", "polling", "--cleanup", "delete"]);
    let written = workload::write(&pg.url(), &scenarios::CLEAN).await;
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    support::stop_relay(&mut relay);
    let left: i64 = pg
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "a drained relay leaves no relayed row behind");
}

/// Sequence values are taken at insert, not at commit: here transactions commit out of sequence
/// order all the time. A relay that kept a cursor on `seq` would skip the late ones; one that
/// ignored the aggregates' locks would reorder them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_aggregate_order_while_writers_commit_out_of_sequence_order() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &["--batch-size", "20", "--max-in-flight", "100"]);
    let written = workload::write_contended(&pg.url(), 6, 120, 8).await;
    assert!(
        written.commit_inversions > 20,
        "transactions committed out of sequence order only {} times",
        written.commit_inversions
    );
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!(
        "{} committed, {} adjacent commits out of sequence order: {report:?}",
        written.committed(),
        written.commit_inversions
    );
    report.assert_lossless();
    assert_eq!(report.delivered, 720);
    support::stop_relay(&mut relay);
}

/// With an hour between polls, only the insert trigger's notification can bring the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_the_relay_long_before_the_interval() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &["--poll-interval", "1h"]);
    assert!(
        relay.log().contains("installed the trigger"),
        "{}",
        relay.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = workload::write(
        &pg.url(),
        &workload::Workload {
            writers: 1,
            transactions_per_writer: 3,
            ..scenarios::CLEAN
        },
    )
    .await;
    let received = reader
        .collect_until(Duration::from_secs(30), |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    support::stop_relay(&mut relay);
}

/// The leader holds an advisory lock; the standby takes it within seconds of a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_within_seconds() {
    let (target, reader) = redis_target();
    scenarios::standby_takes_over_from_a_killed_leader(target, reader, &["--mode", "polling"])
        .await;
}

/// A bulk-loaded outbox that has never been analyzed: the planner would scan every unpublished row
/// and sort them for each claim, reading 1.2M index entries for this backlog. The claims must walk
/// the partial index instead: each row is read a bounded number of times however large the backlog
/// (about 4.4 here, as each of the 4 claims in flight steps over the rows the others hold locked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_walk_the_index_on_a_table_without_statistics() {
    const BACKLOG: i64 = 30_000;
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE outbox SET (autovacuum_enabled = false);
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             SELECT gen_random_uuid(), 'order', 'order-' || (g % 50), 'OrderChanged',
                    jsonb_build_object('sequence', g)
             FROM generate_series(1, {BACKLOG}) AS g"
        ))
        .await
        .unwrap();
    let mut relay = target.relay(&pg, &["--mode", "polling"]);
    assert_eq!(wait_all_marked(&pg, DEADLINE).await, 0, "{}", relay.log());
    // Backends report their statistics when they exit.
    support::stop_relay(&mut relay);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let row = client
        .query_one(
            "SELECT idx_tup_read, (SELECT reltuples FROM pg_class WHERE relname = 'outbox')
             FROM pg_stat_user_indexes WHERE indexrelname = 'outbox_unpublished'",
            &[],
        )
        .await
        .unwrap();
    let (reads, estimated): (i64, f32) = (row.get(0), row.get(1));
    assert!(estimated < 0.0, "the table was analyzed after all");
    assert!(
        reads < 8 * BACKLOG,
        "the claims read {reads} index entries for {BACKLOG} rows"
    );
    let received = reader
        .collect_until(DEADLINE, |r| r.len() as i64 >= BACKLOG)
        .await;
    assert_eq!(received.len() as i64, BACKLOG);
}
