//! Backlog drain throughput: how fast the relay empties a replication slot into each broker,
//! against `pg_recvlogical`, which drains the same pgoutput backlog as fast as the server can decode
//! it (the physical limit, see DESIGN.md "Measure against the limit"), and how fast polling mode
//! empties the same backlog from the table.
//!
//! For each target, on a fresh PostgreSQL cluster: the outbox table (with polling's columns),
//! publication and slot are created first, so that the whole backlog is retained; then
//! `BENCH_EVENTS` events are written in transactions of `BENCH_TX_EVENTS` rows (≈200-byte JSON
//! payloads, a correlation id header, 50 aggregates) and `pg_current_wal_lsn()` is recorded as the
//! end. The clock runs from starting `pg_recvlogical --endpos` to its exit, or from starting
//! `outbox-relay run` (default batch settings, `--mode logical`) until the slot's
//! `confirmed_flush_lsn` reaches the end, polled every 50 ms. `polling-redis` runs the relay with
//! `--mode polling` (no publication or slot is created for it) until no row is left with
//! `published_at IS NULL`. The table is analyzed and checkpointed before the clock starts. The
//! relay's startup (process start to "streaming the outbox") is included in its time and also
//! shown on its own, and its peak RSS (`VmHWM`) is read just before it is stopped. CPU seconds over
//! the drain are read for the relay, its walsender and all PostgreSQL processes together. After
//! each relay run the broker's message count is read back and printed.
//!
//! Run it with
//!
//! ```text
//! scripts/services.sh                      # shared Redis and RabbitMQ
//! export TANSU_BIN=$(scripts/install-tansu.sh | tail -n 1)
//! cargo bench -p outbox-relay --bench throughput
//! ```
//!
//! Environment: `BENCH_EVENTS` (default 100000, a few minutes on 2 cores; the figure quoted in
//! issue 6 is for 1000000), `BENCH_TX_EVENTS` (default 100), `BENCH_TARGETS` (comma-separated
//! subset of `pg_recvlogical,stdout,redis,rabbitmq,kafka,polling-redis`, default all), `BENCH_RELAY_ARGS` (extra
//! flags for `outbox-relay run`, e.g. `--batch-size 500` or `--config tuning.toml`; default none, so
//! the relay's defaults are measured). `cargo bench` builds this
//! file and the relay binary with the release profile; the header line shows which binary ran.
//! `cargo test --bench throughput` runs it with debug builds, as CI does at a tiny `BENCH_EVENTS`
//! to check that it still works (scripts/test.sh); its numbers mean nothing.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use harness::{Kafka, Postgres, Process};
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use common::{AGGREGATES, AGGREGATE_TYPE, INSERT, RELAY};

const SLOT: &str = "outbox_relay_slot";
const PUBLICATION: &str = "outbox_relay_pub";
const SLOT_POLL: Duration = Duration::from_millis(50);
/// Finer than the slot poll: startup takes only tens of milliseconds.
const LOG_POLL: Duration = Duration::from_millis(5);
/// Brokers may count a message a moment after confirming it.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    PgRecvlogical,
    Stdout,
    Redis,
    RabbitMq,
    Kafka,
    /// The relay in polling mode, to Redis.
    PollingRedis,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::PgRecvlogical,
        Target::Stdout,
        Target::Redis,
        Target::RabbitMq,
        Target::Kafka,
        Target::PollingRedis,
    ];

    fn polls(self) -> bool {
        self == Target::PollingRedis
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str, so that the table's width specifiers apply.
        f.pad(match self {
            Target::PgRecvlogical => "pg_recvlogical",
            Target::Stdout => "stdout",
            Target::Redis => "redis",
            Target::RabbitMq => "rabbitmq",
            Target::Kafka => "kafka",
            Target::PollingRedis => "polling-redis",
        })
    }
}

struct Settings {
    events: i64,
    tx_events: i64,
    targets: Vec<Target>,
    relay_args: Vec<String>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let number = |name: &str, default: i64| -> Result<i64> {
            match std::env::var(name) {
                Ok(text) => {
                    let value: i64 = text.replace('_', "").parse().with_context(|| {
                        format!("{name}={text:?} is not a whole number of events")
                    })?;
                    ensure!(value > 0, "{name} must be at least 1");
                    Ok(value)
                }
                Err(_) => Ok(default),
            }
        };
        let targets = match std::env::var("BENCH_TARGETS") {
            Ok(list) => list
                .split(',')
                .map(|name| {
                    Target::ALL
                        .into_iter()
                        .find(|t| t.to_string() == name.trim())
                        .with_context(|| format!("BENCH_TARGETS: unknown target {name:?}"))
                })
                .collect::<Result<_>>()?,
            Err(_) => Target::ALL.to_vec(),
        };
        Ok(Settings {
            events: number("BENCH_EVENTS", 100_000)?,
            tx_events: number("BENCH_TX_EVENTS", 100)?,
            targets,
            relay_args: common::relay_args(),
        })
    }
}

