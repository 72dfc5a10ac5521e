//! `outbox-relay check` against real clusters: a healthy one passes, a misconfigured one gets each
//! problem named with its fix.

use crate::support;

use std::process::{Command, Output};

fn check(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", url])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_each_problem_of_a_misconfigured_cluster_and_its_fix() {
    let pg = harness::Postgres::start_with_wal_level("replica").unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "{} CREATE ROLE app LOGIN; GRANT SELECT ON outbox TO app;",
            include_str!("../../sql/outbox.sql")
        ))
        .await
        .unwrap();
    let url = pg.url().replace("postgres@", "app@");
    let output = check(&url, &["--sink", "stdout", "--mode", "logical"]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{report}");
    for expected in [
        "wal_level               FAIL  'replica'",
        "ALTER SYSTEM SET wal_level = logical",
        "replication privilege   FAIL  role app lacks REPLICATION",
        "ALTER ROLE \"app\" WITH REPLICATION;",
        "publication             FAIL  outbox_relay_pub does not exist and role app may not create it",
        "CREATE PUBLICATION \"outbox_relay_pub\" FOR TABLE \"public\".\"outbox\"",
        "outbox table            ok",
        "broker                  ok",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_passes_and_a_missing_table_or_broker_fails() {
    let pg = support::outbox_database().await;
    let redis = harness::Redis::shared().unwrap();
    let output = check(&pg.url(), &["--sink", "redis", "--redis-url", &redis]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("broker                  ok    redis reachable"),
        "{report}"
    );

    let closed = format!("redis://127.0.0.1:{}", harness::free_port().unwrap());
    let output = check(
        &pg.url(),
        &[
            "--sink",
            "redis",
            "--redis-url",
            &closed,
            "--table",
            "public.missing",
        ],
    );
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("outbox table            FAIL  public.missing does not exist"),
        "{report}"
    );
    assert!(report.contains("broker                  FAIL"), "{report}");
}

/// The Quick Start's role (LOGIN REPLICATION, no table privileges) on a cluster whose `wal_level`
/// was never raised: `auto` used to choose polling and die on `permission denied for table outbox`.
/// Now `check` and `run` both stop with the fix of each mode, logical replication's first, and `auto`
/// polls once the role may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_neither_source_ready_names_both_fixes_logical_first() {
    let pg = harness::Postgres::start_with_wal_level("replica").unwrap();
    let admin = pg.client().await.unwrap();
    admin
        .batch_execute(&format!(
            "{} CREATE ROLE relay LOGIN REPLICATION;",
            support::OUTBOX_DDL
        ))
        .await
        .unwrap();
    let url = pg.url().replace("postgres@", "relay@");
    let logical_fix = "ALTER SYSTEM SET wal_level = logical;";
    let polling_fix = "GRANT SELECT, UPDATE ON \"public\".\"outbox\" TO \"relay\";";
    let in_order = |text: &str| {
        matches!(
            (text.find(logical_fix), text.find(polling_fix)),
            (Some(logical), Some(polling)) if logical < polling
        )
    };

    let output = check(&url, &["--sink", "stdout"]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("FAIL  mode auto can run neither source: not logical replication, because wal_level is 'replica'")
            && report.contains("not polling, because role relay lacks SELECT, UPDATE on public.outbox")
            && in_order(&report)
            && report.contains("wal_level               FAIL"),
        "{report}"
    );

    let mut command = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    command
        .env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .args(["run", "--sink", "stdout", "--database-url", &url]);
    let mut relay = harness::Process::start(command).unwrap();
    let status = relay
        .wait_timeout(std::time::Duration::from_secs(60))
        .unwrap()
        .unwrap_or_else(|| panic!("the relay did not stop:\n{}", relay.log()));
    let log = relay.log();
    assert!(
        !status.success() && in_order(&log) && !log.contains("permission denied"),
        "{log}"
    );
    // docs/POLLING.md shows this error as it is printed.
    let docs = include_str!("../../../docs/POLLING.md");
    let start = docs.find("error: mode auto").unwrap();
    let sample = &docs[start..start + docs[start..].find("```").unwrap()];
    assert!(
        log.contains(sample),
        "docs/POLLING.md:\n{sample}\nlog:\n{log}"
    );

    admin
        .batch_execute("GRANT SELECT, UPDATE ON outbox TO relay")
        .await
        .unwrap();
    let output = check(&url, &["--sink", "stdout"]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        report.contains("WARN  auto: polling the table, because wal_level is 'replica'")
            && report.contains("table privileges  ok"),
        "{report}"
    );
}

/// docs/OPERATIONS.md shows `check` on a cluster ready for a first start as it prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_guide_shows_the_real_output_of_check() {
    let pg = harness::Postgres::start_with_settings(&["max_slot_wal_keep_size=1GB"]).unwrap();
    support::create_outbox(&pg).await;
    let output = check(&pg.url(), &["--sink", "stdout", "--mode", "logical"]);
    let report = String::from_utf8(output.stdout).unwrap();
    let docs = include_str!("../../../docs/OPERATIONS.md");
    let section = &docs[docs.find("### `outbox-relay check`").unwrap()..];
    let start = section.find("```\n").unwrap() + 4;
    let sample = &section[start..start + section[start..].find("```").unwrap()];
    assert_eq!(report, sample, "docs/OPERATIONS.md's sample differs");
    assert!(output.status.success(), "{report}");
}
