//! The Kafka sink against a throwaway Tansu broker: topics created on first use, idempotent producer
//! keeping per-key order across overlapping batches, headers, and a fast failure when no broker answers.

use crate::sink_common;

use std::time::{Duration, Instant};

use outbox_relay::config::SinkKind;
use outbox_relay::sink::kafka::{connect, KafkaConfig};
use outbox_relay::sink::SinkError;
use sink_common::{assert_delivered_in_order, events, publish_all, unique, Received};

const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

fn config(brokers: String) -> KafkaConfig {
    KafkaConfig {
        brokers,
        topic_partitions: 3,
        replication_factor: 1,
        message_timeout: Duration::from_secs(10),
        ..KafkaConfig::default()
    }
}

/// Reads `count` messages from every partition of `topics`, with the harness's reader.
async fn receive(brokers: &str, topics: &[String], count: usize) -> Vec<Received> {
    harness::Reader::kafka(brokers, topics)
        .collect_until(RECEIVE_TIMEOUT, |r| r.len() >= count)
        .await
}

#[tokio::test]
async fn kafka_delivers_overlapping_batches_in_order_per_key() {
    let kafka = harness::Kafka::start().unwrap();
    let topics = [unique("outbox.event.a"), unique("outbox.event.b")];
    let mut sink = connect(&config(kafka.brokers())).await.unwrap();
    let sent = events(&topics, 6, 50);

    publish_all(&mut sink, SinkKind::Kafka, sent.clone(), 25, 4)
        .await
        .unwrap();

    let received = receive(&kafka.brokers(), &topics, sent.len()).await;
    assert_delivered_in_order(&sent, &received);
}

#[tokio::test]
async fn kafka_publishes_to_topic_created_after_connect() {
    let kafka = harness::Kafka::start().unwrap();
    let topic = unique("outbox.event.precreated");
    let mut sink = connect(&config(kafka.brokers())).await.unwrap();
    // The sink does not know the topic yet, so it tries to create it and must accept that it exists.
    kafka.create_topic(&topic, 1).unwrap();
    let sent = events(std::slice::from_ref(&topic), 3, 10);

    publish_all(&mut sink, SinkKind::Kafka, sent.clone(), 10, 2)
        .await
        .unwrap();

    let received = receive(&kafka.brokers(), std::slice::from_ref(&topic), sent.len()).await;
    assert_delivered_in_order(&sent, &received);
}

#[tokio::test]
async fn kafka_connect_to_closed_port_fails_within_timeout() {
    let port = harness::free_port().unwrap();
    let mut config = config(format!("127.0.0.1:{port}"));
    config.message_timeout = Duration::from_secs(2);
    let started = Instant::now();

    let result = connect(&config).await;

    assert!(
        matches!(result, Err(SinkError::Connect { .. })),
        "{:?}",
        result.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// `cargo test --release -p outbox-relay --test it sink_kafka:: -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measures throughput; run on demand"]
async fn kafka_throughput() {
    let kafka = harness::Kafka::start().unwrap();
    let topic = unique("outbox.event.throughput");
    let mut sink = connect(&config(kafka.brokers())).await.unwrap();
    let sent = events(std::slice::from_ref(&topic), 100, 500);

    let elapsed = publish_all(&mut sink, SinkKind::Kafka, sent, 500, 8)
        .await
        .unwrap();

    println!(
        "kafka: 50000 events in {elapsed:?}: {:.0} events/s",
        50_000.0 / elapsed.as_secs_f64()
    );
}