struct Measurement {
    target: Target,
    seconds: f64,
    /// Relay only: process start to "streaming the outbox".
    startup: Option<f64>,
    /// Relay only: CPU seconds of the relay and of the walsender decoding for it, while draining.
    relay_cpu: Option<f64>,
    walsender_cpu: Option<f64>,
    /// Relay only: CPU seconds of every PostgreSQL process while draining, walsender included.
    server_cpu: Option<f64>,
    /// Relay only: peak resident set size in bytes.
    peak_rss: Option<u64>,
    /// What the broker holds afterwards; `None` where nothing can be counted.
    delivered: Option<u64>,
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    print_machine(&settings);
    // Several workers, so that the database connection's task keeps running while the harness's
    // blocking start functions hold one of them.
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    for &target in &settings.targets {
        let result = runtime
            .block_on(measure(target, &settings))
            .with_context(|| format!("measuring {target}"))?;
        eprintln!("{target}: {:.2} s", result.seconds);
        results.push(result);
    }
    print_table(&settings, &results);
    Ok(())
}

fn print_machine(settings: &Settings) {
    common::print_machine();
    println!(
        "backlog: {} events in transactions of {}, {AGGREGATES} aggregates; relay flags: {}",
        settings.events,
        settings.tx_events,
        if settings.relay_args.is_empty() {
            "defaults".to_owned()
        } else {
            settings.relay_args.join(" ")
        }
    );
}

fn print_table(settings: &Settings, results: &[Measurement]) {
    let limit = results
        .iter()
        .find(|m| m.target == Target::PgRecvlogical)
        .map(|m| settings.events as f64 / m.seconds);
    let seconds = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.2}"));
    println!();
    println!(
        "{:<15} {:>9} {:>8} {:>9} {:>17} {:>9} {:>9} {:>13} {:>10} {:>13} {:>9}",
        "target",
        "events",
        "seconds",
        "events/s",
        "vs pg_recvlogical",
        "startup s",
        "relay cpu",
        "walsender cpu",
        "server cpu",
        "peak RSS MiB",
        "delivered"
    );
    for m in results {
        let rate = settings.events as f64 / m.seconds;
        let ratio = limit.map_or("-".into(), |limit| format!("{:.2}", rate / limit));
        let delivered = m.delivered.map_or("-".into(), |n| n.to_string());
        println!(
            "{:<15} {:>9} {:>8.2} {:>9.0} {:>17} {:>9} {:>9} {:>13} {:>10} {:>13} {:>9}",
            m.target,
            settings.events,
            m.seconds,
            rate,
            ratio,
            m.startup.map_or("-".into(), |s| format!("{s:.3}")),
            seconds(m.relay_cpu),
            seconds(m.walsender_cpu),
            seconds(m.server_cpu),
            common::mib(m.peak_rss),
            delivered
        );
    }
    println!(
        "seconds include the relay's startup; cpu columns are CPU seconds used while draining \
         (server: every PostgreSQL process; polling has no walsender); peak RSS is the relay's VmHWM; stdout goes to /dev/null, so it \
         has no count"
    );
    println!("load average at the end: {}", common::load());
}

async fn measure(target: Target, settings: &Settings) -> Result<Measurement> {
    let destination = harness::unique("bench");
    // The broker first: a missing broker should fail before the backlog is written.
    let broker = Broker::start(target, &destination).await?;
    let backlog = Backlog::write(settings, !target.polls()).await?;
    let result = match target {
        Target::PgRecvlogical => {
            let seconds = run_pg_recvlogical(&backlog)?;
            // Its flush feedback shows that it read to the end rather than stopping early.
            let (drained, confirmed, _) = backlog.slot().await?;
            ensure!(
                drained,
                "pg_recvlogical exited with the slot confirmed only up to {confirmed}"
            );
            Measurement {
                target,
                seconds,
                startup: None,
                relay_cpu: None,
                walsender_cpu: None,
                server_cpu: None,
                peak_rss: None,
                delivered: None,
            }
        }
        _ => {
            let run = run_relay(target, &backlog, &broker, &destination, settings).await?;
            let delivered = broker.delivered(&destination, settings.events).await?;
            Measurement {
                target,
                seconds: run.seconds,
                startup: Some(run.startup),
                relay_cpu: run.relay_cpu,
                walsender_cpu: run.walsender_cpu,
                server_cpu: run.server_cpu,
                peak_rss: run.peak_rss,
                delivered,
            }
        }
    };
    broker.clean_up(&destination).await;
    if let Some(delivered) = result.delivered {
        ensure!(
            delivered == settings.events as u64,
            "the broker holds {delivered} messages, not {}",
            settings.events
        );
    }
    Ok(result)
}

