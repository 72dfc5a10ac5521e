//! Commit-to-acknowledgement latency at steady offered rates: how long an event takes from its
//! transaction's commit in PostgreSQL to Redis's acceptance of its `XADD`, with the relay's peak
//! RSS and CPU time.
//!
//! For each rate in `BENCH_RATES` (logical mode) and in `BENCH_POLLING_RATES` (polling mode), on a
//! fresh PostgreSQL cluster with the outbox from `outbox-relay ddl`: `outbox-relay run --sink redis`
//! (default batch settings) is started and, once it logs "streaming the outbox", `BENCH_WRITERS`
//! connections write for `BENCH_SECONDS` at that rate in all, one transaction of `BENCH_TX_EVENTS`
//! rows per tick of a tokio interval (the throughput benchmark's rows). A writer that falls behind
//! catches up in a burst, and the achieved rate is printed next to the offered one. Each
//! transaction's commit time is `SystemTime::now()` right after its `INSERT` (which commits on its
//! own) returns, kept by transaction; the payload's `sequence` names the transaction. When every
//! event has arrived, the stream is read back with `XRANGE`: Redis assigns an entry's id,
//! `<ms>-<n>`, from its clock when it executes the `XADD`, and that is the broker's
//! acknowledgement on the same machine's clock. Latency = id ms − commit ms. Ids have millisecond
//! resolution, so each latency reads 0–1 ms low; the relay receives the reply a round trip later.
//!
//! Run it with
//!
//! ```text
//! scripts/services.sh                      # shared Redis
//! cargo bench -p outbox-relay --bench latency
//! ```
//!
//! Environment: `BENCH_RATES` (events/s offered, comma-separated, default `1000,5000,10000`),
//! `BENCH_POLLING_RATES` (default `5000`; empty for none), `BENCH_SECONDS` (default 10),
//! `BENCH_TX_EVENTS` (default 10), `BENCH_WRITERS` (default 4: with `fsync=on` two connections
//! commit only about 4,800 events/s here), `BENCH_RELAY_ARGS` (extra flags for
//! `outbox-relay run`). `cargo bench` builds the release profile; `cargo test --bench latency`
//! runs debug builds, as CI does at a tiny size to check that it still works (scripts/test.sh).

mod common;

use std::fmt;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use harness::{Postgres, Process};
use redis::streams::StreamRangeReply;
use tokio::time::MissedTickBehavior;

use common::{AGGREGATES, AGGREGATE_TYPE, INSERT, RELAY};

const LOG_POLL: Duration = Duration::from_millis(5);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the last events may take to arrive after the writers stop.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries per `XRANGE` call when reading the stream back.
const PAGE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Logical,
    Polling,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str, so that the table's width specifiers apply.
        f.pad(match self {
            Mode::Logical => "logical",
            Mode::Polling => "polling",
        })
    }
}

struct Settings {
    runs: Vec<(Mode, u64)>,
    seconds: u64,
    tx_events: u64,
    writers: u64,
    relay_args: Vec<String>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let number = |name: &str, text: &str| -> Result<u64> {
            let value: u64 = text
                .trim()
                .replace('_', "")
                .parse()
                .with_context(|| format!("{name}: {text:?} is not a whole number"))?;
            ensure!(value > 0, "{name} must be at least 1");
            Ok(value)
        };
        let single = |name: &str, default: u64| -> Result<u64> {
            std::env::var(name).map_or(Ok(default), |text| number(name, &text))
        };
        let rates = |name: &str, default: &str| -> Result<Vec<u64>> {
            let list = std::env::var(name).unwrap_or_else(|_| default.to_owned());
            list.split(',')
                .filter(|rate| !rate.trim().is_empty())
                .map(|rate| number(name, rate))
                .collect()
        };
        let mut runs: Vec<(Mode, u64)> = rates("BENCH_RATES", "1000,5000,10000")?
            .into_iter()
            .map(|rate| (Mode::Logical, rate))
            .collect();
        runs.extend(
            rates("BENCH_POLLING_RATES", "5000")?
                .into_iter()
                .map(|rate| (Mode::Polling, rate)),
        );
        Ok(Settings {
            runs,
            seconds: single("BENCH_SECONDS", 10)?,
            tx_events: single("BENCH_TX_EVENTS", 10)?,
            writers: single("BENCH_WRITERS", 4)?,
            relay_args: common::relay_args(),
        })
    }
}

