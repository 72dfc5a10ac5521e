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

/// A relay with `toml` as its configuration file, polling `pg` into the target's Redis streams.
fn relay_with_config(
    target: &Target,
    pg: &harness::Postgres,
    toml: &str,
) -> (harness::Process, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend(["--destination", &destination, "--mode", "polling"]);
    args.extend(["--config", file.path().to_str().unwrap()]);
    (support::start_relay(pg, &args), file)
}

async fn insert(pg: &harness::Postgres, sql: &str) {
    pg.client().await.unwrap().batch_execute(sql).await.unwrap();
}

/// Nulls in a row are the row's data: a null `created_at` or sequence number is relayed (lag then
/// counts from the claim) with a warning, where it used to panic the session again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_null_created_at_or_sequence_are_relayed() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    insert(
        &pg,
        "ALTER TABLE outbox ADD COLUMN pos bigint, ALTER COLUMN created_at DROP NOT NULL;
         INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at, pos) VALUES
           (gen_random_uuid(), 'order', 'a-1', 'Plain', '{}', now(), 1),
           (gen_random_uuid(), 'order', 'a-2', 'NoCreatedAt', '{}', NULL, 2),
           (gen_random_uuid(), 'order', 'a-3', 'NoSequence', '{}', now(), NULL);",
    )
    .await;
    let (mut relay, _config) =
        relay_with_config(&target, &pg, "[outbox.columns]\nsequence = \"pos\"\n");
    let received = reader.collect_until(DEADLINE, |r| r.len() >= 3).await;
    let mut types: Vec<&str> = received
        .iter()
        .map(|r| r.headers["type"].as_str())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["NoCreatedAt", "NoSequence", "Plain"],
        "{}",
        relay.log()
    );
    assert!(
        relay.log().contains("column pos is null"),
        "{}",
        relay.log()
    );
    assert_eq!(wait_all_marked(&pg, Duration::from_secs(30)).await, 0);
    support::stop_relay(&mut relay);
}

/// A `published_at` that cannot hold the mark's time (here a boolean) would fail every mark after
/// the broker confirmed, re-publishing the same rows each session: the relay refuses it at start,
/// naming the column and the fix, before publishing anything. A `created_at` of epoch milliseconds
/// is relayed as it is, with lag counted from the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_types_polling_cannot_use_stop_it_at_start() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    insert(
        &pg,
        "ALTER TABLE outbox ADD COLUMN done boolean, ADD COLUMN created_ms bigint;
         INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_ms) VALUES
           (gen_random_uuid(), 'order', 'a-1', 'Epoch', '{}', 1764979200123);",
    )
    .await;
    let (mut relay, _config) =
        relay_with_config(&target, &pg, "[outbox.columns]\npublished_at = \"done\"\n");
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .unwrap_or_else(|| panic!("the relay keeps running:\n{}", relay.log()));
    assert!(!status.success());
    let log = relay.log();
    assert!(
        log.contains("column done of public.outbox is boolean") && log.contains("timestamptz"),
        "{log}"
    );
    assert!(!log.contains("broker confirmed batch"), "{log}");

    let (mut relay, _config) = relay_with_config(
        &target,
        &pg,
        "[outbox.columns]\ncreated_at = \"created_ms\"\n",
    );
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(received[0].headers["created_at"], "1764979200123");
    assert!(
        relay
            .log()
            .contains("the created_at column is not a timestamp"),
        "{}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}

/// Polling owns `published_at`: a row inserted with it already set reads as relayed (a backfill of
/// history, say) and is left alone, while logical replication relays every insert. docs/POLLING.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_with_published_at_set_are_not_polled() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &["--mode", "polling"]);
    insert(
        &pg,
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, published_at) VALUES
           (gen_random_uuid(), 'order', 'a-1', 'Backfilled', '{}', now());
         INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES
           (gen_random_uuid(), 'order', 'a-1', 'New', '{}');",
    )
    .await;
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    // The second row's claim would have carried the first too, had it been relayed.
    let types: Vec<&str> = received
        .iter()
        .map(|r| r.headers["type"].as_str())
        .collect();
    assert_eq!(types, ["New"]);
    support::stop_relay(&mut relay);
}

