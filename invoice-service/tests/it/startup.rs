//! The binary when its database is unreachable at start: it exits 1 and says why, each cause once
//! and without the password.

use std::process::Command;
use std::time::Duration;

use harness::Process;

#[test]
fn an_unreachable_database_stops_the_service_with_the_cause_said_once() {
    let closed = harness::free_port().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_invoice-service"));
    cmd.env_clear()
        .env("RUST_LOG", "info")
        .env("INVOICE_SERVICE_ADDR", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("postgres://invoices:start-pw-19@127.0.0.1:{closed}/invoices"),
        )
        .env("MESSAGING_MODE", "redis");
    let mut service = Process::start(cmd).unwrap();
    let status = service
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .unwrap_or_else(|| panic!("still running:\n{}", service.log()));
    let log = service.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(log.matches("Connection refused").count(), 1, "{log}");
    assert_eq!(
        log.matches("error connecting to server").count(),
        1,
        "{log}"
    );
    assert!(log.contains("no database connection"), "{log}");
    assert!(!log.contains("start-pw-19"), "{log}");
}
