//! Concurrent writers that insert outbox rows the way services do: business transactions of several
//! events, some rolled back, each aggregate owned by one writer so its events have a known order.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use tokio_postgres::Client;

#[derive(Debug, Clone)]
pub struct Workload {
    pub writers: usize,
    pub transactions_per_writer: usize,
    pub events_per_transaction: usize,
    pub aggregates_per_writer: usize,
    /// Every n-th transaction of a writer is rolled back (0: none).
    pub rollback_every: usize,
    /// Bytes of padding in each payload.
    pub padding: usize,
    /// Pause after each transaction, so that faults injected meanwhile land mid-stream.
    pub pause: std::time::Duration,
}

/// What was committed: ids in commit order per aggregate, and ids that were rolled back.
#[derive(Debug, Default)]
pub struct Written {
    pub per_aggregate: HashMap<String, Vec<String>>,
    pub rolled_back: Vec<String>,
    pub correlation: HashMap<String, String>,
    /// Pairs of transactions that committed in the opposite order of their outbox rows' `seq`
    /// (counted by `write_contended` only).
    pub commit_inversions: usize,
    /// Aggregate and id of events whose transaction's commit got no answer, because the server failed
    /// (`write_until_the_server_fails`); [`Written::settle`] decides them.
    pub uncertain: Vec<(String, String)>,
}

impl Written {
    pub fn committed(&self) -> usize {
        self.per_aggregate.values().map(Vec::len).sum()
    }

    /// Counts the uncertain events found in `table` (the ids in the outbox as the server has it
    /// after the failure) as committed, after their writer's others, and the rest as never committed.
    /// Returns how many were committed.
    pub fn settle(&mut self, table: &HashSet<String>) -> usize {
        let mut committed = 0;
        for (aggregate, id) in std::mem::take(&mut self.uncertain) {
            if table.contains(&id) {
                self.per_aggregate.entry(aggregate).or_default().push(id);
                committed += 1;
            } else {
                self.rolled_back.push(id);
            }
        }
        committed
    }

    pub fn merge(&mut self, other: Written) {
        self.per_aggregate.extend(other.per_aggregate);
        self.rolled_back.extend(other.rolled_back);
        self.correlation.extend(other.correlation);
        self.uncertain.extend(other.uncertain);
    }
}

/// Aggregate types alternate between `order` and `invoice`, so events go to two destinations.
pub const AGGREGATE_TYPES: [&str; 2] = ["order", "invoice"];

pub async fn write(url: &str, workload: &Workload) -> Written {
    write_writers(url, workload, false).await
}

/// Like [`write`], except that a writer whose server fails (crashes, is killed) stops there instead of
/// panicking. The transaction it had in flight is in [`Written::uncertain`]: its commit may or may not
/// have reached the server.
pub async fn write_until_the_server_fails(url: &str, workload: &Workload) -> Written {
    write_writers(url, workload, true).await
}

async fn write_writers(url: &str, workload: &Workload, until_failure: bool) -> Written {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let writers = (0..workload.writers).map(|writer| {
        let (url, workload, run) = (url.to_owned(), workload.clone(), run.clone());
        tokio::spawn(async move {
            write_one(&url, &workload, &format!("{run}-{writer}"), until_failure).await
        })
    });
    let mut written = Written::default();
    for writer in writers.collect::<Vec<_>>() {
        written.merge(writer.await.expect("writer task"));
    }
    written
}

