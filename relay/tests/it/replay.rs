//! `outbox-relay replay`: every filter picks exactly the rows it names, in order per aggregate,
//! each message marked `replayed: true`; `--dry-run` counts and publishes nothing. Through Redis
//! Streams and RabbitMQ, with no relay and no slot involved.

use crate::support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Reader, Received};
use support::check::check;
use support::scenarios::Target;
use support::workload::{self, Workload, Written};

const DEADLINE: Duration = Duration::from_secs(60);

const ROWS: Workload = Workload {
    writers: 2,
    transactions_per_writer: 20,
    events_per_transaction: 5,
    aggregates_per_writer: 3,
    rollback_every: 4,
    padding: 16,
    pause: Duration::ZERO,
};

/// Rows written by services, then spread one minute apart by `seq` from 2026-01-01 00:00 UTC, so
/// that time filters pick known rows.
async fn outbox_with_rows(target: &Target) -> (Postgres, Written) {
    let pg = target.database().await;
    let written = workload::write(&pg.url(), &ROWS).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "UPDATE outbox SET created_at = timestamptz '2026-01-01 00:00:00Z' + seq * interval '1 minute'",
        )
        .await
        .unwrap();
    (pg, written)
}

/// Runs `outbox-relay replay` against `pg` through the target's sink: exit code and stdout.
fn replay(pg: &Postgres, target: &Target, filters: &[&str]) -> (Option<i32>, String) {
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .arg("replay")
        .args(filters)
        .args(["--database-url", &pg.url(), "--destination", &destination])
        .args(&target.sink_args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Ids the SQL condition picks, in `seq` order.
async fn expected(pg: &Postgres, condition: &str) -> Vec<String> {
    pg.client()
        .await
        .unwrap()
        .query(
            &format!("SELECT id::text FROM outbox WHERE {condition} ORDER BY seq"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Reads the replay's messages and checks them against `ids`: those and no others, each once,
/// marked as replayed, and in `ids`' order within each aggregate.
async fn assert_replayed(reader: &mut Reader, ids: &[String]) -> Vec<Received> {
    let received = reader
        .collect_until(DEADLINE, |r| r.len() >= ids.len())
        .await;
    let got: Vec<&str> = received.iter().map(|m| m.headers["id"].as_str()).collect();
    let mut sorted_got = got.clone();
    sorted_got.sort_unstable();
    let mut sorted_ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted_ids.sort_unstable();
    assert_eq!(sorted_got, sorted_ids, "exactly the picked rows, once each");
    assert!(
        received
            .iter()
            .all(|m| m.headers.get("replayed").map(String::as_str) == Some("true")),
        "every message is marked replayed"
    );
    let rank: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut last: HashMap<&str, usize> = HashMap::new();
    for message in &received {
        let at = rank[message.headers["id"].as_str()];
        if let Some(before) = last.insert(&message.key, at) {
            assert!(before < at, "aggregate {} out of order", message.key);
        }
    }
    received
}

fn redis_target() -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_every_row_in_order_marked_replayed() {
    let (target, mut reader) = redis_target();
    let (pg, written) = outbox_with_rows(&target).await;
    let (_, stdout) = replay(&pg, &target, &[]);
    assert_eq!(
        stdout,
        format!(
            "replayed {} events; the broker confirmed every one\n",
            written.committed()
        )
    );
    let received = assert_replayed(&mut reader, &expected(&pg, "true").await).await;
    let report = check(&written, &received);
    report.assert_lossless();
    assert_eq!(report.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_filters_pick_exactly_their_rows() {
    let (target, mut reader) = redis_target();
    let (pg, written) = outbox_with_rows(&target).await;
    let aggregate = written.per_aggregate.keys().next().unwrap().clone();
    let ids = expected(&pg, "true").await;
    let (one, two) = (ids[3].clone(), ids[17].clone());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--since", "2026-01-01T00:10:00Z"],
            "created_at >= '2026-01-01T00:10:00Z'".into(),
        ),
        (
            vec!["--until", "2026-01-01T01:10:00+01:00"],
            "created_at < '2026-01-01T00:10:00Z'".into(),
        ),
        (
            vec![
                "--since",
                "2026-01-01T00:20:00Z",
                "--until",
                "2026-01-01T00:30:00Z",
                "--aggregate-type",
                "invoice",
            ],
            "created_at >= '2026-01-01T00:20:00Z' AND created_at < '2026-01-01T00:30:00Z' AND aggregatetype = 'invoice'".into(),
        ),
        (
            vec!["--aggregate-type", "order"],
            "aggregatetype = 'order'".into(),
        ),
        (
            vec!["--aggregate-id", &aggregate],
            format!("aggregateid = '{aggregate}'"),
        ),
        (
            vec!["--id", &one, "--id", &two],
            format!("id IN ('{one}', '{two}')"),
        ),
    ];
    for (filters, condition) in cases {
        let picked = expected(&pg, &condition).await;
        assert!(
            !picked.is_empty() && picked.len() < ids.len(),
            "{condition}"
        );
        let (code, stdout) = replay(&pg, &target, &filters);
        assert_eq!(code, Some(0));
        assert_eq!(
            stdout,
            format!(
                "replayed {} events; the broker confirmed every one\n",
                picked.len()
            ),
            "{filters:?}"
        );
        assert_replayed(&mut reader, &picked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_counts_and_publishes_nothing() {
    let (target, mut reader) = redis_target();
    let (pg, _) = outbox_with_rows(&target).await;
    let picked = expected(&pg, "aggregatetype = 'invoice'").await;
    let (code, stdout) = replay(&pg, &target, &["--dry-run", "--aggregate-type", "invoice"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        format!(
            "{} rows match; nothing was published (--dry-run)\n",
            picked.len()
        )
    );
    // Had the dry run published, its messages would come before this one.
    let one = picked[0].clone();
    replay(&pg, &target, &["--id", &one]);
    assert_replayed(&mut reader, &[one]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_rabbitmq_marks_messages_replayed() {
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = support::unique("replay");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        &url,
        "--rabbitmq-exchange",
        &exchange,
    ]);
    let mut reader = Reader::rabbitmq(&url, &exchange, &target.destinations()).await;
    let (pg, written) = outbox_with_rows(&target).await;
    let aggregate = written.per_aggregate.keys().next().unwrap().clone();
    replay(&pg, &target, &["--aggregate-id", &aggregate]);
    let picked = expected(&pg, &format!("aggregateid = '{aggregate}'")).await;
    assert_replayed(&mut reader, &picked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_kafka_marks_messages_replayed() {
    let kafka = harness::Kafka::start().unwrap();
    let target = Target::new(&["--sink", "kafka", "--kafka-brokers", &kafka.brokers()]);
    let (pg, written) = outbox_with_rows(&target).await;
    let aggregate = written.per_aggregate.keys().next().unwrap().clone();
    replay(&pg, &target, &["--aggregate-id", &aggregate]);
    // The replay created the aggregate's topic (only that one: the reader waits for every topic it
    // is given); read it from the start.
    let aggregate_type: String = pg
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT aggregatetype FROM outbox WHERE aggregateid = $1 LIMIT 1",
            &[&aggregate],
        )
        .await
        .unwrap()
        .get(0);
    let topic = format!("{}.{aggregate_type}", target.prefix);
    let mut reader = Reader::kafka(&kafka.brokers(), &[topic]);
    let picked = expected(&pg, &format!("aggregateid = '{aggregate}'")).await;
    assert_replayed(&mut reader, &picked).await;
}
