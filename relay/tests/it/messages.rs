//! Events without a table: `pg_logical_emit_message` relayed like outbox rows, on real clusters
//! and brokers: in commit order among rows, rolled-back and foreign-prefix messages never sent,
//! non-transactional and malformed ones dead-lettered, nothing lost to a kill -9, and a clear
//! refusal on PostgreSQL 13.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use harness::{Postgres, Reader, Received};

use crate::support::{self, scenarios, start_relay, stop_relay, unique};

const DEADLINE: Duration = Duration::from_secs(120);

fn config_file(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), contents).unwrap();
    file
}

fn messages_on() -> tempfile::NamedTempFile {
    config_file("[messages]\nenabled = true\n")
}

fn document(id: &str, aggregate_id: &str, event_type: &str, payload: &str) -> String {
    format!(
        r#"{{"id":"{id}","aggregatetype":"order","aggregateid":"{aggregate_id}","type":"{event_type}","payload":{payload},"headers":{{"correlation_id":"c-{id}"}}}}"#
    )
}

fn row_id(n: u32) -> String {
    format!("00000000-0000-0000-0000-{n:012}")
}

/// One transaction of rows and messages interleaved, plus a message of another prefix; returns
/// the ids in the order the transaction wrote them.
async fn mixed_transaction(pg: &Postgres) -> Vec<String> {
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('{row1}', 'order', 'o-1', 'Row', '{{\"n\": 1}}');
             SELECT pg_logical_emit_message(true, 'outbox', '{m1}');
             SELECT pg_logical_emit_message(true, 'other', '{{\"id\": \"foreign\"}}');
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('{row2}', 'order', 'o-1', 'Row', '{{\"n\": 3}}');
             SELECT pg_logical_emit_message(true, 'outbox', '{m2}');
             COMMIT;",
            row1 = row_id(1),
            row2 = row_id(2),
            m1 = document("m-1", "o-1", "Emitted", r#"{"n": 2}"#),
            m2 = document("m-2", "o-1", "Emitted", r#"{"n": 4}"#),
        ))
        .await
        .unwrap();
    vec![row_id(1), "m-1".into(), row_id(2), "m-2".into()]
}

/// The SQL docs/MESSAGES.md shows a service running.
fn documented_sql() -> String {
    let doc = include_str!("../../../docs/MESSAGES.md");
    let start = doc.find("```sql\n").expect("an SQL block") + "```sql\n".len();
    doc[start..][..doc[start..].find("```").unwrap()].to_owned()
}

fn ids(received: &[Received], destination: &str) -> Vec<String> {
    received
        .iter()
        .filter(|m| m.destination == destination)
        .map(|m| m.headers["id"].clone())
        .collect()
}

