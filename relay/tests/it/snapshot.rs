//! `--snapshot` on a first start over an outbox that already holds rows, while writers keep
//! committing: every chosen row exactly once, in the snapshot or in the stream, in order per
//! aggregate across the boundary; a relay killed mid-snapshot loses nothing once restarted; an
//! existing slot takes no snapshot; bad values stop the relay with exit code 2.

use crate::support;

use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Reader};
use support::check::check;
use support::scenarios::{self, Target, FAULT};
use support::workload::{self, Written};

const DEADLINE: Duration = Duration::from_secs(180);

/// Small batches, so that the snapshot spans many of them.
const WINDOW: [&str; 6] = [
    "--mode",
    "logical",
    "--batch-size",
    "50",
    "--max-in-flight",
    "300",
];

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

async fn outbox_rows(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0)
}

/// The number of rows the relay logged as relayed from its snapshot.
fn snapshot_rows(log: &str) -> u64 {
    log.lines()
        .find(|l| l.contains("snapshot relayed and confirmed"))
        .and_then(|l| l.split("rows=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot line in:\n{log}"))
}

/// Writers commit before the relay's first start and go on while it takes its snapshot: rows
/// `excluded` inserts before must not arrive, every row the writers commit must arrive once.
async fn first_start(choice: &str, excluded: &str, major: Option<u32>) {
    let (target, mut reader) = redis_target();
    let pg = match major {
        Some(major) => {
            let pg = Postgres::builder().major(major).start().unwrap();
            support::create_outbox(&pg).await;
            pg
        }
        None => target.database().await,
    };
    let client = pg.client().await.unwrap();
    if !excluded.is_empty() {
        client.batch_execute(excluded).await.unwrap();
    }
    let before = outbox_rows(&client).await;
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &FAULT).await });
    harness::poll_until(DEADLINE, "writers to commit rows", || async {
        outbox_rows(&client).await >= before + 800
    })
    .await
    .unwrap();
    let mut args = WINDOW.to_vec();
    args.extend(["--snapshot", choice]);
    let mut relay = target.relay(&pg, &args);
    assert!(
        !writers.is_finished(),
        "writers still commit while the relay starts"
    );
    let written = writers.await.unwrap();
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    let from_snapshot = snapshot_rows(&relay.log());
    eprintln!(
        "--snapshot {choice} (PostgreSQL {}): {from_snapshot} rows from the snapshot, {} committed: {report:?}",
        pg.major(),
        written.committed()
    );
    report.assert_lossless();
    assert_eq!(report.duplicates, 0, "none twice");
    assert!(
        from_snapshot >= 800 && (from_snapshot as usize) < written.committed(),
        "rows came from both the snapshot and the stream"
    );
    let strangers: Vec<&str> = received
        .iter()
        .filter(|m| !written.per_aggregate.contains_key(&m.key))
        .map(|m| m.key.as_str())
        .collect();
    assert!(
        strangers.is_empty(),
        "rows the snapshot had to leave out arrived: {strangers:?}"
    );
    scenarios::assert_positions_increase(&received);
    assert!(
        received.iter().all(|m| !m.headers.contains_key("replayed")),
        "a snapshot relays, it does not replay"
    );
    if pg.major() >= 17 {
        assert_eq!(
            pg.psql(
                "SELECT failover FROM pg_replication_slots WHERE slot_name = 'outbox_relay_slot'"
            )
            .unwrap(),
            "t",
            "the copied slot gets failover like a slot the relay creates"
        );
    }
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_all_publishes_the_rows_before_the_slot_once() {
    first_start("all", "", None).await;
}

