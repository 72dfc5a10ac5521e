//! Shared pieces of the relay's end-to-end tests: a database with an outbox, a workload of concurrent
//! writers, the relay binary as a child process, and the delivery check.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod check;
pub mod scenarios;
pub mod workload;

use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Process};

/// A throwaway cluster with `wal_level=logical` and the default outbox table.
pub async fn outbox_database() -> Postgres {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let ddl = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .arg("ddl")
        .output()
        .expect("ddl runs");
    assert!(ddl.status.success());
    pg.client()
        .await
        .unwrap()
        .batch_execute(std::str::from_utf8(&ddl.stdout).unwrap())
        .await
        .unwrap();
    pg
}

pub use harness::unique;

/// Starts `outbox-relay run` against `pg` with extra flags; small batches so that kill tests hit
/// the middle of the stream.
pub fn start_relay(pg: &Postgres, args: &[&str]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.args([
        "--log-level",
        "outbox_relay=debug,info",
        "run",
        "--database-url",
        &pg.url(),
    ]);
    cmd.args(args);
    Process::start(cmd).expect("relay starts")
}

/// Waits for the relay to exit after SIGTERM and checks it exited 0.
pub fn stop_relay(relay: &mut Process) {
    relay.terminate().unwrap();
    let status = relay
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("relay exits within 30 s of SIGTERM");
    assert!(
        status.success(),
        "relay exited with {status}:\n{}",
        relay.log()
    );
}
