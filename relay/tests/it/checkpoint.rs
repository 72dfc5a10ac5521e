//! The durable checkpoint and what the relay does with it when its slot is gone: the row follows
//! the acknowledged position (never ahead of the broker), `status` shows it, a slot an admin drops
//! under a running relay is repaired from it, and without it the relay warns or, with
//! `--slot-create never`, refuses to create the slot. A checkpoint copied from another cluster is
//! ignored.

use crate::multi_host;
use crate::support;

use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Process, Reader, Replication};
use support::check::check;
use support::scenarios::{self, Target};
use support::workload;
use tokio_postgres::Client;

const DEADLINE: Duration = Duration::from_secs(60);
const TABLE: &str = "outbox_relay_checkpoint";
const SLOT: &str = "outbox_relay_slot";

/// A database with the outbox and the checkpoint table, both from `outbox-relay ddl`.
async fn database() -> Postgres {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["ddl", "--checkpoint-table", TABLE])
        .output()
        .unwrap();
    assert!(output.status.success());
    let ddl = String::from_utf8(output.stdout).unwrap();
    assert!(
        ddl.contains(&format!(
            "CREATE TABLE IF NOT EXISTS \"public\".\"{TABLE}\""
        )),
        "{ddl}"
    );
    pg.client()
        .await
        .unwrap()
        .batch_execute(&ddl)
        .await
        .unwrap();
    pg
}

async fn insert(client: &Client, rows: usize, aggregate: &str) {
    client
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             SELECT gen_random_uuid(), 'order', $1, 'T', '{}' FROM generate_series(1, $2::int)",
            &[&aggregate, &(rows as i32)],
        )
        .await
        .unwrap();
}

