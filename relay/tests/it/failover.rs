//! Failover slots (PostgreSQL 17+) against real primaries and physical standbys: the relay creates its
//! slot with failover or turns failover on for an existing one, `check` and `status` report it, a
//! standby keeps a synced copy, and after the primary crashes mid-stream and the standby is promoted,
//! the relay resumes from that copy and loses nothing. `slot_failover = true` on an older server is a
//! configuration error.

use crate::support;

use std::collections::HashSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::{Postgres, Reader, Replication};
use support::check::check;
use support::scenarios::{wait_confirmed_batches, Target, CLEAN, FAULT};
use support::workload::{self, Workload};

const DEADLINE: Duration = Duration::from_secs(180);
const SLOT: &str = "outbox_relay_slot";

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

fn config_file(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), contents).unwrap();
    file
}

fn command(subcommand: &str, pg: &Postgres, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args([subcommand, "--database-url", &pg.url(), "--sink", "stdout"])
        .args(["--mode", "logical"])
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `failover` and `synced` of `slot` on `pg`, as psql prints them, e.g. `"t|f"`.
fn slot_flags(pg: &Postgres, slot: &str) -> String {
    pg.psql(&format!(
        "SELECT failover, synced FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_failover_true_on_a_server_before_17_exits_2() {
    let pg = support::outbox_database().await;
    assert!(
        pg.major() < 17,
        "the system's PostgreSQL has no failover slots"
    );
    let config = config_file("slot_failover = true\n");
    let path = config.path().to_str().unwrap();
    let mut relay = support::start_relay(
        &pg,
        &["--config", path, "--sink", "stdout", "--mode", "logical"],
    );
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("the relay stops instead of retrying");
    let log = relay.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("invalid value for `slot_failover`")
            && log.contains(&format!("PostgreSQL {} has no failover slots", pg.major())),
        "{log}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "0",
        "no slot was created"
    );

    let output = command("check", &pg, &["--config", path]);
    let report = stdout(&output);
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("slot failover           FAIL  slot_failover = true, but PostgreSQL"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_17_the_slot_gets_failover_and_check_and_status_say_so() {
    let pg = Postgres::builder().major(17).start().unwrap();
    support::create_outbox(&pg).await;

    let report = stdout(&command("check", &pg, &[]));
    for expected in [
        &format!("slot failover           ok    the relay creates {SLOT} with failover at start"),
        "standby slots           WARN  synchronized_standby_slots is empty",
        "give each standby a physical slot (its primary_slot_name)",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }

    // A slot made before, without failover: the relay turns failover on.
    pg.psql("CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert')")
        .unwrap();
    pg.psql(&format!(
        "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"
    ))
    .unwrap();
    assert_eq!(slot_flags(&pg, SLOT), "f|f");
    let report = stdout(&command("check", &pg, &[]));
    assert!(
        report.contains(&format!(
            "slot failover           ok    {SLOT} has no failover yet; the relay turns it on at start"
        )),
        "{report}"
    );
    let mut relay = support::start_relay(&pg, &["--sink", "stdout", "--mode", "logical"]);
    support::scenarios::wait_streaming(&relay);
    support::stop_relay(&mut relay);
    assert!(relay.log().contains("turned on failover for the slot"));
    assert_eq!(slot_flags(&pg, SLOT), "t|f");
    let status = stdout(&command("status", &pg, &[]));
    assert!(
        status.contains("failover           true") && status.contains("synced             false"),
        "{status}"
    );

    // slot_failover = false: a new slot without failover.
    let config = config_file("slot_failover = false\n");
    let path = config.path().to_str().unwrap();
    let mut relay = support::start_relay(
        &pg,
        &[
            "--config", path, "--slot", "plain", "--sink", "stdout", "--mode", "logical",
        ],
    );
    support::scenarios::wait_streaming(&relay);
    support::stop_relay(&mut relay);
    assert_eq!(slot_flags(&pg, "plain"), "f|f");
    let report = stdout(&command("check", &pg, &["--config", path]));
    assert!(
        report.contains("slot failover           ok    off (slot_failover = false)"),
        "{report}"
    );
}

/// The primary of 17 is killed (-9) while writers commit and the relay streams; its synchronous standby
/// is promoted, and the relay, given both hosts with `target_session_attrs=read-write`, follows it and
/// resumes from the slot the standby synced: every committed event is delivered, in order per
/// aggregate, and nothing that the new primary lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_17_a_promoted_standby_has_the_slot_and_nothing_is_lost() {
    let mut primary = Postgres::builder().major(17).start().unwrap();
    support::create_outbox(&primary).await;
    let standby = primary.start_standby(Replication::Synchronous).unwrap();
    let report = stdout(&command("check", &primary, &[]));
    assert!(
        report.contains("standby slots           ok    synchronized_standby_slots = standby_"),
        "{report}"
    );

    let (target, mut reader) = redis_target();
    let window = ["--batch-size", "50", "--max-in-flight", "300"];
    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=3",
        primary.port(),
        standby.port()
    );
    let mut relay = target.relay_at(&both, &window);
    assert_eq!(slot_flags(&primary, SLOT), "t|f");
    // A synced slot stays temporary on the standby, and is dropped at promotion, until the primary's
    // slot has moved past the WAL the standby reserved for it: its restart_lsn moves at the running
    // transactions record, which the server logs every 15 s, or now.
    harness::wait_until(
        Duration::from_secs(60),
        "the standby to persist its copy of the relay's slot",
        || {
            primary.psql("SELECT pg_log_standby_snapshot()").unwrap();
            standby
                .psql(&format!(
                    "SELECT failover, synced, temporary FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
                ))
                .unwrap()
                == "t|t|f"
        },
    )
    .unwrap();
    let status = stdout(&command("status", &standby, &[]));
    assert!(
        status.contains("failover           true")
            && status.contains("synced             true")
            && status.contains("synced copy of the slot cannot be read before a promotion"),
        "{status}"
    );

    let url = primary.url();
    let writers =
        tokio::spawn(async move { workload::write_until_the_server_fails(&url, &FAULT).await });
    wait_confirmed_batches(&relay, 40);
    assert!(
        !writers.is_finished(),
        "the kill lands mid-stream, while writers still commit"
    );
    primary.kill9().unwrap();
    let killed = Instant::now();
    let mut written = writers.await.unwrap();
    let promoted = standby.promote().unwrap();
    let promoted_after = killed.elapsed();
    harness::wait_until(
        DEADLINE,
        "the relay to stream from the promoted standby",
        || relay.log().matches("streaming the outbox").count() >= 2,
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let resumed_after = killed.elapsed();
    assert_eq!(
        relay
            .log()
            .matches("created logical replication slot")
            .count(),
        1,
        "the relay found its slot on the promoted standby:\n{}",
        relay.log()
    );

    let ids = |pg: &Postgres| -> HashSet<String> {
        pg.psql("SELECT id FROM outbox")
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let on_standby = ids(&promoted);
    let acknowledged = written.committed();
    let in_doubt = written.uncertain.len();
    let settled = written.settle(&on_standby);
    let missing = written
        .per_aggregate
        .values()
        .flatten()
        .filter(|id| !on_standby.contains(*id))
        .count();
    assert_eq!(
        missing, 0,
        "a commit the primary acknowledged is not on its synchronous standby"
    );

    let small = Workload {
        writers: 2,
        transactions_per_writer: 20,
        ..CLEAN
    };
    let after = workload::write(&promoted.url(), &small).await;
    let received = reader
        .collect_until(DEADLINE, |r| {
            check(&written, r).lost == 0 && check(&after, r).lost == 0
        })
        .await;
    let report = check(&written, &received);
    let table = ids(&promoted);
    let phantoms = received
        .iter()
        .filter(|m| !table.contains(&m.headers["id"]))
        .count();
    eprintln!(
        "failover on 17: standby promoted {promoted_after:?} after the kill, relay streaming from it \
         {resumed_after:?} after it; {acknowledged} events acknowledged before the kill, {in_doubt} in doubt of which {settled} \
         committed, {} after the promotion; before: {report:?}; after: {:?}; {phantoms} delivered that the new \
         primary lacks",
        after.committed(),
        check(&after, &received)
    );
    report.assert_lossless();
    check(&after, &received).assert_lossless();
    assert_eq!(
        phantoms, 0,
        "the relay published an event the new primary lacks"
    );
    support::stop_relay(&mut relay);
}
