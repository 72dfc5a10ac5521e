//! The relay's life around the stream: prerequisites, stop signals, database restarts, catalog
//! objects, and configuration errors. Real PostgreSQL and Redis; the relay binary.

use crate::support;

use std::process::Command;
use std::time::Duration;

use harness::{Process, Reader};
use support::check::check;
use support::scenarios::{self, Target, CLEAN};
use support::workload::{self, Workload};

const DEADLINE: Duration = Duration::from_secs(120);

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

const SMALL: Workload = Workload {
    writers: 2,
    transactions_per_writer: 20,
    ..CLEAN
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_wal_level_replica_and_says_how_to_fix_it() {
    let pg = harness::Postgres::start_with_wal_level("replica").unwrap();
    let mut relay = support::start_relay(&pg, &["--sink", "stdout", "--mode", "logical"]);
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("the relay gives up instead of retrying");
    assert!(!status.success());
    let log = relay.log();
    assert!(log.contains("wal_level is 'replica'"), "{log}");
    assert!(
        log.contains("ALTER SYSTEM SET wal_level = logical"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_role_without_replication_and_names_the_grant() {
    let pg = support::outbox_database().await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE ROLE app LOGIN; GRANT SELECT ON outbox TO app;")
        .await
        .unwrap();
    let url = pg.url().replace("postgres@", "app@");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.args([
        "run",
        "--sink",
        "stdout",
        "--mode",
        "logical",
        "--database-url",
        &url,
    ]);
    let mut relay = harness::Process::start(cmd).unwrap();
    relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("the relay gives up");
    assert!(
        relay.log().contains("ALTER ROLE \"app\" WITH REPLICATION"),
        "{}",
        relay.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_publication_and_slot_and_drop_slot_removes_it() {
    let pg = support::outbox_database().await;
    let (target, _) = redis_target();
    let mut relay = target.relay(
        &pg,
        &["--slot", "custom_slot", "--publication", "custom_pub"],
    );
    let log = relay.log();
    assert!(
        log.contains("created publication") && log.contains("created logical replication slot"),
        "{log}"
    );
    support::stop_relay(&mut relay);
    let client = pg.client().await.unwrap();
    let publications: i64 = client
        .query_one("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'custom_pub' AND tablename = 'outbox'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 1);
    let drop = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args([
            "drop-slot",
            "--database-url",
            &pg.url(),
            "--slot",
            "custom_slot",
        ])
        .output()
        .unwrap();
    assert!(drop.status.success(), "{drop:?}");
    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
}

/// After SIGTERM the relay drains, acknowledges and exits 0, so the next relay re-sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_acknowledges_so_a_restart_resends_nothing() {
    let pg = support::outbox_database().await;
    let (target, mut reader) = redis_target();
    let mut relay = target.relay(&pg, &[]);
    let first = workload::write(&pg.url(), &SMALL).await;
    support::stop_relay(&mut relay);
    let mut relay = target.relay(&pg, &[]);
    let second = workload::write(&pg.url(), &SMALL).await;
    let received = reader
        .collect_until(DEADLINE, |r| {
            check(&first, r).lost == 0 && check(&second, r).lost == 0
        })
        .await;
    for written in [&first, &second] {
        let report = check(written, &received);
        report.assert_lossless();
        assert_eq!(report.duplicates, 0, "{report:?}");
    }
    support::stop_relay(&mut relay);
}

/// SIGTERM while the relay waits for a server that never answers stops it at once, not at the end
/// of the connect timeout (here 120 s, beyond the 30 s `stop_relay` allows): a Kafka broker, then
/// the database itself, in both `--mode auto` (which asks the catalog first) and `--mode logical`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_server_does_not_answer_stops_at_once() {
    // The kernel completes TCP handshakes on a listening socket, but nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();

    let pg = support::outbox_database().await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[kafka]\nmessage_timeout = \"120s\"\n").unwrap();
    let mut relay = support::start_relay(
        &pg,
        &[
            "--sink",
            "kafka",
            "--kafka-brokers",
            &silent,
            "--config",
            config.path().to_str().unwrap(),
        ],
    );
    // The slot first, then the broker: the relay now waits for the silent broker.
    harness::wait_until(DEADLINE, "the replication session", || {
        relay.log().contains("replication started")
    })
    .unwrap();
    support::stop_relay(&mut relay);
    assert!(
        relay
            .log()
            .contains("stopped while connecting to the broker"),
        "{}",
        relay.log()
    );

    let database_url = format!("postgres://postgres@{silent}/postgres?connect_timeout=120");
    for mode in ["auto", "logical"] {
        let mut relay = Process::start({
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
            cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
                .args(["run", "--database-url", &database_url, "--mode", mode])
                .args(["--sink", "stdout"]);
            cmd
        })
        .unwrap();
        support::metrics_addr(&relay);
        support::stop_relay(&mut relay);
    }
}

/// PostgreSQL crashes (immediate shutdown) and comes back: the relay reconnects and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_postgres_crash() {
    let (target, reader) = redis_target();
    scenarios::resumes_after_postgres_crash(target, reader).await;
}

/// Services may delete their outbox row in the inserting transaction; the event still flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_then_delete_in_one_transaction_still_relays() {
    let pg = support::outbox_database().await;
    let (target, mut reader) = redis_target();
    let mut relay = target.relay(&pg, &[]);
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "BEGIN;
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
               VALUES ('00000000-0000-0000-0000-000000000001', 'order', 'o-1', 'OrderConfirmed', '{}');
             DELETE FROM outbox WHERE id = '00000000-0000-0000-0000-000000000001';
             COMMIT;",
        )
        .await
        .unwrap();
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(
        received[0].headers["id"],
        "00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(received[0].headers["type"], "OrderConfirmed");
    harness::wait_until(DEADLINE, "the per-event log line", || {
        relay
            .log()
            .lines()
            .any(|l| l.contains("relayed") && l.contains("00000000-0000-0000-0000-000000000001"))
    })
    .unwrap();
    let line = relay
        .log()
        .lines()
        .find(|l| l.contains("relayed") && l.contains("00000000-0000-0000-0000-000000000001"))
        .map(str::to_owned)
        .unwrap();
    // Logical mode names the transaction's commit LSN, never polling's sequence number.
    let lsn = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("lsn="));
    assert!(
        lsn.is_some_and(|lsn| lsn != "0/0") && !line.contains("seq="),
        "{line}"
    );
    support::stop_relay(&mut relay);
}

fn relay_output(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let url = "postgres://relay:hunter2@127.0.0.1:1/db";
    let (code, err) = relay_output(
        &[
            "run",
            "--database-url",
            url,
            "--destination",
            "t.{aggregatetype",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`destination`") && err.contains("unclosed"),
        "{err}"
    );

    let (code, err) = relay_output(
        &["run", "--database-url", url],
        &[("OUTBOX_RELAY_PIPELINE__BATCH_SIZE", "many")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.to_lowercase().contains("pipeline.batch_size") && err.contains("OUTBOX_RELAY_"),
        "{err}"
    );

    let (code, err) = relay_output(&["run", "--database-url", url, "--sink", "kafak"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--sink"), "{err}");

    let (code, err) = relay_output(&["run"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("database_url"), "{err}");

    let (code, err) = relay_output(
        &[
            "run",
            "--database-url",
            "postgres://relay:hunter2@db:port/x",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("database_url") && !err.contains("hunter2"),
        "{err}"
    );

    let (code, err) = relay_output(&["--config", "/nonexistent/relay.toml", "run"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/relay.toml"), "{err}");
}

#[test]
fn passwords_stay_out_of_the_logs() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    let port = harness::free_port().unwrap();
    cmd.args([
        "run",
        "--sink",
        "stdout",
        "--database-url",
        &format!("postgres://relay:hunter2@127.0.0.1:{port}/db"),
    ]);
    let mut relay = harness::Process::start(cmd).unwrap();
    harness::wait_until(DEADLINE, "a failed attempt", || {
        relay.log().contains("retry_in")
    })
    .unwrap();
    relay.terminate().unwrap();
    relay.wait_timeout(DEADLINE).unwrap();
    assert!(!relay.log().contains("hunter2"), "{}", relay.log());
}

#[test]
fn ddl_matches_the_shipped_sql_file() {
    let (code, _) = relay_output(&["ddl"], &[]);
    assert_eq!(code, 0);
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .arg("ddl")
        .output()
        .unwrap();
    let shipped = [
        include_str!("../../sql/outbox.sql"),
        include_str!("../../sql/outbox_polling.sql"),
    ]
    .concat();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), shipped);
}

/// A quiet outbox in a busy database must not pin WAL: the relay acknowledges the server's
/// keepalive positions between transactions, so the slot follows writes to other tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_outbox_slot_follows_writes_to_other_tables() {
    let pg = support::outbox_database().await;
    let (target, _) = redis_target();
    let mut relay = target.relay(&pg, &[]);
    let client = pg.client().await.unwrap();
    client
        .batch_execute("CREATE TABLE busy (n int, pad text)")
        .await
        .unwrap();
    for _ in 0..20 {
        client
            .batch_execute(
                "INSERT INTO busy SELECT g, repeat('x', 200) FROM generate_series(1, 1000) g",
            )
            .await
            .unwrap();
    }
    let written: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    harness::wait_until(Duration::from_secs(60), "the slot to pass the other table's writes", || {
        pg.psql(&format!(
            "SELECT confirmed_flush_lsn >= '{written}'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'outbox_relay_slot'"
        ))
        .unwrap()
            == "t"
    })
    .unwrap();
    support::stop_relay(&mut relay);
}

#[test]
fn gives_up_after_the_configured_attempts() {
    let port = harness::free_port().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env("OUTBOX_RELAY_BACKOFF__MAX_ATTEMPTS", "2")
        .env("OUTBOX_RELAY_BACKOFF__INITIAL", "10ms")
        .args([
            "run",
            "--sink",
            "stdout",
            "--database-url",
            &format!("postgres://relay@127.0.0.1:{port}/db"),
        ]);
    let mut relay = harness::Process::start(cmd).unwrap();
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("the relay gives up");
    assert!(!status.success());
    assert!(
        relay.log().contains("gave up after 2 failed attempts"),
        "{}",
        relay.log()
    );
}

/// `--cleanup delete` empties the outbox behind the broker's confirmations; the default keeps rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_relayed_rows_only_when_asked() {
    let count = |pg: &harness::Postgres| pg.psql("SELECT count(*) FROM outbox").unwrap();
    for (mode, remaining) in [("keep", None), ("delete", Some("0"))] {
        let pg = support::outbox_database().await;
        let (target, mut reader) = redis_target();
        let mut relay = target.relay(&pg, &["--cleanup", mode]);
        let written = workload::write(&pg.url(), &SMALL).await;
        reader
            .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
            .await;
        match remaining {
            Some(expected) => harness::wait_until(
                Duration::from_secs(10),
                "relayed rows to be deleted",
                || count(&pg) == expected,
            )
            .unwrap(),
            None => {
                std::thread::sleep(Duration::from_millis(500));
                assert_eq!(count(&pg), written.committed().to_string());
            }
        }
        support::stop_relay(&mut relay);
    }
}

/// Settings no retry can fix stop the relay with the reason instead of looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfixable_settings_stop_the_relay() {
    let pg = support::outbox_database().await;
    let missing_db = pg.url().replace("/postgres", "/no_such_db");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0").args([
        "run",
        "--sink",
        "stdout",
        "--database-url",
        &missing_db,
    ]);
    let mut relay = harness::Process::start(cmd).unwrap();
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("an unknown database is fatal");
    assert!(
        !status.success() && relay.log().contains("no_such_db"),
        "{}",
        relay.log()
    );

    let config = support::kafka_properties(&[("no.such.property", "1")]);
    let mut relay = support::start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "kafka",
        ],
    );
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("an invalid librdkafka property is fatal");
    assert!(
        !status.success() && relay.log().contains("kafka.properties"),
        "{}",
        relay.log()
    );
}

/// A partitioned outbox publishes through its root, so rows in partitions flow like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_outbox_is_relayed() {
    let pg = harness::Postgres::start().unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE outbox (id uuid, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
                                  payload jsonb NOT NULL, headers jsonb, created_at timestamptz NOT NULL DEFAULT now(),
                                  PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
             CREATE TABLE outbox_past PARTITION OF outbox FOR VALUES FROM (MINVALUE) TO ('2026-01-01');
             CREATE TABLE outbox_now PARTITION OF outbox FOR VALUES FROM ('2026-01-01') TO (MAXVALUE);",
        )
        .await
        .unwrap();
    let (target, mut reader) = redis_target();
    let mut relay = target.relay(&pg, &[]);
    let written = workload::write(&pg.url(), &SMALL).await;
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    support::stop_relay(&mut relay);
}
