//! What the logical source does when the outbox table, its publication or its database change
//! under it: it follows what it can interpret (a new table under the outbox's name, a renamed
//! column, a SQL_ASCII database's bytes) and stops, with the fix, before acknowledging anything it
//! could not (a table outside the publication, a publication without inserts or dropped), and
//! `check` says the same.

use crate::support;

use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::{Postgres, Process};
use support::scenarios::Target;

const DEADLINE: Duration = Duration::from_secs(60);

const INSERT: &str = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
     SELECT gen_random_uuid(), 'order', 'a', 'T', '{}' FROM generate_series(1, 5);";

/// A streaming relay printing events to stdout.
fn start(pg: &Postgres, extra: &[&str]) -> Process {
    Target::new(&["--sink", "stdout"]).relay(pg, extra)
}

/// Waits for the relay to exit by itself, as it must on a condition it cannot get past.
fn exit_of(relay: &mut Process) -> (ExitStatus, String) {
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .unwrap_or_else(|| panic!("the relay did not stop:\n{}", relay.log()));
    (status, relay.log())
}

/// Events the stdout sink printed.
fn delivered(relay: &Process) -> usize {
    relay
        .log()
        .lines()
        .filter(|l| l.starts_with("{\"destination\""))
        .count()
}

fn wait_delivered(relay: &Process, events: usize) {
    harness::wait_until(DEADLINE, "the events to be relayed", || {
        delivered(relay) >= events
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
}

fn lsn(pg: &Postgres, expression: &str) -> i64 {
    pg.psql(&format!("SELECT ({expression} - '0/0')::bigint"))
        .unwrap()
        .parse()
        .unwrap()
}

fn confirmed(pg: &Postgres) -> i64 {
    lsn(
        pg,
        "(SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'outbox_relay_slot')",
    )
}

fn check(url: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--sink", "stdout", "--database-url", url])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Swaps the outbox while the relay runs, inserts into the new table, and checks the relay stops
/// without acknowledging those rows, with the fix that `check` prints as well.
async fn stops_before_rows_of_a_replaced_outbox(swap: &str) {
    let pg = support::outbox_database().await;
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    pg.psql(swap).unwrap();
    let before_new_rows = lsn(&pg, "pg_current_wal_lsn()");
    pg.psql(INSERT).unwrap();
    // Writes elsewhere move the server's WAL end on, which an idle outbox acknowledges.
    pg.psql("CREATE TABLE other (n int); INSERT INTO other SELECT generate_series(1, 1000);")
        .unwrap();
    let (status, log) = exit_of(&mut relay);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("publication outbox_relay_pub does not include public.outbox")
            && log.contains(
                "ALTER PUBLICATION \"outbox_relay_pub\" ADD TABLE \"public\".\"outbox\";"
            ),
        "{log}"
    );
    assert!(
        confirmed(&pg) <= before_new_rows,
        "the slot was acknowledged past rows never relayed"
    );
    let (ok, report) = check(&pg.url());
    assert!(
        !ok && report.contains(
            "publication             FAIL  publication outbox_relay_pub does not include public.outbox"
        ),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_swapped_by_rename_stops_the_relay_before_its_rows() {
    stops_before_rows_of_a_replaced_outbox(
        "CREATE TABLE outbox_new (LIKE outbox INCLUDING ALL);
         ALTER TABLE outbox RENAME TO outbox_old;
         ALTER TABLE outbox_new RENAME TO outbox;",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_dropped_and_recreated_stops_the_relay_before_its_rows() {
    stops_before_rows_of_a_replaced_outbox(&format!("DROP TABLE outbox; {}", support::OUTBOX_DDL))
        .await;
}

/// Added to the publication in the swap's own transaction, the new table's rows are streamed; but
/// the relay cannot tell that from a table added after rows were written, so it stops and asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_swapped_and_added_to_the_publication_stops_the_relay_with_the_question() {
    let pg = support::outbox_database().await;
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    pg.psql(
        "CREATE TABLE outbox_new (LIKE outbox INCLUDING ALL);
         ALTER TABLE outbox RENAME TO outbox_old;
         ALTER TABLE outbox_new RENAME TO outbox;
         ALTER PUBLICATION outbox_relay_pub ADD TABLE outbox;",
    )
    .unwrap();
    let before_new_rows = lsn(&pg, "pg_current_wal_lsn()");
    pg.psql(INSERT).unwrap();
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success()
            && log.contains("outbox table public.outbox was replaced while the relay ran")
            && log.contains("then start the relay again"),
        "{log}"
    );
    assert!(confirmed(&pg) <= before_new_rows);
    // Its rows were streamed, so the next relay goes on with them.
    let mut relay = start(&pg, &[]);
    wait_delivered(&relay, 5);
    support::stop_relay(&mut relay);
}

/// A `FOR ALL TABLES` publication carries a table created under the outbox's name from its first
/// row, under a new relation id: the relay maps it and relays its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_outbox_in_a_publication_for_all_tables_is_followed() {
    let pg = support::outbox_database().await;
    pg.psql("CREATE PUBLICATION outbox_relay_pub FOR ALL TABLES WITH (publish = 'insert')")
        .unwrap();
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    pg.psql(&format!("DROP TABLE outbox; {}", support::OUTBOX_DDL))
        .unwrap();
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 10);
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_without_inserts_is_refused_by_run_and_check() {
    let pg = support::outbox_database().await;
    pg.psql(
        "CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'update, delete')",
    )
    .unwrap();
    let fix = "ALTER PUBLICATION \"outbox_relay_pub\" SET (publish = 'insert, update, delete');";
    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success()
            && log.contains("publication outbox_relay_pub does not publish inserts")
            && log.contains(fix),
        "{log}"
    );
    let (ok, report) = check(&pg.url());
    assert!(
        !ok && report.contains("publication             FAIL  publication outbox_relay_pub does not publish inserts (publish = 'update, delete')")
            && report.contains(fix),
        "{report}"
    );

    // Following the fix, the relay runs; taking inserts away again stops it before those rows.
    pg.psql(fix).unwrap();
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    pg.psql("ALTER PUBLICATION outbox_relay_pub SET (publish = 'update, delete')")
        .unwrap();
    let before = lsn(&pg, "pg_current_wal_lsn()");
    pg.psql(&INSERT.replace("5)", "20)")).unwrap();
    pg.psql("CREATE TABLE other (n int); INSERT INTO other SELECT generate_series(1, 1000);")
        .unwrap();
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success() && log.contains("does not publish inserts"),
        "{log}"
    );
    assert_eq!(delivered(&relay), 5, "{log}");
    assert!(
        confirmed(&pg) <= before,
        "the slot was acknowledged past inserts never streamed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_publication_stops_the_relay_with_the_recovery_procedure() {
    let pg = support::outbox_database().await;
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    pg.psql("DROP PUBLICATION outbox_relay_pub").unwrap();
    pg.psql(INSERT).unwrap();
    let (status, log) = exit_of(&mut relay);
    let procedure =
        "run `outbox-relay drop-slot --slot outbox_relay_slot` and start the relay again";
    assert!(
        !status.success()
            && log.contains("publication outbox_relay_pub was dropped")
            && log.contains(procedure),
        "{log}"
    );
    // A restart neither re-creates the publication nor loops.
    let mut again = support::start_relay(&pg, &["--sink", "stdout"]);
    let (status, log) = exit_of(&mut again);
    assert!(!status.success() && log.contains(procedure), "{log}");
    let (ok, report) = check(&pg.url());
    assert!(
        !ok && report
            .contains("publication             FAIL  publication outbox_relay_pub was dropped")
            && report.contains(procedure),
        "{report}"
    );

    // The procedure: a fresh slot and publication, then rows flow again.
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["drop-slot", "--database-url", &pg.url()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    support::stop_relay(&mut relay);
}

/// The backlog: rows before a column rename, a transaction that inserts on both sides of the
/// rename, and rows after it.
const RENAME: [&str; 3] = [
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
         SELECT gen_random_uuid(), 'order', 'a', 'T', '{\"n\":1}' FROM generate_series(1, 2)",
    // One transaction: psql runs the statements of one -c in one.
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
         SELECT gen_random_uuid(), 'order', 'a', 'T', '{\"n\":2}' FROM generate_series(1, 2);
     ALTER TABLE outbox RENAME COLUMN payload TO body;
     INSERT INTO outbox (id, aggregatetype, aggregateid, type, body)
         SELECT gen_random_uuid(), 'order', 'a', 'T', '{\"n\":3}' FROM generate_series(1, 2);",
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, body)
         SELECT gen_random_uuid(), 'order', 'a', 'T', '{\"n\":4}' FROM generate_series(1, 2)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_rename_is_followed_with_the_old_and_the_new_mapping() {
    let pg = support::outbox_database().await;
    // Two slots, both older than the backlog: one relay for each mapping.
    for slot in ["outbox_relay_slot", "renamed"] {
        let mut relay = start(&pg, &["--slot", slot]);
        support::stop_relay(&mut relay);
    }
    for transaction in RENAME {
        pg.psql(transaction).unwrap();
    }

    let mut old_names = start(&pg, &[]);
    wait_delivered(&old_names, 8);
    assert!(
        old_names.log().contains("following the rename by position"),
        "{}",
        old_names.log()
    );
    support::stop_relay(&mut old_names);

    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[outbox.columns]\npayload = \"body\"\n").unwrap();
    let mut new_names = start(
        &pg,
        &[
            "--slot",
            "renamed",
            "--config",
            config.path().to_str().unwrap(),
        ],
    );
    wait_delivered(&new_names, 8);
    let log = new_names.log();
    for n in 1..=4 {
        assert_eq!(
            log.matches(&format!("\"payload\":{{\"n\":{n}}}")).count(),
            2,
            "{log}"
        );
    }
    support::stop_relay(&mut new_names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_stop_acknowledges_what_was_relayed_before_it() {
    let pg = support::outbox_database().await;
    let mut relay = start(&pg, &[]);
    support::stop_relay(&mut relay);
    let before = lsn(&pg, "pg_current_wal_lsn()");
    pg.psql(INSERT).unwrap();
    pg.psql(
        "ALTER TABLE outbox DROP COLUMN aggregatetype;
         INSERT INTO outbox (id, aggregateid, type, payload) VALUES (gen_random_uuid(), 'a', 'T', '{}');",
    )
    .unwrap();
    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success() && log.contains("lacks the column(s) [\"aggregatetype\"]"),
        "{log}"
    );
    assert_eq!(delivered(&relay), 5, "{log}");
    assert!(
        confirmed(&pg) > before,
        "the rows relayed before the stop were not acknowledged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_ascii_database_with_latin1_bytes_keeps_relaying() {
    sql_ascii_latin1_bytes_are_relayed("logical").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_ascii_database_with_latin1_bytes_keeps_polling() {
    sql_ascii_latin1_bytes_are_relayed("polling").await;
}

async fn sql_ascii_latin1_bytes_are_relayed(mode: &str) {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE legacy ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        .unwrap();
    let url = format!("{}/legacy", pg.url().rsplit_once('/').unwrap().0);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(support::OUTBOX_DDL).await.unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    command
        .env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .args([
            "run",
            "--sink",
            "stdout",
            "--mode",
            mode,
            "--database-url",
            &url,
        ]);
    let mut relay = Process::start(command).unwrap();
    if mode == "logical" {
        support::scenarios::wait_streaming(&relay);
    }
    // chr(233) is the single byte 0xE9 here: Latin-1 for é, not UTF-8.
    client
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
                 VALUES ('00000000-0000-0000-0000-000000000001', 'order', 'caf' || chr(233), 'T',
                         ('{\"name\": \"caf' || chr(233) || '\"}')::jsonb);
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
                 VALUES ('00000000-0000-0000-0000-000000000002', 'order', 'b', 'T', '{}');",
        )
        .await
        .unwrap();
    wait_delivered(&relay, 2);
    let log = relay.log();
    assert!(
        log.contains("00000000-0000-0000-0000-000000000002")
            && log.contains("\"payload\":{\"name\":\"caf\u{e9}\"}")
            && log.contains("not UTF-8"),
        "{log}"
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlogged_table_or_a_view_as_outbox_stops_the_relay() {
    let pg = Postgres::start().unwrap();
    pg.psql(&support::OUTBOX_DDL.replace("CREATE TABLE", "CREATE UNLOGGED TABLE"))
        .unwrap();
    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    let (status, log) = exit_of(&mut relay);
    let fix = "ALTER TABLE \"public\".\"outbox\" SET LOGGED;";
    assert!(
        !status.success() && log.contains("is UNLOGGED") && log.contains(fix),
        "{log}"
    );
    let (ok, report) = check(&pg.url());
    assert!(
        !ok && report
            .contains("outbox table            FAIL  outbox table public.outbox is UNLOGGED")
            && report.contains(fix),
        "{report}"
    );

    pg.psql("ALTER TABLE outbox SET LOGGED; CREATE VIEW outbox_view AS SELECT * FROM outbox")
        .unwrap();
    let mut relay =
        support::start_relay(&pg, &["--sink", "stdout", "--table", "public.outbox_view"]);
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success() && log.contains("outbox public.outbox_view is a view"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_outbox_in_a_publication_without_partition_root_gets_the_right_fix() {
    let pg = Postgres::start().unwrap();
    pg.psql(
        "CREATE TABLE outbox (id uuid, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
                              payload jsonb NOT NULL, headers jsonb, created_at timestamptz NOT NULL DEFAULT now(),
                              PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
         CREATE TABLE outbox_now PARTITION OF outbox FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
         CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert');",
    )
    .unwrap();
    let fix = "ALTER PUBLICATION \"outbox_relay_pub\" SET (publish_via_partition_root = true);";
    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    let (status, log) = exit_of(&mut relay);
    assert!(
        !status.success() && log.contains("publish_via_partition_root is off") && log.contains(fix),
        "{log}"
    );
    let (ok, report) = check(&pg.url());
    assert!(!ok && report.contains(fix), "{report}");

    pg.psql(fix).unwrap();
    let mut relay = start(&pg, &[]);
    pg.psql(INSERT).unwrap();
    wait_delivered(&relay, 5);
    support::stop_relay(&mut relay);
}
