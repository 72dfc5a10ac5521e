//! Kafka, the default sink, not running: the relay says so once per retry, with the refused address,
//! and `check` names the address instead of hundreds of librdkafka lines and a bare timeout.

use std::process::Command;
use std::time::Duration;

use crate::support;

/// A broker address where nothing listens.
fn closed_brokers() -> String {
    format!("127.0.0.1:{}", harness::free_port().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_waiting_for_kafka_logs_one_line_per_retry_naming_the_address() {
    let pg = support::outbox_database().await;
    let brokers = closed_brokers();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env("OUTBOX_RELAY_KAFKA__MESSAGE_TIMEOUT", "2s")
        .args(["run", "--database-url", &pg.url()])
        .args(["--sink", "kafka", "--kafka-brokers", &brokers]);
    let mut relay = harness::Process::start(cmd).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    support::stop_relay(&mut relay);
    let log = relay.log();
    let lines = log.lines().count();
    // About 3 sessions of 2 s each with their backoff: a handful of lines, not one per librdkafka
    // reconnect (about 40 a second, twice over, before).
    assert!(lines < 30, "{lines} log lines in 8 s:\n{log}");
    assert!(
        log.contains(&brokers) && log.contains("Connection refused"),
        "the log does not name the refused address:\n{log}"
    );
    assert!(!log.contains("brokers are down"), "{log}");
    // Each retry is one WARN line: no session claims to stream before its broker answered.
    assert!(!log.contains("streaming the outbox"), "{log}");
}

#[test]
fn check_names_the_refused_kafka_address() {
    let brokers = closed_brokers();
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", "postgres://nobody@127.0.0.1:1/x"])
        .args(["--sink", "kafka", "--kafka-brokers", &brokers])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let broker = stdout
        .lines()
        .find(|l| l.starts_with("broker "))
        .unwrap_or_else(|| panic!("no broker line in:\n{stdout}"));
    assert!(
        broker.contains("FAIL")
            && broker.contains(&brokers)
            && broker.contains("Connection refused"),
        "{broker}"
    );
    assert!(
        stderr.lines().count() < 5,
        "check printed librdkafka's retries:\n{stderr}"
    );
}
