//! Kafka partitioning: the relay puts each key on the partition the Java client would, so that a topic
//! written by Java-partitioning producers before it keeps every aggregate on its partition.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{java_partitioner, Kafka, Postgres};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::{self, scenarios::wait_streaming, stop_relay, unique};

const PARTITIONS: i32 = 6;
const DEADLINE: Duration = Duration::from_secs(120);

/// Hundreds of keys through the relay to a six-partition topic: each message is on the partition
/// Java's `toPositive(murmur2(key)) % 6` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_places_each_key_where_the_java_client_would() {
    let kafka = Kafka::start().unwrap();
    let topic = unique("partitioned");
    kafka.create_topic(&topic, PARTITIONS as u32).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("order-{i}")).collect();

    let pg = support::outbox_database().await;
    let mut relay = relay(&pg, &kafka, &topic);
    insert_events(&pg, &keys, 2).await;
    let messages = read_topic(&kafka.brokers(), &topic, keys.len() * 2);
    stop_relay(&mut relay);

    for message in &messages {
        assert_eq!(
            message.partition,
            java_partitioner::partition(message.key.as_bytes(), PARTITIONS),
            "{:?} is not on the Java client's partition",
            message.key
        );
    }
    let used: BTreeSet<i32> = messages.iter().map(|m| m.partition).collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "keys spread over every partition"
    );
}

/// The cutover: kafka-python (its default partitioner is the Java client's murmur2) writes a topic
/// first, then the relay writes the same aggregates' next events to it. Every aggregate's events stay
/// on one partition, so its consumers keep reading them in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_keeps_each_aggregate_on_its_partition_after_kafka_python() {
    let kafka = Kafka::start().unwrap();
    let topic = unique("cutover");
    kafka.create_topic(&topic, PARTITIONS as u32).unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("order-{i}")).collect();

    produce_with_kafka_python(&kafka.brokers(), &topic, "before-cutover", &keys);
    let pg = support::outbox_database().await;
    let mut relay = relay(&pg, &kafka, &topic);
    insert_events(&pg, &keys, 1).await;
    let messages = read_topic(&kafka.brokers(), &topic, keys.len() * 2);
    stop_relay(&mut relay);

    let mut partitions: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    let mut writers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for message in &messages {
        partitions
            .entry(&message.key)
            .or_default()
            .insert(message.partition);
        let writer = if message.value == "before-cutover" {
            "kafka-python"
        } else {
            "relay"
        };
        writers.entry(&message.key).or_default().insert(writer);
    }
    for key in &keys {
        assert_eq!(
            writers.get(key.as_str()).map(BTreeSet::len),
            Some(2),
            "{key:?} was written by kafka-python and then by the relay"
        );
        assert_eq!(
            partitions[key.as_str()].len(),
            1,
            "{key:?} moved partition at the cutover: {:?}",
            partitions[key.as_str()]
        );
    }
    let used: BTreeSet<i32> = partitions.values().flatten().copied().collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "keys spread over every partition"
    );
}

/// The relay routing every event to `topic`, streaming.
fn relay(pg: &Postgres, kafka: &Kafka, topic: &str) -> harness::Process {
    let brokers = kafka.brokers();
    let relay = support::start_relay(
        pg,
        &[
            "--sink",
            "kafka",
            "--kafka-brokers",
            &brokers,
            "--destination",
            topic,
        ],
    );
    wait_streaming(&relay);
    relay
}

/// `per_key` events for each key, committed in one transaction.
async fn insert_events(pg: &Postgres, keys: &[String], per_key: i32) {
    pg.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             SELECT gen_random_uuid(), 'order', key, 'Changed', jsonb_build_object('n', n)
             FROM unnest($1::text[]) AS key, generate_series(1, $2) AS n",
            &[&keys, &per_key],
        )
        .await
        .unwrap();
}

struct Landed {
    partition: i32,
    key: String,
    value: String,
}

/// Every message of `topic`, read partition by partition from the beginning, once `count` are there.
fn read_topic(brokers: &str, topic: &str, count: usize) -> Vec<Landed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("partition-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut landed = Vec::new();
    while landed.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages arrived",
            landed.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        landed.push(Landed {
            partition: message.partition(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        });
    }
    landed
}

/// Writes one message per key with kafka-python, checking it reported each one delivered.
fn produce_with_kafka_python(brokers: &str, topic: &str, value: &str, keys: &[String]) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/partitioning/kafka_python_produce.py"
    );
    let output = Command::new(kafka_python())
        .arg(script)
        .args([brokers, topic, value])
        .args(keys)
        .output()
        .expect("kafka-python's interpreter runs");
    assert!(
        output.status.success(),
        "kafka-python failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let delivered = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(
        delivered,
        keys.len(),
        "kafka-python delivered every message"
    );
}

/// `$KAFKA_PYTHON`, else where scripts/install-kafka-python.sh puts it.
fn kafka_python() -> PathBuf {
    let path = std::env::var_os("KAFKA_PYTHON").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/outbox-relay/kafka-python-3.0.12/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no Python with kafka-python at {}: run scripts/install-kafka-python.sh, or point \
         KAFKA_PYTHON at a python that imports kafka",
        path.display()
    );
    path
}
