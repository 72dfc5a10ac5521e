//! The Debezium Outbox Event Router options end to end, in logical and polling mode: routing by any
//! column, a per-row destination column, a missing column named at start, the key from any column
//! (JSON-quoted) and the event id's header name.

use std::time::Duration;

use harness::{Postgres, Process, Reader};

use crate::support::{self, scenarios};

const DEADLINE: Duration = Duration::from_secs(60);

/// A database whose outbox has `tenant` and `destination` columns too.
async fn database(polling: bool) -> Postgres {
    let mut builder = Postgres::builder();
    if polling {
        builder = builder.setting("wal_level=replica");
    }
    let pg = builder.start().expect("PostgreSQL starts");
    support::create_outbox(&pg).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE outbox ADD COLUMN tenant text, ADD COLUMN destination text")
        .await
        .unwrap();
    pg
}

fn config(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn relay(
    pg: &Postgres,
    redis: &str,
    destination: &str,
    config: &tempfile::NamedTempFile,
) -> Process {
    support::start_relay(
        pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "redis",
            "--redis-url",
            redis,
            "--destination",
            destination,
        ],
    )
}

async fn routes_by_any_column_and_by_a_rows_own_destination(polling: bool) {
    let redis = harness::Redis::shared().unwrap();
    let prefix = support::unique("route");
    let pg = database(polling).await;
    let config = config("[routing]\ndestination_column = \"destination\"\n");
    let mut relay = relay(
        &pg,
        &redis,
        &format!("{prefix}.{{tenant}}.{{aggregatetype}}"),
        &config,
    );
    scenarios::wait_streaming(&relay);
    let special = format!("{prefix}.special");
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant, destination) VALUES
               (gen_random_uuid(), 'order', 'o-1', 'Created', '{{}}', 'acme', NULL),
               (gen_random_uuid(), 'order', 'o-2', 'Created', '{{}}', 'globex', ''),
               (gen_random_uuid(), 'order', 'o-3', 'Created', '{{}}', 'acme', '{special}')"
        ))
        .await
        .unwrap();
    let streams = [
        format!("{prefix}.acme.order"),
        format!("{prefix}.globex.order"),
        special,
    ];
    let mut reader = Reader::redis(&redis, &streams);
    let received = reader.collect_until(DEADLINE, |r| r.len() >= 3).await;
    let mut routed: Vec<(&str, &str)> = received
        .iter()
        .map(|m| (m.key.as_str(), m.destination.as_str()))
        .collect();
    routed.sort();
    assert_eq!(
        routed,
        [
            ("o-1", streams[0].as_str()),
            ("o-2", streams[1].as_str()),
            ("o-3", streams[2].as_str()),
        ],
        "{}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_any_column_and_by_a_rows_own_destination_in_logical_mode() {
    routes_by_any_column_and_by_a_rows_own_destination(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_any_column_and_by_a_rows_own_destination_when_polling() {
    routes_by_any_column_and_by_a_rows_own_destination(true).await;
}

async fn a_template_column_the_table_lacks_stops_the_relay_naming_it(polling: bool) {
    let redis = harness::Redis::shared().unwrap();
    let pg = database(polling).await;
    let config = config("");
    let mut relay = relay(&pg, &redis, "t.{region}.{aggregatetype}", &config);
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .unwrap_or_else(|| panic!("the relay stops by itself:\n{}", relay.log()));
    assert!(!status.success());
    let log = relay.log();
    assert!(
        log.contains(r#"has no column(s) ["region"]"#),
        "the log names the column:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_column_the_table_lacks_stops_the_relay_in_logical_mode() {
    a_template_column_the_table_lacks_stops_the_relay_naming_it(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_column_the_table_lacks_stops_the_relay_when_polling() {
    a_template_column_the_table_lacks_stops_the_relay_naming_it(true).await;
}

/// Keyed by another column, JSON-quoted as Debezium's `JsonConverter` writes a string key, with
/// the event id under a header name of the user's choosing.
async fn keys_by_any_column_json_quoted_with_a_renamed_id_header(polling: bool) {
    let kafka = harness::Kafka::start().unwrap();
    let topic = support::unique("keyed");
    let pg = database(polling).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE outbox ADD COLUMN customer text")
        .await
        .unwrap();
    let config = config(
        "[routing]\nkey_column = \"customer\"\nkey_format = \"json\"\n[format]\nid_header = \"eventId\"\n",
    );
    let mut relay = support::start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "kafka",
            "--kafka-brokers",
            &kafka.brokers(),
            "--destination",
            &topic,
        ],
    );
    scenarios::wait_streaming(&relay);
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers, customer) VALUES
               ('6f1c2a4e-0000-4000-8000-000000000001', 'order', 'o-1', 'Created', '{}', '{\"id\": \"forged\"}', 'c-7')",
        )
        .await
        .unwrap();
    let mut reader = Reader::kafka(&kafka.brokers(), std::slice::from_ref(&topic));
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    let message = &received[0];
    assert_eq!(message.key, r#""c-7""#, "{}", relay.log());
    assert_eq!(
        message.headers.get("eventId").map(String::as_str),
        Some("6f1c2a4e-0000-4000-8000-000000000001")
    );
    assert_eq!(
        message.headers.get("id"),
        None,
        "a row header cannot pose as the id"
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_any_column_json_quoted_with_a_renamed_id_header_in_logical_mode() {
    keys_by_any_column_json_quoted_with_a_renamed_id_header(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_any_column_json_quoted_with_a_renamed_id_header_when_polling() {
    keys_by_any_column_json_quoted_with_a_renamed_id_header(true).await;
}

/// A Kafka message as read: partition, key, value (`None`: a tombstone) and headers.
type Landed = (i32, String, Option<String>, Vec<(String, String)>);

/// Reads every partition of `topic` until `count` keys arrived: partition, key, value and headers
/// of each key's first message (a session that ends on a refusal sends its batch again).
fn read_partitions(brokers: &str, topic: &str, count: usize) -> Vec<Landed> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", support::unique("placement-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut read = Vec::new();
    while read.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} arrived",
            read.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        let text =
            |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), text(h.value)))
                    .collect()
            })
            .unwrap_or_default();
        let key = text(message.key());
        if !read.iter().any(|(_, k, _, _)| *k == key) {
            read.push((
                message.partition(),
                key,
                message
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                headers,
            ));
        }
    }
    read
}