/// A fresh cluster holding the backlog, in its slot for logical targets, and where that backlog ends.
struct Backlog {
    pg: Postgres,
    client: tokio_postgres::Client,
    end: String,
}

impl Backlog {
    async fn write(settings: &Settings, slot: bool) -> Result<Backlog> {
        let pg = Postgres::start()?;
        let client = pg.client().await?;
        let ddl = Command::new(RELAY).arg("ddl").output()?;
        ensure!(ddl.status.success(), "outbox-relay ddl failed");
        client
            .batch_execute(std::str::from_utf8(&ddl.stdout)?)
            .await?;
        if slot {
            // The slot must exist before the rows are written, or it would not retain them; the
            // relay takes over the existing publication and slot.
            // Two calls: a slot cannot be created in a transaction that has written.
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {PUBLICATION} FOR TABLE outbox WITH (publish = 'insert')"
                ))
                .await?;
            client
                .batch_execute(&format!(
                    "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"
                ))
                .await?;
        }
        let started = Instant::now();
        let insert = client.prepare(INSERT).await?;
        let mut first = 1;
        while first <= settings.events {
            let last = (first + settings.tx_events - 1).min(settings.events);
            // Each statement commits on its own: one transaction of up to BENCH_TX_EVENTS rows.
            client
                .execute(&insert, &[&first, &last, &AGGREGATES, &AGGREGATE_TYPE])
                .await?;
            first = last + 1;
        }
        let row = client
            .query_one(
                "SELECT pg_current_wal_lsn()::text, count(*), avg(octet_length(payload::text))::float8,
                        current_setting('server_version')
                 FROM outbox",
                &[],
            )
            .await?;
        let (end, rows, payload, version): (String, i64, f64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        ensure!(rows == settings.events, "wrote {rows} rows");
        // Statistics as autovacuum keeps them on a long-lived table. Without them the planner
        // expects few unpublished rows and plans polling's claim as a sort of all of them, which
        // makes a backlog drain quadratic (docs/BENCHMARKS.md); with them, and by chance when
        // autovacuum's analyze ran first, the claim reads the partial index in order.
        client.batch_execute("ANALYZE outbox").await?;
        // Otherwise a checkpoint triggered by the backlog's WAL could write pages during the timed drain.
        client.batch_execute("CHECKPOINT").await?;
        eprintln!(
            "PostgreSQL {version}: backlog of {rows} events ({payload:.0}-byte payloads) written in {:.1} s, ends at {end}",
            started.elapsed().as_secs_f64()
        );
        Ok(Backlog { pg, client, end })
    }

    /// Whether the slot is confirmed up to the end, how far it is, and its walsender's pid.
    async fn slot(&self) -> Result<(bool, String, Option<i32>)> {
        let row = self
            .client
            .query_one(
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn, confirmed_flush_lsn::text, active_pid
                 FROM pg_replication_slots WHERE slot_name = $2",
                &[&self.end, &SLOT],
            )
            .await?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    /// CPU seconds so far of each PostgreSQL process, by pid.
    async fn server_cpu(&self) -> Result<HashMap<i32, f64>> {
        let rows = self
            .client
            .query("SELECT pid FROM pg_stat_activity", &[])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let pid: i32 = row.get(0);
                Some((pid, common::cpu_seconds(pid.try_into().ok()?)?))
            })
            .collect())
    }

    /// Whether polling has published every row.
    async fn published(&self) -> Result<bool> {
        // EXISTS stops at the partial index's first live entry, where a count would scan the whole
        // remaining backlog on every poll, on the cores the relay needs.
        let row = self
            .client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Rows polling has not published yet; for error messages only, as it scans them all.
    async fn unpublished(&self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

fn pg_recvlogical() -> Result<PathBuf> {
    // The newest installed major version, as the harness's clusters use.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin/pg_recvlogical");
            bin.is_file().then_some((major, bin))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, bin)| bin)
        .context("no pg_recvlogical under /usr/lib/postgresql")
}

