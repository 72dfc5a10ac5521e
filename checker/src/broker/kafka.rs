//! Kafka: every partition of the topic, assigned directly (no consumer group, nothing committed)
//! from the beginning. Order per aggregate holds within a partition, and the relay keys messages
//! by aggregate, so reading partitions side by side keeps each aggregate's order.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::Error;

/// A poll returns once no message came for this long.
const IDLE: Duration = Duration::from_millis(500);

pub struct KafkaReader {
    brokers: String,
    topic: String,
    /// Assigned once the topic exists; the relay creates it on first use.
    consumer: Option<StreamConsumer>,
}

fn broker_error(e: impl std::fmt::Display) -> Error {
    Error::Broker {
        broker: "kafka",
        reason: e.to_string(),
    }
}

impl KafkaReader {
    pub fn new(brokers: &str, topic: &str) -> KafkaReader {
        KafkaReader {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            consumer: None,
        }
    }

    /// A consumer assigned every partition from the beginning, or `None` while the topic has none.
    fn assign(&self) -> Result<Option<StreamConsumer>, Error> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("relay-check-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(broker_error)?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(broker_error)?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Ok(None);
        }
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            assignment
                .add_partition_offset(&self.topic, partition.id(), Offset::Beginning)
                .map_err(broker_error)?;
        }
        consumer.assign(&assignment).map_err(broker_error)?;
        Ok(Some(consumer))
    }

    pub async fn poll(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        if self.consumer.is_none() {
            self.consumer = self.assign()?;
        }
        let Some(consumer) = &self.consumer else {
            return Ok(Vec::new());
        };
        let mut payloads = Vec::new();
        while let Ok(message) = tokio::time::timeout(IDLE, consumer.recv()).await {
            let message = message.map_err(broker_error)?;
            payloads.push(message.payload().unwrap_or_default().to_vec());
        }
        Ok(payloads)
    }
}
