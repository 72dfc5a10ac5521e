//! Self-tests of `harness::Kafka`: what is produced can be consumed, also after the broker was stopped
//! or killed and started again.

use std::time::{Duration, Instant};

use harness::Kafka;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

async fn produce(kafka: &Kafka, key: &str) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let headers = OwnedHeaders::new().insert(Header {
        key: "event-id",
        value: Some(key),
    });
    let record = FutureRecord::to("events")
        .key(key)
        .payload("payload")
        .headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// The keys of all messages in partition 0, read from the beginning.
async fn consume(kafka: &Kafka, count: usize) -> anyhow::Result<Vec<String>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("group.id", "harness-self-test")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset("events", 0, Offset::Beginning)?;
    consumer.assign(&partitions)?;
    let mut keys = Vec::new();
    while keys.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        let key = String::from_utf8(message.key().unwrap_or_default().to_vec())?;
        let header = message.headers().expect("headers").get(0);
        assert_eq!(header.value, Some(key.as_bytes()));
        keys.push(key);
    }
    Ok(keys)
}

#[tokio::test]
async fn messages_survive_stop_and_kill_of_the_broker() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut kafka = Kafka::start()?;
    eprintln!("Kafka::start took {:?}", started.elapsed());
    kafka.create_topic("events", 1)?;
    produce(&kafka, "a").await?;
    assert_eq!(consume(&kafka, 1).await?, ["a"]);

    kafka.stop()?;
    let started = Instant::now();
    kafka.start_again()?;
    eprintln!("Kafka::start_again took {:?}", started.elapsed());
    produce(&kafka, "b").await?;
    assert_eq!(consume(&kafka, 2).await?, ["a", "b"]);

    kafka.kill()?;
    kafka.start_again()?;
    assert_eq!(consume(&kafka, 2).await?, ["a", "b"]);
    Ok(())
}