/// One outbox row to insert: aggregate id, aggregate type, event id, payload and headers.
type Row = (String, &'static str, String, String, String);

async fn write_one(url: &str, workload: &Workload, writer: &str, until_failure: bool) -> Written {
    let mut client = connect(url).await;
    let mut written = Written::default();
    let mut sequence: HashMap<String, u64> = HashMap::new();
    let padding = "x".repeat(workload.padding);
    for t in 0..workload.transactions_per_writer {
        let rollback = workload.rollback_every > 0
            && t % workload.rollback_every == workload.rollback_every - 1;
        let correlation = uuid::Uuid::new_v4().to_string();
        let mut rows: Vec<Row> = Vec::new();
        for e in 0..workload.events_per_transaction {
            let n = (t * workload.events_per_transaction + e) % workload.aggregates_per_writer;
            let aggregate = format!("{writer}-{n}");
            let aggregate_type = AGGREGATE_TYPES[n % 2];
            let seq = sequence.entry(aggregate.clone()).or_default();
            let id = uuid::Uuid::new_v4();
            let payload = json!({"aggregate": aggregate, "seq": *seq, "padding": padding});
            let headers = json!({"correlation_id": correlation, "traceparent": format!("00-{}-{}-01", uuid::Uuid::new_v4().simple(), &uuid::Uuid::new_v4().simple().to_string()[..16])});
            if !rollback {
                *seq += 1;
            }
            rows.push((
                aggregate,
                aggregate_type,
                id.to_string(),
                payload.to_string(),
                headers.to_string(),
            ));
        }
        let outcome = insert(&mut client, &rows, rollback).await;
        let ids = rows
            .into_iter()
            .map(|(aggregate, _, id, _, _)| (aggregate, id));
        match outcome {
            Ok(()) if rollback => written.rolled_back.extend(ids.map(|(_, id)| id)),
            Ok(()) => {
                for (aggregate, id) in ids {
                    written.correlation.insert(id.clone(), correlation.clone());
                    written.per_aggregate.entry(aggregate).or_default().push(id);
                }
            }
            Err(e) if until_failure => {
                eprintln!("writer {writer} stops: {e}");
                if rollback {
                    written.rolled_back.extend(ids.map(|(_, id)| id));
                } else {
                    for (aggregate, id) in ids {
                        written.correlation.insert(id.clone(), correlation.clone());
                        written.uncertain.push((aggregate, id));
                    }
                }
                return written;
            }
            Err(e) => panic!("writer {writer}: {e}"),
        }
        tokio::time::sleep(workload.pause).await;
    }
    written
}

/// One transaction inserting `rows`, committed or rolled back.
async fn insert(
    client: &mut Client,
    rows: &[Row],
    rollback: bool,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    for (aggregate, aggregate_type, id, payload, headers) in rows {
        tx.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ($1::text::uuid, $2, $3, 'Changed', $4::text::jsonb, $5::text::jsonb)",
            &[id, aggregate_type, aggregate, payload, headers],
        )
        .await?;
    }
    if rollback {
        tx.rollback().await
    } else {
        tx.commit().await
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Writers that share aggregates, as services under load do: each transaction locks its aggregate's
/// row (bumping its version) before inserting the event, then lingers a random moment before it
/// commits. Transactions therefore commit out of sequence order all the time, while each aggregate's
/// events stay in the order its lock granted, which its version records.
pub async fn write_contended(
    url: &str,
    writers: usize,
    transactions_per_writer: usize,
    aggregates: usize,
) -> Written {
    let run = uuid::Uuid::new_v4().simple().to_string();
    connect(url)
        .await
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS aggregates (id text PRIMARY KEY, version int NOT NULL)",
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (url, run) = (url.to_owned(), run.clone());
            tokio::spawn(async move {
                let mut client = connect(&url).await;
                let mut events = Vec::new();
                for t in 0..transactions_per_writer {
                    let n = (writer * 7 + t * 3) % aggregates;
                    let aggregate = format!("{run}-{n}");
                    // One type per aggregate: order is kept per destination.
                    let aggregate_type = AGGREGATE_TYPES[n % 2];
                    let tx = client.transaction().await.unwrap();
                    let version: i32 = tx
                        .query_one(
                            "INSERT INTO aggregates VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET version = aggregates.version + 1 RETURNING version",
                            &[&aggregate],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    let id = uuid::Uuid::new_v4().to_string();
                    let correlation = uuid::Uuid::new_v4().to_string();
                    let payload = json!({"aggregate": aggregate, "seq": version});
                    let headers = json!({"correlation_id": correlation, "traceparent": format!("00-{}-{}-01", uuid::Uuid::new_v4().simple(), &uuid::Uuid::new_v4().simple().to_string()[..16])});
                    let seq: i64 = tx.query_one(
                        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ($1::text::uuid, $2, $3, 'Changed', $4::text::jsonb, $5::text::jsonb) RETURNING seq",
                        &[&id, &aggregate_type, &aggregate, &payload.to_string(), &headers.to_string()],
                    )
                    .await
                    .unwrap()
                    .get(0);
                    let linger = rand::random_range(0..15);
                    tokio::time::sleep(std::time::Duration::from_millis(linger)).await;
                    tx.commit().await.unwrap();
                    let committed = std::time::Instant::now();
                    events.push((aggregate, version, id, correlation, seq, committed));
                }
                events
            })
        })
        .collect();
    let mut events = Vec::new();
    for task in tasks {
        events.extend(task.await.expect("writer task"));
    }
    let mut written = Written::default();
    events.sort_by_key(|e| e.5);
    written.commit_inversions = events
        .windows(2)
        .filter(|pair| pair[0].4 > pair[1].4)
        .count();
    events.sort_by_key(|e| e.1);
    for (aggregate, _, id, correlation, _, _) in events {
        written.correlation.insert(id.clone(), correlation);
        written.per_aggregate.entry(aggregate).or_default().push(id);
    }
    written
}