struct Measurement {
    mode: Mode,
    offered: u64,
    achieved: f64,
    events: u64,
    /// Commit-to-acknowledgement latencies in milliseconds, sorted.
    latencies: Vec<f64>,
    peak_rss: Option<u64>,
    relay_cpu: Option<f64>,
    walsender_cpu: Option<f64>,
    /// The machine's one-minute load average when the run ended: other work shares the cores.
    load: String,
}

impl Measurement {
    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    common::print_machine();
    println!(
        "load: {} s per rate, transactions of {} events from {} writer connections, {AGGREGATES} \
         aggregates; relay to Redis, flags: {}",
        settings.seconds,
        settings.tx_events,
        settings.writers,
        if settings.relay_args.is_empty() {
            "defaults".to_owned()
        } else {
            settings.relay_args.join(" ")
        }
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    for &(mode, rate) in &settings.runs {
        let result = runtime
            .block_on(measure(mode, rate, &settings))
            .with_context(|| format!("measuring {mode} at {rate} events/s"))?;
        eprintln!("{mode} at {rate}/s: p99 {:.1} ms", result.percentile(99.0));
        results.push(result);
    }
    print_table(&results);
    Ok(())
}

fn print_table(results: &[Measurement]) {
    let seconds = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.2}"));
    println!();
    println!(
        "{:<8} {:>9} {:>10} {:>8} {:>7} {:>7} {:>7} {:>13} {:>9} {:>13} {:>5}",
        "mode",
        "offered/s",
        "achieved/s",
        "events",
        "p50 ms",
        "p99 ms",
        "max ms",
        "peak RSS MiB",
        "relay cpu",
        "walsender cpu",
        "load"
    );
    for m in results {
        println!(
            "{:<8} {:>9} {:>10.0} {:>8} {:>7.1} {:>7.1} {:>7.1} {:>13} {:>9} {:>13} {:>5}",
            m.mode,
            m.offered,
            m.achieved,
            m.events,
            m.percentile(50.0),
            m.percentile(99.0),
            m.latencies.last().copied().unwrap_or(f64::NAN),
            common::mib(m.peak_rss),
            seconds(m.relay_cpu),
            seconds(m.walsender_cpu),
            m.load,
        );
    }
    println!(
        "latency: commit returned to the writer → Redis XADD (entry id ms, so 0–1 ms low); \
         cpu: CPU seconds of the whole run, startup included (polling has no walsender); peak RSS \
         is the relay's VmHWM; load: one-minute load average at the end of the run"
    );
    println!("load average at the end: {}", common::load());
}

async fn measure(mode: Mode, rate: u64, settings: &Settings) -> Result<Measurement> {
    let redis_url = harness::Redis::shared()?;
    let stream = format!("{}.{AGGREGATE_TYPE}", harness::unique("latency"));
    let pg = Postgres::start()?;
    let client = pg.client().await?;
    let ddl = Command::new(RELAY).arg("ddl").output()?;
    ensure!(ddl.status.success(), "outbox-relay ddl failed");
    client
        .batch_execute(std::str::from_utf8(&ddl.stdout)?)
        .await?;

    let mut relay = start_relay(mode, &pg, &redis_url, &stream, settings).await?;
    let result = load_and_read(mode, rate, settings, &pg, &mut relay, &redis_url, &stream).await;
    // The stream goes whether or not the run worked: the shared Redis outlives the benchmark.
    let mut connection = redis::Client::open(redis_url.as_str())?.get_connection()?;
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&stream).query(&mut connection);
    result
}

async fn start_relay(
    mode: Mode,
    pg: &Postgres,
    redis_url: &str,
    stream: &str,
    settings: &Settings,
) -> Result<Process> {
    let mut cmd = Command::new(RELAY);
    cmd.args(["run", "--database-url", &pg.url()])
        .args(["--mode", &mode.to_string(), "--sink", "redis"])
        .args(["--redis-url", redis_url, "--destination", stream])
        // Another relay on this machine may hold the default port.
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(&settings.relay_args);
    let started = Instant::now();
    let mut relay = Process::start(cmd)?;
    while !relay.log().contains("streaming the outbox") {
        if let Some(status) = relay.exited()? {
            bail!("the relay exited ({status}):\n{}", relay.log());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the relay did not start within {START_TIMEOUT:?}:\n{}",
                relay.log()
            );
        }
        tokio::time::sleep(LOG_POLL).await;
    }
    Ok(relay)
}

