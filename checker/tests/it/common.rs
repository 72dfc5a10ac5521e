//! What every test needs: a database with an outbox table, the relay running as a child process,
//! and `relay-check` run as a command, its exit code and the totals it printed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Process};
use relay_check::Counts;

/// The destination template the relay is given, and the destination the checker's events get.
pub struct Route {
    pub template: String,
    pub destination: String,
}

impl Route {
    pub fn new() -> Route {
        let prefix = harness::unique("check");
        Route {
            template: format!("{prefix}.{{aggregatetype}}"),
            destination: format!("{prefix}.{}", relay_check::workload::AGGREGATE_TYPE),
        }
    }
}

pub async fn outbox_database() -> Postgres {
    let pg = Postgres::start().expect("PostgreSQL starts");
    pg.client()
        .await
        .unwrap()
        .batch_execute(include_str!("../../../relay/sql/outbox.sql"))
        .await
        .unwrap();
    pg
}

/// The relay binary next to this test binary (`target/<profile>/outbox-relay`).
fn relay_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps")
        .join("outbox-relay");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p outbox-relay` first",
        binary.display()
    );
    binary
}

/// Starts `outbox-relay run` with `args` and waits until it streams: rows committed before its
/// slot exists would not be relayed.
pub fn start_relay(pg: &Postgres, route: &Route, args: &[&str]) -> Process {
    let mut cmd = Command::new(relay_binary());
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.args(["run", "--database-url", &pg.url()]);
    cmd.args(["--destination", &route.template]);
    cmd.args(args);
    let relay = Process::start(cmd).expect("relay starts");
    harness::wait_until(
        Duration::from_secs(60),
        "the relay to start streaming",
        || relay.log().contains("streaming the outbox"),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    relay
}

pub fn stop_relay(relay: &mut Process) {
    relay.terminate().unwrap();
    let status = relay.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "relay did not exit 0 after SIGTERM:\n{}",
        relay.log()
    );
}

/// What one `relay-check` invocation did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The `total` row of the table `verify` printed.
    pub fn totals(&self) -> Counts {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("total "))
            .unwrap_or_else(|| panic!("no totals in:\n{self:?}"));
        let n: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        Counts {
            expected: n[0],
            received: n[1],
            lost: n[2],
            duplicated: n[3],
            out_of_order: n[4],
        }
    }
}

/// Runs `relay-check` with `args`, off the async workers: it blocks until the command ends.
pub fn relay_check(args: &[&str]) -> Outcome {
    let output = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_relay-check"))
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    });
    let outcome = Outcome {
        code: output.status.code().expect("relay-check exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    eprintln!(
        "relay-check {}\nexit {}\n{}{}",
        args.join(" "),
        outcome.code,
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// `relay-check write` of `aggregates` x `events` into `pg`'s outbox: the run id.
pub fn write(pg: &Postgres, aggregates: u64, events: u64) -> String {
    let outcome = relay_check(&[
        "write",
        "--database-url",
        &pg.url(),
        "--aggregates",
        &aggregates.to_string(),
        "--events",
        &events.to_string(),
        "--batch-size",
        "25",
    ]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    outcome.stdout.trim().to_owned()
}

/// `relay-check verify` of `run` in `pg` with the broker arguments `broker`.
pub fn verify(pg: &Postgres, run: &str, broker: &[&str], timeout: &str) -> Outcome {
    let url = pg.url();
    let mut args = vec![
        "verify",
        "--database-url",
        &url,
        "--run-id",
        run,
        "--timeout",
        timeout,
    ];
    args.extend(broker);
    relay_check(&args)
}

/// The run's payload for `aggregate` `k`, event `seq`, as the workload wrote it.
pub fn payload(run: &str, k: u64, seq: u64) -> String {
    let key = relay_check::event::EventKey {
        aggregate: relay_check::event::aggregate_id(run, k),
        seq,
    };
    relay_check::event::payload(run, &key).to_string()
}