/// The checkpoint's position as an LSN difference from `lsn` (negative: behind it); `None` without a row.
async fn checkpoint_minus(client: &Client, lsn: &str) -> Option<i64> {
    client
        .query_opt(
            "SELECT (confirmed_lsn - $1::text::pg_lsn)::bigint FROM outbox_relay_checkpoint WHERE slot_name = $2",
            &[&lsn, &SLOT],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

async fn current_lsn(client: &Client) -> String {
    client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

fn relay_output(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What an administrator does to drop a slot a relay streams from: end its walsender, and drop the
/// slot before the relay's next session takes it again.
async fn drop_slot_under(relay: &Process, client: &Client) {
    harness::poll_until(DEADLINE, "the slot to be dropped", || async {
        client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{SLOT}' AND active_pid IS NOT NULL;
                 SELECT pg_drop_replication_slot('{SLOT}');"
            ))
            .await
            .is_ok()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_follows_the_acknowledged_position_and_never_passes_the_broker() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    let mut redis = harness::Redis::start().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis.url()]);
    let mut reader = Reader::redis(&redis.url(), &target.destinations());
    let mut relay = target.relay(&pg, &["--checkpoint-table", TABLE]);

    let before = current_lsn(&client).await;
    insert(&client, 10, "a-1").await;
    reader.collect_until(DEADLINE, |r| r.len() >= 10).await;
    harness::poll_until(
        DEADLINE,
        "the checkpoint to pass the first rows",
        || async {
            checkpoint_minus(&client, &before)
                .await
                .is_some_and(|d| d > 0)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let row = client
        .query_one(
            "SELECT c.last_commit_at IS NOT NULL, c.system_identifier = s.system_identifier, c.timeline
             FROM outbox_relay_checkpoint c, pg_control_system() s WHERE c.slot_name = $1",
            &[&SLOT],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, i32>(2)
        ),
        (true, true, 1),
        "the row names the relayed commit, this cluster and its timeline"
    );

    // With the broker gone, rows committed now are not confirmed: the checkpoint stays before them.
    redis.stop().unwrap();
    let unconfirmed = current_lsn(&client).await;
    insert(&client, 10, "a-2").await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ahead = checkpoint_minus(&client, &unconfirmed).await.unwrap();
        assert!(
            ahead <= 0,
            "the checkpoint passed rows the broker never confirmed by {ahead} bytes:\n{}",
            relay.log()
        );
    }
    let slot_ahead: i64 = client
        .query_one(
            "SELECT (confirmed_flush_lsn - $1::text::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $2",
            &[&unconfirmed, &SLOT],
        )
        .await
        .unwrap()
        .get(0);
    assert!(slot_ahead <= 0, "the slot waits for the broker too");

    redis.start_again().unwrap();
    harness::poll_until(
        DEADLINE,
        "the checkpoint to pass the delayed rows",
        || async {
            checkpoint_minus(&client, &unconfirmed)
                .await
                .is_some_and(|d| d > 0)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let received = reader
        .collect_until(DEADLINE, |r| r.iter().any(|m| m.key == "a-2"))
        .await;
    assert!(received.iter().filter(|m| m.key == "a-2").count() >= 10);

    let text = relay_output(&[
        "status",
        "--database-url",
        &pg.url(),
        "--checkpoint-table",
        TABLE,
    ]);
    assert!(
        text.contains("checkpoint LSN     ") && text.contains("(timeline 1)"),
        "{text}"
    );
    support::stop_relay(&mut relay);
    // A clean stop writes the last position: the checkpoint is where the slot is.
    let slot_minus_checkpoint: i64 = client
        .query_one(
            "SELECT (s.confirmed_flush_lsn - c.confirmed_lsn)::bigint
             FROM pg_replication_slots s JOIN outbox_relay_checkpoint c USING (slot_name)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slot_minus_checkpoint, 0, "{}", relay.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_dropped_under_the_relay_is_repaired_from_the_checkpoint() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let mut reader = Reader::redis(&redis, &target.destinations());
    let mut relay = target.relay(
        &pg,
        &[
            "--checkpoint-table",
            TABLE,
            "--batch-size",
            "50",
            "--max-in-flight",
            "300",
        ],
    );
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &scenarios::FAULT).await });
    scenarios::wait_confirmed_batches(&relay, 10);
    harness::poll_until(DEADLINE, "a checkpoint", || async {
        checkpoint_minus(&client, "0/0").await.is_some()
    })
    .await
    .unwrap();
    assert!(!writers.is_finished(), "the slot is dropped mid-stream");
    // Rows committed from here until the repair's snapshot are in no slot: only the repair brings them.
    drop_slot_under(&relay, &client).await;
    let written = writers.await.unwrap();
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!("slot dropped under a running relay, repaired from the checkpoint: {report:?}");
    report.assert_lossless();
    let log = relay.log();
    for line in log
        .lines()
        .filter(|l| l.contains("repairing the gap") || l.contains("snapshot relayed"))
    {
        eprintln!("{line}");
    }
    assert!(
        log.contains("repairing the gap") && log.contains("snapshot relayed and confirmed"),
        "{log}"
    );
    assert!(
        relay.exited().unwrap().is_none(),
        "the relay kept running:\n{log}"
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_checkpoint_a_lost_slot_is_warned_about_or_refused() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    let mut relay = Target::new(&["--sink", "stdout"]).relay(&pg, &[]);
    insert(&client, 3, "a").await;
    drop_slot_under(&relay, &client).await;
    harness::wait_until(DEADLINE, "the relay to warn", || {
        relay
            .log()
            .contains("rows committed before this new slot are not relayed")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    support::stop_relay(&mut relay);

    client
        .batch_execute(&format!("SELECT pg_drop_replication_slot('{SLOT}')"))
        .await
        .unwrap();
    let mut refused = support::start_relay(&pg, &["--sink", "stdout", "--slot-create", "never"]);
    let status = refused
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("the relay stops rather than create the slot");
    assert!(!status.success());
    let log = refused.log();
    assert!(
        log.contains("replication slot outbox_relay_slot does not exist and slot_create = never")
            && log.contains("pg_create_logical_replication_slot('outbox_relay_slot', 'pgoutput')"),
        "{log}"
    );
    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "no slot was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_refuses_a_lost_slot_and_names_the_time_to_replay_from() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO outbox_relay_checkpoint
             SELECT '{SLOT}', '0/1000000', '2026-12-06 03:10:00+00', system_identifier, 1, now() FROM pg_control_system()"
        ))
        .await
        .unwrap();
    let mut relay = support::start_relay(
        &pg,
        &[
            "--sink",
            "stdout",
            "--slot-create",
            "never",
            "--checkpoint-table",
            TABLE,
        ],
    );
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("the relay stops rather than create the slot");
    assert!(!status.success());
    let log = relay.log();
    assert!(
        log.contains("the checkpoint shows it stood at 0/1000000")
            && log.contains("outbox-relay replay --since 2026-12-06T03:05:00Z"),
        "the default margin is 5 minutes:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_copied_from_another_cluster_is_ignored() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO outbox_relay_checkpoint VALUES ('{SLOT}', '0/1000000', now(), 42, 1, now())"
        ))
        .await
        .unwrap();
    let mut relay = Target::new(&["--sink", "stdout"]).relay(&pg, &["--checkpoint-table", TABLE]);
    let log = relay.log();
    assert!(
        log.contains("written by another cluster") && !log.contains("repairing the gap"),
        "{log}"
    );
    let text = relay_output(&[
        "status",
        "--database-url",
        &pg.url(),
        "--checkpoint-table",
        TABLE,
    ]);
    assert!(
        text.contains("unknown: a relay streams from the slot"),
        "{text}"
    );
    // The relay's first acknowledgement claims the row for this cluster.
    insert(&client, 1, "a").await;
    harness::poll_until(DEADLINE, "the row to be this cluster's", || async {
        client
            .query_one(
                "SELECT c.system_identifier = s.system_identifier FROM outbox_relay_checkpoint c, pg_control_system() s",
                &[],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_checkpoint_not_a_later_snapshot_since_picks_the_rows_a_lost_slot_missed() {
    let pg = database().await;
    let client = pg.client().await.unwrap();
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let mut reader = Reader::redis(&redis, &target.destinations());
    let mut relay = target.relay(&pg, &["--checkpoint-table", TABLE]);
    insert(&client, 3, "before").await;
    reader.collect_until(DEADLINE, |r| r.len() >= 3).await;
    support::stop_relay(&mut relay);
    client
        .batch_execute(&format!("SELECT pg_drop_replication_slot('{SLOT}')"))
        .await
        .unwrap();
    insert(&client, 4, "gap").await;
    let after_the_gap: String = client
        .query_one(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let snapshot = format!("since={after_the_gap}");
    let mut relay = target.relay(&pg, &["--checkpoint-table", TABLE, "--snapshot", &snapshot]);
    let received = reader
        .collect_until(DEADLINE, |r| {
            r.iter().filter(|m| m.key == "gap").count() >= 4
        })
        .await;
    assert_eq!(
        received.iter().filter(|m| m.key == "gap").count(),
        4,
        "{}",
        relay.log()
    );
    assert!(relay.log().contains("repairing the gap"), "{}", relay.log());
    support::stop_relay(&mut relay);
}

/// PostgreSQL 15 carries no logical slot to its standby. Writers commit through both hosts; the
/// primary is killed (-9) mid-stream and its synchronous standby promoted; the relay, given both
/// hosts and never restarted, finds no slot on the new primary but the checkpoint physical
/// replication carried over, and repairs the gap: nothing committed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_checkpoint_repairs_the_gap_the_lost_slot_left() {
    let mut primary = database().await;
    let standby = primary.start_standby(Replication::Synchronous).unwrap();
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let mut reader = Reader::redis(&redis, &target.destinations());
    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=3",
        primary.port(),
        standby.port()
    );
    let mut relay = multi_host::start_relay_with(
        &both,
        &target,
        &[],
        &["--checkpoint-table", TABLE, "--batch-size", "20"],
    );
    scenarios::wait_streaming(&relay);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(multi_host::write_through_failover(
                both.clone(),
                format!("{run}-{w}"),
            ))
        })
        .collect();
    scenarios::wait_confirmed_batches(&relay, 10);
    harness::poll_until(DEADLINE, "the checkpoint to reach the standby", || async {
        standby
            .psql(&format!("SELECT count(*) FROM {TABLE}"))
            .is_ok_and(|n| n == "1")
    })
    .await
    .unwrap();
    primary.kill9().unwrap();
    let promoted = standby.promote().unwrap();
    let mut written = workload::Written::default();
    let mut in_doubt = 0;
    for writer in writers {
        let (mine, doubted) = writer.await.unwrap();
        in_doubt += doubted;
        written.per_aggregate.extend(mine.per_aggregate);
        written.rolled_back.extend(mine.rolled_back);
        written.correlation.extend(mine.correlation);
    }
    let received = reader
        .collect_until(Duration::from_secs(120), |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!(
        "failover on PostgreSQL 15 with a checkpoint: {} events committed ({in_doubt} transactions in doubt at the kill; from_rolled_back counts events the new primary lacks), {report:?}",
        written.committed()
    );
    let log = relay.log();
    for line in log
        .lines()
        .filter(|l| l.contains("repairing the gap") || l.contains("snapshot relayed"))
    {
        eprintln!("relay: {line}");
    }
    // Logical decoding sends a commit once the primary flushed it, without waiting for the
    // synchronous standby (PostgreSQL 17's synchronized_standby_slots does): a transaction whose
    // commit the kill cut off can reach the broker and be missing on the new primary. Counted, not
    // a loss.
    assert_eq!(
        (report.lost, report.out_of_order, report.bad_headers),
        (0, 0, 0),
        "{report:?}"
    );
    assert!(log.contains("repairing the gap"), "{log}");
    harness::wait_until(DEADLINE, "the checkpoint on the new timeline", || {
        promoted
            .psql(&format!("SELECT timeline FROM {TABLE}"))
            .is_ok_and(|t| t == "2")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    support::stop_relay(&mut relay);
}

/// `check` says whether the relay can keep its checkpoint and repair a gap from it: the table is
/// missing, then the role lacks its privileges, then SELECT on the outbox that a repair reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_the_checkpoint_table_still_needs() {
    let pg = support::outbox_database().await;
    let admin = pg.client().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE relay LOGIN REPLICATION;
             CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert', publish_via_partition_root = true);",
        )
        .await
        .unwrap();
    let url = pg.url().replace("postgres@", "relay@");
    let line = || {
        let report = relay_output(&[
            "check",
            "--sink",
            "stdout",
            "--mode",
            "logical",
            "--checkpoint-table",
            TABLE,
            "--database-url",
            &url,
        ]);
        let line = report
            .lines()
            .find(|l| l.starts_with("checkpoint table"))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "));
        (
            line.unwrap_or_else(|| panic!("no checkpoint line:\n{report}")),
            report,
        )
    };

    let (missing, report) = line();
    assert_eq!(missing, format!("FAIL {TABLE} does not exist"), "{report}");
    assert!(
        report.contains(&format!("outbox-relay ddl --checkpoint-table {TABLE}")),
        "{report}"
    );
    let ddl = relay_output(&["ddl", "--checkpoint-table", TABLE]);
    admin.batch_execute(&ddl).await.unwrap();
    let (lacking, report) = line();
    assert_eq!(
        lacking,
        format!("FAIL role relay lacks SELECT, INSERT, UPDATE on {TABLE}"),
        "{report}"
    );
    admin
        .batch_execute(&format!("GRANT SELECT, INSERT, UPDATE ON {TABLE} TO relay"))
        .await
        .unwrap();
    let (unreadable, report) = line();
    assert!(
        unreadable.starts_with("WARN ")
            && unreadable
                .contains("a gap repair reads public.outbox and role relay lacks SELECT on it"),
        "{report}"
    );
    admin
        .batch_execute("GRANT SELECT ON outbox TO relay")
        .await
        .unwrap();
    let (ready, report) = line();
    assert_eq!(
        ready,
        format!("ok {TABLE}: no row for {SLOT} yet; the relay writes one"),
        "{report}"
    );
}
