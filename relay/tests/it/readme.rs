//! The README's Quick Start, followed literally against a real cluster and a real Kafka-protocol
//! broker: its SQL is run as written, and the output it shows is the output the relay prints.

use std::process::Command;

use harness::{Kafka, Postgres};

/// The addresses the README's commands use, which the real ones are shown as.
const README_BROKERS: &str = "kafka-1:9092,kafka-2:9092";

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
}

/// The first fenced block that opens after the first occurrence of `marker` in the README.
fn block_after(readme: &str, marker: &str) -> String {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("the README no longer says {marker:?}"));
    let mut offset = 0;
    let mut open: Option<(usize, Vec<&str>)> = None;
    for line in readme.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        match open.as_mut() {
            None if line.starts_with("```") => open = Some((at, Vec::new())),
            None => {}
            Some((opened, block)) if line.starts_with("```") => {
                if *opened > start {
                    return block.concat();
                }
                open = None;
            }
            Some((_, block)) => block.push(line),
        }
    }
    panic!("no fenced block after {marker:?} in the README")
}

fn relay(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn the_ddl_sample_is_what_ddl_prints() {
    let (ok, ddl) = relay(&["ddl"]);
    assert!(ok);
    assert_eq!(
        block_after(&readme(), "outbox-relay ddl | psql"),
        ddl,
        "the README's DDL sample differs from `outbox-relay ddl`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_followed_literally_passes_check_with_the_output_shown() {
    let readme = readme();
    let pg = Postgres::start().unwrap();
    // The service's database and the role that owns it, as a service already has them.
    pg.create_owned_database("app", "app", "orders")
        .await
        .unwrap();
    let (owner, connection) = tokio_postgres::connect(
        &pg.url_as("app", "app", "orders", ""),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let (_, ddl) = relay(&["ddl"]);
    owner.batch_execute(&ddl).await.unwrap();
    owner
        .batch_execute(&block_after(&readme, "create its publication"))
        .await
        .unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute(&block_after(&readme, "**3. A role with REPLICATION.**"))
        .await
        .unwrap();

    let kafka = Kafka::start().unwrap();
    let url = pg.url_as("outbox_relay", "change-me", "orders", "");
    let (ok, report) = relay(&[
        "check",
        "--database-url",
        &url,
        "--sink",
        "kafka",
        "--kafka-brokers",
        &kafka.brokers(),
    ]);
    let report = report.replace(&kafka.brokers(), README_BROKERS);
    assert!(ok, "check fails on the Quick Start's path:\n{report}");
    assert_eq!(
        block_after(&readme, "The output of `check` after steps 1 to 3"),
        report,
        "the README's `check` sample differs from the real output"
    );
}

/// The README's stdout line is what `--sink stdout` prints for the row it shows, but for the commit
/// position, which no two clusters share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdout_sample_is_what_the_relay_prints() {
    let sample = block_after(&readme(), "**stdout:** one JSON object per line");
    let shown: serde_json::Value = serde_json::from_str(&sample).unwrap();
    let pg = crate::support::outbox_database().await;
    let mut relay = crate::support::start_relay(&pg, &["--sink", "stdout"]);
    crate::support::scenarios::wait_streaming(&relay);
    pg.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers, created_at)
             VALUES ($1::text::uuid, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7::text::timestamptz)",
            &[
                &shown["id"].as_str(),
                &shown["aggregatetype"].as_str(),
                &shown["aggregateid"].as_str(),
                &shown["type"].as_str(),
                &shown["payload"].to_string(),
                &shown["headers"].to_string(),
                &shown["created_at"].as_str(),
            ],
        )
        .await
        .unwrap();
    let id = shown["id"].as_str().unwrap();
    harness::wait_until(std::time::Duration::from_secs(60), "the event", || {
        relay.log().contains(id)
    })
    .unwrap();
    crate::support::stop_relay(&mut relay);
    let log = relay.log();
    let printed = log.lines().find(|l| l.starts_with('{') && l.contains(id));
    let printed = printed.unwrap_or_else(|| panic!("no JSON line:\n{log}"));
    let position = serde_json::from_str::<serde_json::Value>(printed).unwrap()["outbox_position"]
        .as_str()
        .unwrap()
        .to_owned();
    let printed = printed.replace(&position, shown["outbox_position"].as_str().unwrap());
    assert_eq!(
        format!("{printed}\n"),
        sample,
        "the README's stdout sample differs"
    );
}