/// The notify trigger's DDL needs a lock that conflicts with INSERTs, and PostgreSQL queues every
/// later INSERT behind a waiting lock request: with a service transaction open on the table, the
/// relay's first start blocked all writers. It now waits at most a moment for the lock, polls at the
/// interval meanwhile, and installs the trigger once the transaction ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_the_trigger_never_blocks_writers() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let service = pg.client().await.unwrap();
    service
        .batch_execute(
            "BEGIN; INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             VALUES (gen_random_uuid(), 'order', 'open', 'InOpenTransaction', '{}')",
        )
        .await
        .unwrap();
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend([
        "--destination",
        &destination,
        "--mode",
        "polling",
        "--poll-interval",
        "200ms",
    ]);
    let mut relay = support::start_relay(&pg, &args);
    let observer = pg.client().await.unwrap();
    // Until the relay streams, or its DDL queues for the lock (where the old relay stayed for good).
    harness::poll_until(
        Duration::from_secs(60),
        "the relay to stream or queue",
        || async {
            let queued: i64 = observer
                .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
                .await
                .unwrap()
                .get(0);
            queued > 0 || relay.log().contains("streaming the outbox")
        },
    )
    .await
    .unwrap();
    let writer = pg.client().await.unwrap();
    // Generous: the relay's lock waits last 100 ms; the old relay's never ended.
    writer
        .batch_execute("SET lock_timeout = '10s'")
        .await
        .unwrap();
    writer
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             VALUES (gen_random_uuid(), 'order', 'other', 'WhileOpen', '{}')",
        )
        .await
        .unwrap_or_else(|e| panic!("the insert was blocked: {e}\n{}", relay.log()));
    service.batch_execute("COMMIT").await.unwrap();
    let received = reader.collect_until(DEADLINE, |r| r.len() >= 2).await;
    assert_eq!(received.len(), 2);
    harness::wait_until(
        Duration::from_secs(60),
        "the trigger to be installed",
        || relay.log().contains("installed the trigger"),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    support::stop_relay(&mut relay);
}

/// `--mode auto` on a cluster that gains `wal_level=logical`: the slot carries only what commits
/// after it exists, so the rows polling had not relayed yet (written here while the relay was
/// down) must be relayed by polling before logical replication takes over. They used to be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_relays_the_polling_backlog_before_switching_to_logical() {
    let (target, mut reader) = redis_target();
    let mut pg = target.database().await;
    let small = workload::Workload {
        writers: 2,
        transactions_per_writer: 10,
        ..scenarios::CLEAN
    };
    let mut relay = target.relay(&pg, &[]);
    let relayed = workload::write(&pg.url(), &small).await;
    reader
        .collect_until(DEADLINE, |r| check(&relayed, r).lost == 0)
        .await;
    assert_eq!(wait_all_marked(&pg, Duration::from_secs(30)).await, 0);
    support::stop_relay(&mut relay);
    let pending = workload::write(&pg.url(), &small).await;
    let backlog = unpublished(&pg).await;
    assert!(backlog > 0);
    eprintln!("{backlog} rows left for polling at the switch");

    pg.restart_with("wal_level=logical").unwrap();
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--sink", "stdout", "--database-url", &pg.url()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(
        report.contains(&format!(
            "auto: logical replication, once polling has relayed the {backlog} rows"
        )),
        "{report}"
    );
    let mut relay = target.relay(&pg, &[]);
    let after = workload::write(&pg.url(), &small).await;
    let received = reader
        .collect_until(DEADLINE, |r| {
            check(&pending, r).lost == 0 && check(&after, r).lost == 0
        })
        .await;
    check(&pending, &received).assert_lossless();
    check(&after, &received).assert_lossless();
    let log = relay.log();
    assert!(
        log.contains(&format!("rows={backlog}"))
            && log.contains("switching to logical replication"),
        "{log}"
    );
    let text = http_get(&metrics_addr(&relay), "/metrics").1;
    assert_eq!(
        metric(&text, "outbox_relay_mode", &["mode=\"logical\""]),
        Some(1.0),
        "{text}"
    );
    support::stop_relay(&mut relay);
}