/// Rows and messages of one transaction in their order; a rolled-back transaction's message and
/// other prefixes never sent; a non-transactional and a malformed message dead-lettered with the
/// reason, after which the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_relays_messages_among_rows_and_dead_letters_bad_ones() {
    let pg = support::outbox_database().await;
    let url = harness::Redis::shared().unwrap();
    let prefix = unique("m");
    let (events, dlq) = (format!("{prefix}.order"), format!("{prefix}.dlq"));
    let config = messages_on();
    let mut relay = start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "redis",
            "--redis-url",
            &url,
            "--destination",
            &format!("{prefix}.{{aggregatetype}}"),
            "--dead-letter-destination",
            &dlq,
        ],
    );
    scenarios::wait_streaming(&relay);
    let mut expected = mixed_transaction(&pg).await;
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_logical_emit_message(true, 'outbox', '{}'); ROLLBACK;",
            document("rolled-back", "o-1", "Emitted", "{}")
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pg_logical_emit_message(false, 'outbox', '{}')",
            document("non-transactional", "o-1", "Emitted", "{}")
        ))
        .await
        .unwrap();
    client
        .batch_execute(
            r#"SELECT pg_logical_emit_message(true, 'outbox', '{"id": "malformed", "aggregatetype": "order"}')"#,
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('{}', 'order', 'o-2', 'Row', '{{}}')",
            row_id(3)
        ))
        .await
        .unwrap();
    expected.push(row_id(3));
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders VALUES (42, 'new');")
        .await
        .unwrap();
    client.batch_execute(&documented_sql()).await.unwrap();

    let mut reader = Reader::redis(&url, &[events.clone(), dlq.clone()]);
    let received = reader
        .collect_until(DEADLINE, |r| {
            ids(r, &events).len() > expected.len() && ids(r, &dlq).len() >= 2
        })
        .await;
    let mut relayed = ids(&received, &events);
    let documented = relayed.pop().unwrap();
    assert_eq!(relayed, expected, "{}", relay.log());
    let confirmed = received
        .iter()
        .find(|m| m.headers["id"] == documented)
        .unwrap();
    assert_eq!(
        (
            confirmed.headers["type"].as_str(),
            confirmed.headers["aggregateid"].as_str(),
            confirmed.headers["correlation_id"].as_str(),
            confirmed.payload.as_str()
        ),
        ("OrderConfirmed", "42", "c-1", r#"{"total" : 10.00}"#)
    );
    expected.push(documented);
    let m1 = received.iter().find(|m| m.headers["id"] == "m-1").unwrap();
    assert_eq!(m1.payload, r#"{"n": 2}"#);
    assert_eq!(m1.headers["type"], "Emitted");
    assert_eq!(m1.headers["aggregateid"], "o-1");
    assert_eq!(m1.headers["correlation_id"], "c-m-1");
    let positions: Vec<&String> = received
        .iter()
        .filter(|m| m.destination == events)
        .map(|m| &m.headers["outbox_position"])
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let dead: HashMap<String, &Received> = received
        .iter()
        .filter(|m| m.destination == dlq)
        .map(|m| (m.headers["id"].clone(), m))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reason = |id: &str| dead[id].headers["dlq_reason"].clone();
    assert!(
        reason("non-transactional").contains("is not transactional"),
        "{}",
        reason("non-transactional")
    );
    assert!(
        reason("malformed").contains("missing field `aggregateid`"),
        "{}",
        reason("malformed")
    );
    assert_eq!(
        dead["malformed"].payload,
        r#"{"id": "malformed", "aggregatetype": "order"}"#
    );
    // Anything sent late would have arrived by the time the last row did; look once more anyway.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = reader.collect_until(DEADLINE, |_| true).await;
    let all: Vec<&str> = received
        .iter()
        .chain(&late)
        .map(|m| m.headers["id"].as_str())
        .collect();
    assert!(
        !all.contains(&"rolled-back") && !all.contains(&"foreign"),
        "{all:?}"
    );
    assert_eq!(all.len(), expected.len() + 2, "{all:?}");
    stop_relay(&mut relay);
}

/// The same mixed transaction through RabbitMQ keeps its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_relays_messages_among_rows_in_commit_order() {
    let pg = support::outbox_database().await;
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = unique("outbox");
    let prefix = unique("m");
    let events = format!("{prefix}.order");
    let mut reader = Reader::rabbitmq(&url, &exchange, std::slice::from_ref(&events)).await;
    let config = messages_on();
    let mut relay = start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "rabbitmq",
            "--rabbitmq-url",
            &url,
            "--rabbitmq-exchange",
            &exchange,
            "--destination",
            &format!("{prefix}.{{aggregatetype}}"),
        ],
    );
    scenarios::wait_streaming(&relay);
    let expected = mixed_transaction(&pg).await;
    let received = reader
        .collect_until(DEADLINE, |r| r.len() >= expected.len())
        .await;
    assert_eq!(ids(&received, &events), expected, "{}", relay.log());
    stop_relay(&mut relay);
}

