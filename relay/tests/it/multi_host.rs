//! Database URLs naming several hosts, as libpq takes them: the relay's sessions (catalog and
//! replication, or polling's) skip a host that is down or not of the kind `target_session_attrs`
//! asks for, and when no host will do, the error names every host tried and why. A polling relay
//! given a primary and its synchronous standby follows the promotion after the primary's kill -9.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Postgres, Process, Reader, Replication};
use serde_json::json;

use crate::support::check::check;
use crate::support::scenarios::{wait_confirmed_batches, wait_streaming, Target};
use crate::support::workload::{self, Workload, Written, AGGREGATE_TYPES};
use crate::support::{create_outbox, outbox_database, stop_relay};

const SMALL: Workload = Workload {
    writers: 2,
    transactions_per_writer: 25,
    events_per_transaction: 4,
    aggregates_per_writer: 3,
    rollback_every: 5,
    padding: 32,
    pause: Duration::ZERO,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// `outbox-relay run` on `url` with `target`'s sink and destinations, and `env` set.
fn start_relay(url: &str, target: &Target, env: &[(&str, &str)]) -> Process {
    start_relay_with(url, target, env, &[])
}

pub(crate) fn start_relay_with(
    url: &str,
    target: &Target,
    env: &[(&str, &str)],
    args: &[&str],
) -> Process {
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.envs(env.iter().copied());
    cmd.args([
        "--log-level",
        "outbox_relay=debug,pgconn=debug,info",
        "run",
        "--database-url",
        url,
        "--destination",
        &destination,
    ]);
    cmd.args(&target.sink_args);
    cmd.args(args);
    Process::start(cmd).expect("relay starts")
}

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

/// Writes a workload to `pg` and checks every committed event arrived, in order per aggregate.
async fn assert_events_flow(pg: &Postgres, reader: &mut Reader) {
    let written = workload::write(&pg.url(), &SMALL).await;
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    report.assert_lossless();
    assert_eq!(report.delivered, written.committed());
}

/// Waits for the relay to exit by itself and returns its exit code and log.
fn exit_code(relay: &mut Process) -> (i32, String) {
    let status = relay
        .wait_timeout(Duration::from_secs(90))
        .unwrap()
        .unwrap_or_else(|| panic!("the relay exits by itself:\n{}", relay.log()));
    (status.code().unwrap_or(-1), relay.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_nobody_listens_on_is_skipped_by_both_sessions() {
    let (target, mut reader) = redis_target();
    let pg = outbox_database().await;
    let dead = harness::free_port().unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{}/postgres?connect_timeout=5",
        pg.port()
    );
    let mut relay = start_relay(&url, &target, &[]);
    wait_streaming(&relay);
    assert_events_flow(&pg, &mut reader).await;
    let log = relay.log();
    let skips: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connected to a later host of the database URL"))
        .collect();
    // The catalog session and the replication session each skipped the dead host.
    assert!(
        skips.len() >= 2
            && skips
                .iter()
                .all(|l| l.contains(&format!("127.0.0.1:{dead}"))
                    && l.contains("Connection refused")),
        "{log}"
    );
    let streaming: i64 = pg
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'outbox-relay'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(streaming, 1, "the replication session is on the live host");
    stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_skips_a_read_only_server_and_streams_from_the_next() {
    let (target, mut reader) = redis_target();
    // For `read-write`, a server whose sessions are read-only by default is what a hot standby is.
    let read_only = Postgres::start_with_settings(&["default_transaction_read_only=on"]).unwrap();
    let primary = outbox_database().await;
    let url = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres target_session_attrs=read-write",
        read_only.port(),
        primary.port()
    );
    let mut relay = start_relay(&url, &target, &[]);
    wait_streaming(&relay);
    assert_events_flow(&primary, &mut reader).await;
    let log = relay.log();
    assert!(
        log.lines()
            .filter(
                |l| l.contains("connected to a later host of the database URL")
                    && l.contains("read-only (transaction_read_only is on)")
            )
            .count()
            >= 2,
        "{log}"
    );
    let slots: i64 = read_only
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "the read-only server was left alone");
    stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_acceptable_host_the_error_names_each_host_and_why() {
    let (target, _reader) = redis_target();
    let read_only = Postgres::start_with_settings(&["default_transaction_read_only=on"]).unwrap();
    let dead = harness::free_port().unwrap();
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{dead},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        read_only.port()
    );
    let mut relay = start_relay(
        &url,
        &target,
        &[("OUTBOX_RELAY_BACKOFF__MAX_ATTEMPTS", "2")],
    );
    let (code, log) = exit_code(&mut relay);
    // Retried as a passing failure (a standby about to be promoted), then given up: exit 1.
    assert_eq!(code, 1, "{log}");
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        last.contains("gave up after 2 failed attempts")
            && last.contains("no server is acceptable for target_session_attrs=read-write")
            && last.contains(&format!("127.0.0.1:{dead}: error connecting to server"))
            && last.contains(&format!(
                "127.0.0.1:{}: read-only (transaction_read_only is on)",
                read_only.port()
            )),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_only_session_attribute_is_a_configuration_error() {
    let (target, _reader) = redis_target();
    let url = "postgres://postgres:hunter2@127.0.0.1:1,127.0.0.1:2/postgres?target_session_attrs=prefer-standby";
    let mut relay = start_relay(url, &target, &[]);
    let (code, log) = exit_code(&mut relay);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("target_session_attrs=prefer-standby")
            && log.contains("use read-write or primary")
            && !log.contains("hunter2"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_follows_the_same_hosts() {
    let (target, mut reader) = redis_target();
    let pg = Postgres::start_with_wal_level("replica").unwrap();
    create_outbox(&pg).await;
    let dead = harness::free_port().unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{}/postgres?target_session_attrs=primary",
        pg.port()
    );
    let mut relay = start_relay(&url, &target, &[]);
    wait_streaming(&relay);
    assert_events_flow(&pg, &mut reader).await;
    assert!(
        relay
            .log()
            .contains("streaming the outbox mode=\"polling\""),
        "{}",
        relay.log()
    );
    stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_each_host_under_its_own_name() {
    let (target, mut reader) = redis_target();
    let pg = Postgres::start_with_tls().unwrap();
    create_outbox(&pg).await;
    let ca = pg.ca_cert().unwrap().display().to_string();
    // One server under two names: the certificate names `localhost`, not the first.
    let url = format!(
        "host=db.example.invalid,localhost hostaddr=127.0.0.1,127.0.0.1 port={0},{0} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}",
        pg.port()
    );
    let mut relay = start_relay(&url, &target, &[]);
    wait_streaming(&relay);
    assert_events_flow(&pg, &mut reader).await;
    let log = relay.log();
    let skips: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connected to a later host of the database URL"))
        .collect();
    assert!(
        skips.len() >= 2
            && skips.iter().all(|l| l.contains("server=localhost:")
                && l.contains("db.example.invalid:")
                && l.contains("not valid for name")),
        "{log}"
    );
    let client = pg.client().await.unwrap();
    harness::assert_sessions_encrypted(&client, "outbox-relay", "postgres").await;
    let replication_encrypted: bool = client
        .query_one(
            "SELECT bool_and(ssl) FROM pg_stat_replication JOIN pg_stat_ssl USING (pid) WHERE application_name = 'outbox-relay'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        replication_encrypted,
        "the replication session is encrypted"
    );
    stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_follows_a_promoted_standby_after_the_primary_is_killed() {
    let (target, mut reader) = redis_target();
    // wal_level=replica: `auto` polls, and no slot has to survive the failover.
    let mut primary = Postgres::start_with_wal_level("replica").unwrap();
    create_outbox(&primary).await;
    let standby = primary.start_standby(Replication::Synchronous).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=3",
        primary.port(),
        standby.port()
    );
    let mut relay = start_relay_with(&url, &target, &[], &["--batch-size", "20"]);
    wait_streaming(&relay);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_through_failover(url.clone(), format!("{run}-{w}"))))
        .collect();
    wait_confirmed_batches(&relay, 10);
    let killed = Instant::now();
    primary.kill9().unwrap();
    let promoted = standby.promote().unwrap();
    let promoted_after = killed.elapsed();
    harness::wait_until(DEADLINE, "the relay to poll the promoted standby", || {
        relay
            .log()
            .matches("streaming the outbox mode=\"polling\"")
            .count()
            >= 2
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let resumed_after = killed.elapsed();
    let mut written = Written::default();
    let mut in_doubt = 0;
    for writer in writers {
        let (mine, doubted) = writer.await.unwrap();
        in_doubt += doubted;
        written.per_aggregate.extend(mine.per_aggregate);
        written.rolled_back.extend(mine.rolled_back);
        written.correlation.extend(mine.correlation);
    }
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    let log = relay.log();
    eprintln!(
        "failover: {} events committed ({in_doubt} transactions in doubt at the kill, {} of their events not committed), {report:?}; standby promoted {promoted_after:?} after the kill, relay polling the new primary {resumed_after:?} after it",
        written.committed(),
        written.rolled_back.len(),
    );
    for line in log.lines().filter(|l| {
        l.contains("no server is acceptable")
            || l.contains("later host")
            || l.contains("session failed")
    }) {
        eprintln!("relay: {line}");
    }
    report.assert_lossless();
    assert!(written.committed() >= 2000, "{}", written.committed());
    assert!(
        log.contains("no server is acceptable for target_session_attrs=read-write")
            || log.contains("connected to a later host of the database URL"),
        "{log}"
    );
    let unpublished: i64 = promoted
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unpublished, 0, "every row is marked on the new primary");
    stop_relay(&mut relay);
}

/// A writer as a service is one: transactions of four events on its three aggregates, through the
/// multi-host URL, reconnecting after the primary's death until the promoted standby takes writes.
/// A transaction whose commit was not answered is looked up on the new primary. Returns what
/// committed and how many transactions were in doubt.
pub(crate) async fn write_through_failover(url: String, writer: String) -> (Written, usize) {
    let mut written = Written::default();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut in_doubt: Option<(Vec<(String, String)>, String)> = None;
    let mut doubted = 0;
    let mut t = 0;
    while t < 150 || in_doubt.is_some() {
        let Some(c) = client.as_mut() else {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((c, connection)) => {
                    tokio::spawn(connection);
                    client = Some(c);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            continue;
        };
        if let Some((ids, correlation)) = in_doubt.take() {
            match c
                .query_one(
                    "SELECT count(*) FROM outbox WHERE id = $1::text::uuid",
                    &[&ids[0].1],
                )
                .await
            {
                Ok(row) if row.get::<_, i64>(0) > 0 => record(&mut written, ids, &correlation),
                Ok(_) => written
                    .rolled_back
                    .extend(ids.into_iter().map(|(_, id)| id)),
                Err(_) => {
                    in_doubt = Some((ids, correlation));
                    client = None;
                }
            }
            continue;
        }
        let correlation = uuid::Uuid::new_v4().to_string();
        let ids: Vec<(String, String)> = (0..4)
            .map(|e| {
                let aggregate = format!("{writer}-{}", (t * 4 + e) % 3);
                (aggregate, uuid::Uuid::new_v4().to_string())
            })
            .collect();
        match insert(c, &ids, &correlation).await {
            Ok(()) => record(&mut written, ids, &correlation),
            Err(_) => {
                doubted += 1;
                in_doubt = Some((ids, correlation));
                client = None;
            }
        }
        t += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    (written, doubted)
}

async fn insert(
    client: &mut tokio_postgres::Client,
    ids: &[(String, String)],
    correlation: &str,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    for (aggregate, id) in ids {
        let n: usize = aggregate.rsplit('-').next().unwrap().parse().unwrap();
        let headers = json!({"correlation_id": correlation, "traceparent": format!("00-{}-{}-01", uuid::Uuid::new_v4().simple(), &uuid::Uuid::new_v4().simple().to_string()[..16])});
        tx.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ($1::text::uuid, $2, $3, 'Changed', '{}'::jsonb, $4::text::jsonb)",
            &[id, &AGGREGATE_TYPES[n % 2], aggregate, &headers.to_string()],
        )
        .await?;
    }
    tx.commit().await
}

fn record(written: &mut Written, ids: Vec<(String, String)>, correlation: &str) {
    for (aggregate, id) in ids {
        written
            .correlation
            .insert(id.clone(), correlation.to_owned());
        written.per_aggregate.entry(aggregate).or_default().push(id);
    }
}

/// The same failover in logical mode on PostgreSQL 17, whose standby keeps a synced copy of the
/// relay's failover slot: the relay, never restarted, finds the new primary through the URL and its
/// slot there, and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_on_17_follows_a_promoted_standby_to_its_synced_slot() {
    let (target, mut reader) = redis_target();
    let mut primary = Postgres::builder().major(17).start().unwrap();
    create_outbox(&primary).await;
    let standby = primary.start_standby(Replication::Synchronous).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=3",
        primary.port(),
        standby.port()
    );
    let mut relay = start_relay_with(&url, &target, &[], &["--batch-size", "20"]);
    wait_streaming(&relay);
    // A synced slot stays temporary on the standby, and is dropped at promotion, until the primary
    // logs a running-transactions record past the WAL the standby reserved for it.
    harness::wait_until(DEADLINE, "the standby to persist its copy of the slot", || {
        primary.psql("SELECT pg_log_standby_snapshot()").unwrap();
        standby
            .psql("SELECT synced, temporary FROM pg_replication_slots WHERE slot_name = 'outbox_relay_slot'")
            .unwrap()
            == "t|f"
    })
    .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_through_failover(url.clone(), format!("{run}-{w}"))))
        .collect();
    wait_confirmed_batches(&relay, 10);
    let killed = Instant::now();
    primary.kill9().unwrap();
    let promoted = standby.promote().unwrap();
    let promoted_after = killed.elapsed();
    harness::wait_until(
        DEADLINE,
        "the relay to stream from the promoted standby",
        || {
            relay
                .log()
                .matches("streaming the outbox mode=\"logical\"")
                .count()
                >= 2
        },
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let resumed_after = killed.elapsed();
    let mut written = Written::default();
    let mut in_doubt = 0;
    for writer in writers {
        let (mine, doubted) = writer.await.unwrap();
        in_doubt += doubted;
        written.per_aggregate.extend(mine.per_aggregate);
        written.rolled_back.extend(mine.rolled_back);
        written.correlation.extend(mine.correlation);
    }
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    let log = relay.log();
    eprintln!(
        "logical failover on 17: {} events committed ({in_doubt} transactions in doubt at the kill, {} of their events not committed), {report:?}; standby promoted {promoted_after:?} after the kill, relay streaming from it {resumed_after:?} after it",
        written.committed(),
        written.rolled_back.len(),
    );
    report.assert_lossless();
    assert!(written.committed() >= 2000, "{}", written.committed());
    assert_eq!(
        log.matches("created logical replication slot").count(),
        1,
        "the relay found its slot on the promoted standby instead of creating one:\n{log}"
    );
    assert!(
        promoted.psql("SELECT pg_is_in_recovery()").unwrap() == "f",
        "the standby was promoted"
    );
    stop_relay(&mut relay);
}