async fn load_and_read(
    mode: Mode,
    rate: u64,
    settings: &Settings,
    pg: &Postgres,
    relay: &mut Process,
    redis_url: &str,
    stream: &str,
) -> Result<Measurement> {
    let transactions = (rate * settings.seconds).div_ceil(settings.tx_events);
    let events = transactions * settings.tx_events;
    let started = Instant::now();
    let commits = write(pg, rate, transactions, settings).await?;
    let achieved = events as f64 / started.elapsed().as_secs_f64();

    let mut connection = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let arrived: u64 = redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut connection)
            .await?;
        if arrived >= events {
            break;
        }
        if let Some(status) = relay.exited()? {
            bail!(
                "the relay exited ({status}) with {arrived} of {events} events in Redis:\n{}",
                relay.log()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "only {arrived} of {events} events reached Redis within {ARRIVAL_TIMEOUT:?} of \
                 the last commit:\n{}",
                relay.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak_rss = common::peak_rss(relay.id());
    let relay_cpu = common::cpu_seconds(relay.id());
    let walsender = pg
        .client()
        .await?
        .query_opt("SELECT pid FROM pg_stat_replication", &[])
        .await?;
    let walsender_cpu =
        walsender.and_then(|row| common::cpu_seconds(row.get::<_, i32>(0).try_into().ok()?));
    let load = common::load()
        .split_whitespace()
        .next()
        .unwrap_or("-")
        .to_owned();
    relay.terminate()?;
    let status = relay
        .wait_timeout(Duration::from_secs(30))?
        .context("the relay did not stop within 30 s of SIGTERM")?;
    ensure!(
        status.success(),
        "the relay exited with {status}:\n{}",
        relay.log()
    );

    let latencies = read_latencies(&mut connection, stream, &commits, settings.tx_events).await?;
    ensure!(
        latencies.len() as u64 == events,
        "the stream holds {} events, not {events}",
        latencies.len()
    );
    Ok(Measurement {
        mode,
        offered: rate,
        achieved,
        events,
        latencies,
        peak_rss,
        relay_cpu,
        walsender_cpu,
        load,
    })
}

/// Writes `transactions` transactions at `rate` events/s in all, spread over the writers; returns
/// each transaction's commit time in milliseconds since the epoch, by transaction number.
async fn write(
    pg: &Postgres,
    rate: u64,
    transactions: u64,
    settings: &Settings,
) -> Result<Vec<f64>> {
    let writers = settings.writers.min(transactions);
    // Each writer takes every `writers`-th transaction, its ticks offset from the others' so that
    // together they offer an even rate.
    let period = Duration::from_secs_f64((settings.tx_events * writers) as f64 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let client = pg.client().await?;
        let insert = client.prepare(INSERT).await?;
        let tx_events = settings.tx_events;
        let first_tick = start + period.mul_f64(writer as f64 / writers as f64);
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(first_tick, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut commits = Vec::new();
            for tx in (writer..transactions).step_by(writers as usize) {
                interval.tick().await;
                let first = (tx * tx_events + 1) as i64;
                let last = first + tx_events as i64 - 1;
                client
                    .execute(&insert, &[&first, &last, &AGGREGATES, &AGGREGATE_TYPE])
                    .await?;
                commits.push((tx, epoch_ms(SystemTime::now())));
            }
            anyhow::Ok(commits)
        }));
    }
    let mut by_transaction = vec![f64::NAN; transactions as usize];
    for task in tasks {
        for (tx, ms) in task.await?? {
            by_transaction[tx as usize] = ms;
        }
    }
    Ok(by_transaction)
}

/// Every entry's latency in milliseconds, sorted: its id's time minus its transaction's commit.
async fn read_latencies(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    commits: &[f64],
    tx_events: u64,
) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(commits.len() * tx_events as usize);
    let mut from = "-".to_owned();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(connection)
            .await?;
        let Some(last) = page.ids.last() else { break };
        from = format!("({}", last.id);
        for entry in &page.ids {
            let acked: f64 = entry
                .id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse().ok())
                .with_context(|| format!("stream entry id {:?}", entry.id))?;
            let payload: String = entry
                .get("payload")
                .with_context(|| format!("entry {} has no payload", entry.id))?;
            let sequence = serde_json::from_str::<serde_json::Value>(&payload)?["sequence"]
                .as_u64()
                .with_context(|| format!("entry {} has no sequence in {payload}", entry.id))?;
            let committed = sequence
                .checked_sub(1)
                .and_then(|s| commits.get((s / tx_events) as usize))
                .with_context(|| {
                    format!("entry {} has sequence {sequence}, not written", entry.id)
                })?;
            latencies.push(acked - committed);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn epoch_ms(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}
