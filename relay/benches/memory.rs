//! The relay's peak memory on large events: one transaction of large rows, a run of payloads of
//! megabytes, and a backlog of small events for comparison, each drained with the default
//! `pipeline.max_in_flight_bytes` and with the bound lifted (16 GiB: the event count alone bounds
//! the window, as before the byte bound existed).
//!
//! For each case, on a fresh PostgreSQL cluster with the outbox from `outbox-relay ddl` and a
//! private Redis: `outbox-relay run --sink redis` is started, the rows are committed once it logs
//! "streaming the outbox", and the stream is watched until every event has arrived; the relay's
//! peak RSS (`VmHWM`) is read then, before it is stopped. Seconds count from the last commit to the
//! last event's arrival.
//!
//! Run it with
//!
//! ```text
//! cargo bench -p outbox-relay --bench memory
//! ```
//!
//! Environment: `BENCH_MEMORY_SCALE` (default 1) divides every row count, so that
//! `cargo test --bench memory` can check at a tiny size that it still works (scripts/test.sh).

// Shared with the throughput and latency benchmarks, which use the rest of it.
#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use harness::{Postgres, Process, Redis};

use common::RELAY;

const POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(300);
const STREAM: &str = "outbox.event.order";
const UNBOUNDED: &str = "17179869184";

struct Case {
    name: &'static str,
    transactions: u64,
    rows: u64,
    /// Each payload is `{"blob": <this many 32-character hashes>}`.
    hashes: u64,
}

const CASES: [Case; 3] = [
    Case {
        name: "1 transaction of 1,000 rows of 52 KB",
        transactions: 1,
        rows: 1000,
        hashes: 1625,
    },
    Case {
        name: "4 transactions of 10 rows of 5 MB",
        transactions: 4,
        rows: 10,
        hashes: 156_250,
    },
    Case {
        name: "1 transaction of 100,000 small rows",
        transactions: 1,
        rows: 100_000,
        hashes: 1,
    },
];

struct Measurement {
    case: &'static str,
    budget: &'static str,
    events: u64,
    seconds: f64,
    peak_rss: Option<u64>,
}

fn main() -> Result<()> {
    let scale: u64 = std::env::var("BENCH_MEMORY_SCALE")
        .map_or(Ok(1), |s| s.parse())
        .context("BENCH_MEMORY_SCALE")?;
    ensure!(scale > 0, "BENCH_MEMORY_SCALE must be at least 1");
    common::print_machine();
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    for case in &CASES {
        for budget in ["default", "unbounded"] {
            let result = runtime
                .block_on(measure(case, budget, scale))
                .with_context(|| format!("{}, {budget}", case.name))?;
            eprintln!(
                "{}, {budget}: {} MiB",
                case.name,
                common::mib(result.peak_rss)
            );
            results.push(result);
        }
    }
    println!();
    println!(
        "{:<38} {:>20} {:>7} {:>8} {:>13}",
        "case", "max_in_flight_bytes", "events", "seconds", "peak RSS MiB"
    );
    for m in &results {
        println!(
            "{:<38} {:>20} {:>7} {:>8.2} {:>13}",
            m.case,
            m.budget,
            m.events,
            m.seconds,
            common::mib(m.peak_rss)
        );
    }
    println!("default: 8 MiB; unbounded: {UNBOUNDED} bytes, the event count (20,000) alone bounds the window");
    Ok(())
}

async fn measure(case: &Case, budget: &'static str, scale: u64) -> Result<Measurement> {
    let redis = Redis::start()?;
    let pg = Postgres::start()?;
    let client = pg.client().await?;
    let ddl = Command::new(RELAY).arg("ddl").output()?;
    ensure!(ddl.status.success(), "outbox-relay ddl failed");
    client
        .batch_execute(std::str::from_utf8(&ddl.stdout)?)
        .await?;

    let mut cmd = Command::new(RELAY);
    cmd.args(["run", "--database-url", &pg.url(), "--sink", "redis"])
        .args(["--redis-url", &redis.url(), "--metrics-addr", "127.0.0.1:0"]);
    if budget == "unbounded" {
        cmd.args(["--max-in-flight-bytes", UNBOUNDED]);
    }
    let mut relay = Process::start(cmd)?;
    let started = Instant::now();
    while !relay.log().contains("streaming the outbox") {
        if let Some(status) = relay.exited()? {
            bail!("the relay exited ({status}):\n{}", relay.log());
        }
        ensure!(
            started.elapsed() < TIMEOUT,
            "the relay did not start:\n{}",
            relay.log()
        );
        tokio::time::sleep(POLL).await;
    }

    let rows = (case.rows / scale).max(1);
    for _ in 0..case.transactions {
        client
            .execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
                 SELECT gen_random_uuid(), 'order', 'big', 'T',
                        jsonb_build_object('blob', repeat(md5(g::text), $2::int))
                 FROM generate_series(1, $1::int8) g",
                &[&(rows as i64), &(case.hashes as i32)],
            )
            .await?;
    }
    let committed = Instant::now();
    let events = rows * case.transactions;
    let mut redis_client = redis::Client::open(redis.url())?.get_connection()?;
    loop {
        let arrived: u64 = redis::cmd("XLEN").arg(STREAM).query(&mut redis_client)?;
        if arrived >= events {
            break;
        }
        ensure!(
            committed.elapsed() < TIMEOUT,
            "{arrived} of {events} events arrived:\n{}",
            relay.log()
        );
        tokio::time::sleep(POLL).await;
    }
    let seconds = committed.elapsed().as_secs_f64();
    let peak_rss = common::peak_rss(relay.id());
    relay.terminate()?;
    relay
        .wait_timeout(Duration::from_secs(30))?
        .context("the relay did not stop within 30 s of SIGTERM")?;
    Ok(Measurement {
        case: case.name,
        budget,
        events,
        seconds,
        peak_rss,
    })
}