/// The temporary slot, its exported snapshot and the copy work alike on the oldest and the newest
/// majors the relay supports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_all_on_postgres_13() {
    first_start("all", "", Some(13)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_all_on_postgres_17() {
    first_start("all", "", Some(17)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_since_publishes_only_rows_created_from_then() {
    first_start(
        "since=2021-01-01T00:00:00Z",
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at)
         SELECT gen_random_uuid(), 'order', 'old-' || g, 'Changed', '{}', '2020-06-01T00:00:00Z'
         FROM generate_series(1, 50) g",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_unpublished_leaves_out_rows_polling_relayed() {
    first_start(
        "unpublished",
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, published_at)
         SELECT gen_random_uuid(), 'order', 'polled-' || g, 'Changed', '{}', now()
         FROM generate_series(1, 50) g",
        None,
    )
    .await;
}

/// Rows written before the first start, more written meanwhile; the relay dies (kill -9) with the
/// snapshot half published and starts again: every row arrives, duplicates allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_snapshot_loses_nothing() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let backlog = workload::Workload {
        pause: Duration::ZERO,
        ..FAULT
    };
    let mut written = workload::write(&pg.url(), &backlog).await;
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &FAULT).await });
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend(["--destination", &destination, "--snapshot", "all"]);
    args.extend(WINDOW);
    let mut relay = support::start_relay(&pg, &args);
    scenarios::wait_confirmed_batches(&relay, 5);
    relay.kill9().unwrap();
    assert!(
        !relay.log().contains("snapshot relayed"),
        "killed before the snapshot was done:\n{}",
        relay.log()
    );
    harness::poll_until(
        Duration::from_secs(10),
        "the temporary slot to go with its session",
        || async {
            pg.psql("SELECT count(*) FROM pg_replication_slots")
                .unwrap()
                == "0"
        },
    )
    .await
    .unwrap();

    let mut relay = support::start_relay(&pg, &args);
    scenarios::wait_streaming(&relay);
    written.merge(writers.await.unwrap());
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!("after kill -9 mid-snapshot: {report:?}");
    report.assert_lossless();
    assert!(report.duplicates > 0, "the restart took the snapshot again");
    support::stop_relay(&mut relay);
}

/// Two relays start at once over a table with rows: one takes the snapshot, the other waits for it
/// (polling's advisory lock), then finds the slot and stands by. Nothing arrives twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_relay_waits_for_the_snapshot_instead_of_taking_its_own() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let backlog = workload::Workload {
        pause: Duration::ZERO,
        ..FAULT
    };
    let written = workload::write(&pg.url(), &backlog).await;
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend(["--destination", &destination, "--snapshot", "all"]);
    args.extend(WINDOW);
    let mut first = support::start_relay(&pg, &args);
    let mut second = support::start_relay(&pg, &args);
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    harness::wait_until(
        Duration::from_secs(30),
        "the other relay to stand by",
        || first.log().contains("standing by") || second.log().contains("standing by"),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}\n{}", first.log(), second.log()));
    let report = check(&written, &received);
    report.assert_lossless();
    assert_eq!(report.duplicates, 0, "one snapshot, not two");
    let snapshots = [&first, &second]
        .iter()
        .filter(|r| r.log().contains("snapshot relayed and confirmed"))
        .count();
    assert_eq!(snapshots, 1);
    support::stop_relay(&mut first);
    support::stop_relay(&mut second);
}

/// A slot that exists streams from where it stands: `--snapshot` takes no snapshot, so nothing
/// arrives twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_slot_takes_no_snapshot() {
    let (target, mut reader) = redis_target();
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &WINDOW);
    support::stop_relay(&mut relay);
    let written: Written = workload::write(&pg.url(), &scenarios::CLEAN).await;
    let mut args = WINDOW.to_vec();
    args.extend(["--snapshot", "all"]);
    let mut relay = target.relay(&pg, &args);
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    report.assert_lossless();
    assert_eq!(report.duplicates, 0);
    assert!(
        relay
            .log()
            .contains("the slot exists, so no snapshot is taken"),
        "{}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_snapshot_values_exit_2_saying_what_to_fix() {
    let url = "postgres://relay@127.0.0.1:1/db";
    let (code, stderr) = run(
        &[
            "run",
            "--database-url",
            url,
            "--snapshot",
            "since=yesterday",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("RFC 3339"), "{stderr}");
    let (code, stderr) = run(
        &["run", "--database-url", url],
        &[("OUTBOX_RELAY_SNAPSHOT", "sometimes")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("snapshot")
            && stderr.contains("never, all, since=<RFC 3339 time>, unpublished"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &[
            "run",
            "--database-url",
            url,
            "--snapshot",
            "since=2999-01-01T00:00:00Z",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`snapshot`") && stderr.contains("future"),
        "{stderr}"
    );
}

/// `unpublished` needs polling's `published_at`: without it the relay stops and says so, before
/// creating any slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_without_published_at_stops_with_the_fix() {
    let pg = Postgres::start().unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute(include_str!("../../sql/outbox.sql"))
        .await
        .unwrap();
    let mut relay = support::start_relay(
        &pg,
        &[
            "--sink",
            "stdout",
            "--mode",
            "logical",
            "--snapshot",
            "unpublished",
        ],
    );
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("the relay stops");
    assert_eq!(status.code(), Some(1), "{}", relay.log());
    let log = relay.log();
    assert!(
        log.contains("`unpublished` picks the rows whose published_at is null")
            && log.contains("fix:"),
        "{log}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "0"
    );
}
