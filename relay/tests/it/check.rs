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