fn run_pg_recvlogical(backlog: &Backlog) -> Result<f64> {
    let mut cmd = Command::new(pg_recvlogical()?);
    cmd.args(["-d", &backlog.pg.url(), "--slot", SLOT, "--start"])
        .args(["--endpos", &backlog.end])
        .args(["-o", "proto_version=1", "-o"])
        .arg(format!("publication_names={PUBLICATION}"))
        .args(["-f", "/dev/null"]);
    let started = Instant::now();
    let output = cmd.output().context("running pg_recvlogical")?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "pg_recvlogical failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(seconds)
}

struct RelayRun {
    seconds: f64,
    startup: f64,
    relay_cpu: Option<f64>,
    walsender_cpu: Option<f64>,
    server_cpu: Option<f64>,
    peak_rss: Option<u64>,
}

async fn run_relay(
    target: Target,
    backlog: &Backlog,
    broker: &Broker,
    destination: &str,
    settings: &Settings,
) -> Result<RelayRun> {
    // Through a shell only to send stdout (the stdout sink's output) to /dev/null while the log
    // goes to the Process's file; `exec` keeps the relay the process that receives signals.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$0\" \"$@\" >/dev/null", RELAY, "run"])
        .args(["--database-url", &backlog.pg.url(), "--slot", SLOT])
        .args(["--publication", PUBLICATION, "--destination"])
        .arg(format!("{destination}.{{aggregatetype}}"))
        .args(["--mode", if target.polls() { "polling" } else { "logical" }])
        // Another relay on this machine may hold the default port.
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(broker.sink_args())
        .args(&settings.relay_args);
    let deadline = Duration::from_secs(120 + settings.events as u64 / 1000);
    let server_before = backlog.server_cpu().await?;
    let started = Instant::now();
    let mut relay = Process::start(cmd)?;
    let alive = |relay: &mut Process| -> Result<()> {
        if let Some(status) = relay.exited()? {
            bail!("the relay exited ({status}):\n{}", relay.log());
        }
        if started.elapsed() > deadline {
            bail!(
                "the relay did not drain within {deadline:?}:\n{}",
                relay.log()
            );
        }
        Ok(())
    };
    while !relay.log().contains("streaming the outbox") {
        alive(&mut relay)?;
        tokio::time::sleep(LOG_POLL).await;
    }
    let startup = started.elapsed().as_secs_f64();
    let walsender = if target.polls() {
        while !backlog.published().await? {
            if let Err(e) = alive(&mut relay) {
                let left = backlog.unpublished().await?;
                return Err(e.context(format!("{left} rows left unpublished")));
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
        None
    } else {
        loop {
            let (drained, confirmed, walsender) = backlog.slot().await?;
            if drained {
                break walsender;
            }
            alive(&mut relay).with_context(|| format!("slot confirmed up to {confirmed}"))?;
            tokio::time::sleep(SLOT_POLL).await;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    // Read while both still run: CPU time near the wall time marks the busy side.
    let relay_cpu = common::cpu_seconds(relay.id());
    let walsender_cpu = walsender.and_then(|pid| common::cpu_seconds(pid.try_into().ok()?));
    let peak_rss = common::peak_rss(relay.id());
    // Processes that started during the run, such as the walsender, count from zero.
    let server_cpu = backlog
        .server_cpu()
        .await?
        .into_iter()
        .map(|(pid, cpu)| cpu - server_before.get(&pid).copied().unwrap_or(0.0))
        .sum();
    relay.terminate()?;
    let status = relay
        .wait_timeout(Duration::from_secs(30))?
        .context("the relay did not stop within 30 s of SIGTERM")?;
    ensure!(
        status.success(),
        "the relay exited with {status}:\n{}",
        relay.log()
    );
    Ok(RelayRun {
        seconds,
        startup,
        relay_cpu,
        walsender_cpu,
        server_cpu: Some(server_cpu),
        peak_rss,
    })
}

/// The broker a target publishes to, with what it takes to count and remove the run's messages.
enum Broker {
    None,
    Stdout,
    Redis {
        url: String,
    },
    RabbitMq {
        url: String,
        exchange: String,
        queue: String,
    },
    Kafka(Kafka),
}

impl Broker {
    async fn start(target: Target, destination: &str) -> Result<Broker> {
        Ok(match target {
            Target::PgRecvlogical => Broker::None,
            Target::Stdout => Broker::Stdout,
            Target::Redis | Target::PollingRedis => Broker::Redis {
                url: harness::Redis::shared()?,
            },
            Target::RabbitMq => {
                let url = harness::RabbitMq::shared()?;
                let exchange = harness::unique("bench-exchange");
                let queue = harness::unique("bench-queue");
                // Bound before the relay publishes: its messages are mandatory, and the queue's
                // length is the count.
                let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
                let channel = connection.create_channel().await?;
                channel
                    .exchange_declare(
                        exchange.as_str().into(),
                        ExchangeKind::Topic,
                        ExchangeDeclareOptions {
                            durable: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                // Durable, as a production consumer's queue would be: persistent messages then go
                // to disk, which is part of what is measured.
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            durable: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.as_str().into(),
                        format!("{destination}.{AGGREGATE_TYPE}").as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                let _ = connection.close(200, "bound".into()).await;
                Broker::RabbitMq {
                    url,
                    exchange,
                    queue,
                }
            }
            Target::Kafka => Broker::Kafka(Kafka::start()?),
        })
    }

    fn sink_args(&self) -> Vec<String> {
        let args: Vec<&str> = match self {
            Broker::None => vec![],
            Broker::Stdout => vec!["--sink", "stdout"],
            Broker::Redis { url } => vec!["--sink", "redis", "--redis-url", url],
            Broker::RabbitMq { url, exchange, .. } => vec![
                "--sink",
                "rabbitmq",
                "--rabbitmq-url",
                url,
                "--rabbitmq-exchange",
                exchange,
            ],
            Broker::Kafka(kafka) => {
                return vec![
                    "--sink".into(),
                    "kafka".into(),
                    "--kafka-brokers".into(),
                    kafka.brokers(),
                ]
            }
        };
        args.into_iter().map(str::to_owned).collect()
    }

    /// The number of messages the broker holds for the run, waiting up to [`SETTLE`] for `expected`.
    async fn delivered(&self, destination: &str, expected: i64) -> Result<Option<u64>> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let count = match self.count(destination).await? {
                None => return Ok(None),
                Some(count) => count,
            };
            if count == expected as u64 || Instant::now() >= deadline {
                return Ok(Some(count));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn count(&self, destination: &str) -> Result<Option<u64>> {
        let stream = format!("{destination}.{AGGREGATE_TYPE}");
        Ok(match self {
            Broker::None | Broker::Stdout => None,
            Broker::Redis { url } => {
                let mut connection = redis::Client::open(url.as_str())?.get_connection()?;
                Some(redis::cmd("XLEN").arg(&stream).query(&mut connection)?)
            }
            Broker::RabbitMq { url, queue, .. } => {
                let connection = Connection::connect(url, ConnectionProperties::default()).await?;
                let channel = connection.create_channel().await?;
                let declared = channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                let _ = connection.close(200, "counted".into()).await;
                Some(declared.message_count().into())
            }
            Broker::Kafka(kafka) => {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", kafka.brokers())
                    .create()?;
                let timeout = Duration::from_secs(10);
                let metadata = consumer.fetch_metadata(Some(&stream), timeout)?;
                let mut total = 0;
                for topic in metadata.topics() {
                    for partition in topic.partitions() {
                        let (_, high) =
                            consumer.fetch_watermarks(&stream, partition.id(), timeout)?;
                        total += u64::try_from(high)?;
                    }
                }
                Some(total)
            }
        })
    }

    /// Frees what the run left on the shared brokers; the Kafka broker goes away with its value.
    async fn clean_up(&self, destination: &str) {
        match self {
            Broker::Redis { url } => {
                let stream = format!("{destination}.{AGGREGATE_TYPE}");
                if let Ok(mut connection) =
                    redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
                {
                    let _: redis::RedisResult<()> =
                        redis::cmd("DEL").arg(&stream).query(&mut connection);
                }
            }
            Broker::RabbitMq {
                url,
                exchange,
                queue,
            } => {
                if let Ok(connection) =
                    Connection::connect(url, ConnectionProperties::default()).await
                {
                    if let Ok(channel) = connection.create_channel().await {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                        let _ = channel
                            .exchange_delete(
                                exchange.as_str().into(),
                                ExchangeDeleteOptions::default(),
                            )
                            .await;
                    }
                    let _ = connection.close(200, "cleaned up".into()).await;
                }
            }
            Broker::None | Broker::Stdout | Broker::Kafka(_) => {}
        }
    }
}
