//! A database URL without the password a server asks for is a setting to fix: `run` exits 2 at once
//! saying where the password goes, and `check` says the same, instead of retrying forever.

use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_the_password_the_server_asks_for_exits_2_with_the_fix() {
    let pg = harness::Postgres::start().unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE ROLE relay LOGIN REPLICATION PASSWORD 'secret'")
        .await
        .unwrap();
    pg.require_passwords().await.unwrap();
    let url = pg.url().replace("postgres@", "relay@");

    for mode in ["auto", "logical", "polling"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
        cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0").args([
            "run",
            "--database-url",
            &url,
            "--sink",
            "stdout",
            "--mode",
            mode,
        ]);
        let mut relay = harness::Process::start(cmd).unwrap();
        let status = relay
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .unwrap_or_else(|| panic!("--mode {mode}: still retrying:\n{}", relay.log()));
        let log = relay.log();
        assert_eq!(status.code(), Some(2), "--mode {mode}:\n{log}");
        assert!(log.contains("--database-url-file"), "--mode {mode}:\n{log}");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", &url, "--sink", "stdout"])
        .output()
        .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains(
            "database  FAIL  the server asks for a password and the database URL has none"
        ) && report.contains("database: put the password in database_url"),
        "{report}"
    );
}