/// kill -9 while services commit rows and messages together: after a restart every one of them
/// has arrived, and each aggregate's first deliveries are in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_messages_survive_relay_kill() {
    const TRANSACTIONS: u32 = 300;
    let pg = support::outbox_database().await;
    let url = harness::Redis::shared().unwrap();
    let prefix = unique("m");
    let events = format!("{prefix}.order");
    let config = messages_on();
    let destination = format!("{prefix}.{{aggregatetype}}");
    let args = [
        "--config",
        config.path().to_str().unwrap(),
        "--sink",
        "redis",
        "--redis-url",
        &url,
        "--destination",
        &destination,
        "--batch-size",
        "10",
        "--max-in-flight",
        "50",
    ];
    let mut relay = start_relay(&pg, &args);
    scenarios::wait_streaming(&relay);
    let client = pg.client().await.unwrap();
    let writer = tokio::spawn(async move {
        for n in 0..TRANSACTIONS {
            client
                .batch_execute(&format!(
                    "BEGIN;
                     INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('{row}', 'order', 'k-{key}', 'Row', '{{}}');
                     SELECT pg_logical_emit_message(true, 'outbox', '{message}');
                     COMMIT;",
                    row = row_id(n),
                    key = n % 5,
                    message = document(&format!("m-{n}"), &format!("k-{}", n % 5), "Emitted", "{}"),
                ))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    scenarios::wait_confirmed_batches(&relay, 5);
    assert!(!writer.is_finished(), "the kill lands mid-stream");
    relay.kill9().unwrap();
    writer.await.unwrap();
    let mut relay = start_relay(&pg, &args);
    // Commit order: row n, then message n, then row n + 1, ...
    let order: HashMap<String, u32> = (0..TRANSACTIONS)
        .flat_map(|n| [(row_id(n), 2 * n), (format!("m-{n}"), 2 * n + 1)])
        .collect();
    let mut reader = Reader::redis(&url, std::slice::from_ref(&events));
    let received = reader
        .collect_until(DEADLINE, |r| {
            r.iter()
                .map(|m| &m.headers["id"])
                .collect::<HashSet<_>>()
                .len()
                == order.len()
        })
        .await;
    let mut seen = HashSet::new();
    let mut last: HashMap<&str, u32> = HashMap::new();
    for message in &received {
        let id = &message.headers["id"];
        if !seen.insert(id.clone()) {
            continue;
        }
        let at = order[id];
        let key = message.headers["aggregateid"].as_str();
        if let Some(before) = last.insert(key, at) {
            assert!(before < at, "{id} of {key} arrived after a later event");
        }
    }
    eprintln!(
        "after kill -9: {} events, {} deliveries",
        order.len(),
        received.len()
    );
    stop_relay(&mut relay);
}

/// PostgreSQL 13's pgoutput has no `messages` option: asking for messages stops the relay with
/// exit code 2 naming the key, before it creates a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_postgres_13_exit_2_naming_the_key() {
    let pg = Postgres::builder().major(13).start().unwrap();
    support::create_outbox(&pg).await;
    let config = messages_on();
    let mut relay = start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "stdout",
            "--mode",
            "logical",
        ],
    );
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("the relay stops instead of retrying");
    let log = relay.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("invalid value for `messages.enabled`")
            && log.contains("PostgreSQL 13 cannot send pg_logical_emit_message messages"),
        "{log}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots")
            .unwrap()
            .trim(),
        "0"
    );
}

/// `status` counts the messages of the prefix waiting behind a stopped relay, as it counts rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_pending_messages() {
    let pg = support::outbox_database().await;
    let config = messages_on();
    let config_path = config.path().to_str().unwrap();
    let mut relay = start_relay(&pg, &["--config", config_path, "--sink", "stdout"]);
    scenarios::wait_streaming(&relay);
    stop_relay(&mut relay);
    mixed_transaction(&pg).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args([
            "status",
            "--config",
            config_path,
            "--database-url",
            &pg.url(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("pending events     4\n"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `auto` on a server without logical decoding would poll, and polling never sees a message: with
/// messages on, the relay stops with logical replication's fix instead of relaying only rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_messages_on_never_falls_back_to_polling() {
    let pg = Postgres::builder()
        .setting("wal_level=replica")
        .start()
        .unwrap();
    support::create_outbox(&pg).await;
    let config = messages_on();
    let mut relay = start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "stdout",
        ],
    );
    let status = relay
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("the relay stops instead of polling");
    let log = relay.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("mode auto cannot poll while messages.enabled is on")
            && log.contains("wal_level")
            && !log.contains("streaming the outbox"),
        "{log}"
    );
}