/// `table.fields.additional.placement`: a column as a header, one in an envelope around the
/// payload, one as the Kafka partition; a partition column without a number dead-letters its event.
async fn places_further_columns_in_headers_the_envelope_and_the_partition(polling: bool) {
    let kafka = harness::Kafka::start().unwrap();
    let topic = support::unique("placed");
    let dead_letters = support::unique("placed-dlq");
    let pg = database(polling).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE outbox ADD COLUMN version integer, ADD COLUMN part text")
        .await
        .unwrap();
    let config = config(
        "[format]\nadditional_columns = [\"tenant:header:x-tenant\", \"version:envelope\", \"part:partition\"]\n",
    );
    let mut relay = support::start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "kafka",
            "--kafka-brokers",
            &kafka.brokers(),
            "--destination",
            &topic,
            "--dead-letter-destination",
            &dead_letters,
        ],
    );
    scenarios::wait_streaming(&relay);
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant, version, part) VALUES
               (gen_random_uuid(), 'order', 'o-1', 'Created', '{\"n\": 1}', 'acme', 2, '2'),
               (gen_random_uuid(), 'order', 'o-2', 'Created', '{\"n\": 2}', NULL, NULL, '0'),
               (gen_random_uuid(), 'order', 'o-3', 'Created', '{\"n\": 3}', 'acme', 1, 'oops')",
        )
        .await
        .unwrap();
    let mut parked = Reader::kafka(&kafka.brokers(), std::slice::from_ref(&dead_letters));
    let dead = parked.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(dead[0].key, "o-3", "{}", relay.log());
    let reason = dead[0]
        .headers
        .get("dlq_reason")
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("not a partition number"), "{reason}");

    let mut read = read_partitions(&kafka.brokers(), &topic, 2);
    read.sort_by(|a, b| a.1.cmp(&b.1));
    let header = |headers: &[(String, String)]| {
        headers
            .iter()
            .find(|(k, _)| k == "x-tenant")
            .map(|(_, v)| v.clone())
    };
    assert_eq!((read[0].0, read[0].1.as_str()), (2, "o-1"));
    assert_eq!(
        read[0].2.as_deref(),
        Some(r#"{"payload":{"n":1},"version":"2"}"#)
    );
    assert_eq!(header(&read[0].3).as_deref(), Some("acme"));
    assert_eq!((read[1].0, read[1].1.as_str()), (0, "o-2"));
    assert_eq!(
        read[1].2.as_deref(),
        Some(r#"{"payload":{"n":2},"version":null}"#)
    );
    assert_eq!(header(&read[1].3), None);
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_further_columns_in_headers_the_envelope_and_the_partition_in_logical_mode() {
    places_further_columns_in_headers_the_envelope_and_the_partition(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_further_columns_in_headers_the_envelope_and_the_partition_when_polling() {
    places_further_columns_in_headers_the_envelope_and_the_partition(true).await;
}

/// Debezium's `tracingspancontext` column carries its `traceparent` like the row's headers do.
async fn carries_debeziums_span_context_as_trace_headers(polling: bool) {
    let redis = harness::Redis::shared().unwrap();
    let stream = support::unique("traced");
    let pg = database(polling).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE outbox ADD COLUMN tracingspancontext text")
        .await
        .unwrap();
    let config = config("");
    let mut relay = relay(&pg, &redis, &stream, &config);
    scenarios::wait_streaming(&relay);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tracingspancontext) VALUES
               (gen_random_uuid(), 'order', 'o-1', 'Created', '{{}}', E'#Sun Dec 06 06:00:00 UTC 2026\\ntraceparent={traceparent}\\n')"
        ))
        .await
        .unwrap();
    let mut reader = Reader::redis(&redis, std::slice::from_ref(&stream));
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(
        received[0].headers.get("traceparent").map(String::as_str),
        Some(traceparent),
        "{}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_debeziums_span_context_as_trace_headers_in_logical_mode() {
    carries_debeziums_span_context_as_trace_headers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_debeziums_span_context_as_trace_headers_when_polling() {
    carries_debeziums_span_context_as_trace_headers(true).await;
}

/// `route.tombstone.on.empty.payload` and an unexpanded payload: a NULL payload is a Kafka
/// tombstone, any other is sent as one JSON string.
async fn sends_tombstones_for_null_payloads_and_payloads_as_json_strings(polling: bool) {
    let kafka = harness::Kafka::start().unwrap();
    let topic = support::unique("tombstones");
    let pg = database(polling).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL")
        .await
        .unwrap();
    let config =
        config("[format]\ntombstone_on_null_payload = true\npayload_encoding = \"json_string\"\n");
    let mut relay = support::start_relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--sink",
            "kafka",
            "--kafka-brokers",
            &kafka.brokers(),
            "--destination",
            &topic,
        ],
    );
    scenarios::wait_streaming(&relay);
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES
               (gen_random_uuid(), 'order', 'o-1', 'Deleted', NULL),
               (gen_random_uuid(), 'order', 'o-2', 'Created', '{\"a\": 1}')",
        )
        .await
        .unwrap();
    let mut read = read_partitions(&kafka.brokers(), &topic, 2);
    read.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(read[0].2, None, "a tombstone: {}", relay.log());
    assert_eq!(read[1].2.as_deref(), Some(r#""{\"a\": 1}""#));
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_tombstones_for_null_payloads_and_payloads_as_json_strings_in_logical_mode() {
    sends_tombstones_for_null_payloads_and_payloads_as_json_strings(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_tombstones_for_null_payloads_and_payloads_as_json_strings_when_polling() {
    sends_tombstones_for_null_payloads_and_payloads_as_json_strings(true).await;
}

/// Metadata headers describe each event's transaction in logical replication; polling has no
/// transaction to describe and sends none.
async fn describes_the_transaction_in_metadata_headers(polling: bool) {
    let redis = harness::Redis::shared().unwrap();
    let stream = support::unique("metadata");
    let pg = database(polling).await;
    let config = config(
        "[format]\nmetadata_headers = [\"commit_lsn\", \"transaction_id\", \"commit_time\", \"transaction_index\"]\n",
    );
    let mut relay = relay(&pg, &redis, &stream, &config);
    scenarios::wait_streaming(&relay);
    let mut client = pg.client().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    transaction
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES
               (gen_random_uuid(), 'order', 'o-1', 'Created', '{}'),
               (gen_random_uuid(), 'order', 'o-1', 'Confirmed', '{}')",
        )
        .await
        .unwrap();
    let xid: String = transaction
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);
    transaction.commit().await.unwrap();
    let mut reader = Reader::redis(&redis, std::slice::from_ref(&stream));
    let received = reader.collect_until(DEADLINE, |r| r.len() >= 2).await;
    let header = |i: usize, name: &str| received[i].headers.get(name).cloned();
    if polling {
        for name in [
            "commit_lsn",
            "transaction_id",
            "commit_time",
            "transaction_index",
        ] {
            assert_eq!(header(0, name), None, "{name}");
        }
    } else {
        assert_eq!(
            header(0, "transaction_id"),
            Some(xid.clone()),
            "{}",
            relay.log()
        );
        assert_eq!(header(1, "transaction_id"), Some(xid));
        assert!(header(0, "commit_lsn").is_some_and(|lsn| lsn.contains('/')));
        assert_eq!(header(0, "commit_lsn"), header(1, "commit_lsn"));
        assert!(header(0, "commit_time").is_some_and(|t| t.ends_with('Z')));
        assert_eq!(header(0, "transaction_index").as_deref(), Some("0"));
        assert_eq!(header(1, "transaction_index").as_deref(), Some("1"));
    }
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_the_transaction_in_metadata_headers_in_logical_mode() {
    describes_the_transaction_in_metadata_headers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_no_metadata_headers_when_polling() {
    describes_the_transaction_in_metadata_headers(true).await;
}

/// A `json` or `text` payload column is sent as written, byte for byte: its spacing and member
/// order are not normalized as `jsonb` would.
async fn passes_json_and_text_payloads_as_written(polling: bool, column_type: &str) {
    let redis = harness::Redis::shared().unwrap();
    let stream = support::unique("verbatim");
    let pg = database(polling).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "ALTER TABLE outbox ALTER COLUMN payload TYPE {column_type} USING payload::text::{column_type}"
        ))
        .await
        .unwrap();
    let config = config("");
    let mut relay = relay(&pg, &redis, &stream, &config);
    scenarios::wait_streaming(&relay);
    let written = "{\"b\": 1,   \"a\": [1.10, 2e3],\n \"b\": 2}";
    pg.client()
        .await
        .unwrap()
        .execute(
            &format!(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES
                   (gen_random_uuid(), 'order', 'o-1', 'Created', $1::text::{column_type})"
            ),
            &[&written],
        )
        .await
        .unwrap();
    let mut reader = Reader::redis(&redis, std::slice::from_ref(&stream));
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(
        received[0].payload,
        written,
        "{column_type}: {}",
        relay.log()
    );
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_json_and_text_payloads_as_written_in_logical_mode() {
    passes_json_and_text_payloads_as_written(false, "json").await;
    passes_json_and_text_payloads_as_written(false, "text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_json_and_text_payloads_as_written_when_polling() {
    passes_json_and_text_payloads_as_written(true, "json").await;
    passes_json_and_text_payloads_as_written(true, "text").await;
}
