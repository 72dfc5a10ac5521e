//! Kafka consumer: a consumer group on the destination topic with automatic commits off; a message's
//! offset is committed only once it is invoiced (or dead-lettered), so a crash re-reads it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Consumer, ConsumerError, Envelope, Received};
use crate::{KafkaSettings, Messaging};
use crate::{Rejection, DETAIL_HEADER, REASON_HEADER};

const BROKER: &str = "kafka";

/// Bounds topic creation and each dead-letter delivery.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait after a consumer error before polling again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub struct KafkaConsumer {
    consumer: StreamConsumer,
    producer: FutureProducer,
    dead_letter_topic: String,
}

/// Creates the destination and dead-letter topics if missing, then joins the consumer group.
pub async fn connect(messaging: &Messaging) -> Result<KafkaConsumer, ConsumerError> {
    let settings = &messaging.kafka;
    let connect_error = |reason: String| ConsumerError::Connect {
        broker: BROKER,
        endpoint: settings.brokers.clone(),
        reason,
    };
    let client_config = |extra: &[(&str, &str)]| {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &settings.brokers);
        for (key, value) in extra {
            config.set(*key, *value);
        }
        for (key, value) in &settings.properties {
            config.set(key, value);
        }
        config
    };

    let admin: AdminClient<DefaultClientContext> = client_config(&[])
        .create()
        .map_err(|e| connect_error(e.to_string()))?;
    create_topics(
        &admin,
        settings,
        &[&messaging.destination, &messaging.dead_letter_destination],
    )
    .await
    .map_err(connect_error)?;

    let consumer: StreamConsumer = client_config(&[
        ("group.id", &settings.group_id),
        ("enable.auto.commit", "false"),
        // A new group starts at the beginning, so events published before the service first ran
        // are invoiced too.
        ("auto.offset.reset", "earliest"),
    ])
    .create()
    .map_err(|e| connect_error(e.to_string()))?;
    consumer
        .subscribe(&[&messaging.destination])
        .map_err(|e| connect_error(e.to_string()))?;

    let producer: FutureProducer = client_config(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("message.timeout.ms", &TIMEOUT.as_millis().to_string()),
    ])
    .create()
    .map_err(|e| connect_error(e.to_string()))?;

    Ok(KafkaConsumer {
        consumer,
        producer,
        dead_letter_topic: messaging.dead_letter_destination.clone(),
    })
}

/// Brokers often have topic auto-creation off (Tansu has none), and a subscription to a topic that
/// does not exist yet only notices it at the next metadata refresh, minutes later.
async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    settings: &KafkaSettings,
    names: &[&str],
) -> Result<(), String> {
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.topic_partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| format!("cannot create topics {names:?}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(())
}

fn headers(message: &OwnedMessage) -> BTreeMap<String, String> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| {
                    let value = header.value.unwrap_or_default();
                    (
                        header.key.to_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn envelope(message: &OwnedMessage) -> Result<Envelope, Rejection> {
    let payload = String::from_utf8(message.payload().unwrap_or_default().to_vec())
        .map_err(|e| Rejection::new("malformed-message", format!("payload is not UTF-8: {e}")))?;
    Ok(Envelope {
        headers: headers(message),
        payload,
    })
}

#[async_trait]
impl Consumer for KafkaConsumer {
    type Message = OwnedMessage;

    async fn receive(&mut self) -> Result<Received<OwnedMessage>, ConsumerError> {
        loop {
            match self.consumer.recv().await {
                Ok(message) => {
                    let message = message.detach();
                    return Ok(Received {
                        envelope: envelope(&message),
                        message,
                    });
                }
                // librdkafka reconnects and rejoins the group by itself; a new consumer would only
                // add a group rejoin.
                Err(error) => {
                    tracing::warn!(%error, "kafka consumer error; polling again");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }

    /// Commits asynchronously: a commit lost in a crash only means a redelivery, which the
    /// `processed_events` check turns into a no-op, and waiting for each commit would halve the rate.
    async fn ack(&mut self, message: OwnedMessage) -> Result<(), ConsumerError> {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .and_then(|()| self.consumer.commit(&offsets, CommitMode::Async))
            .map_err(|e| ConsumerError::Broker {
                broker: BROKER,
                reason: format!(
                    "cannot commit offset {} of {}/{}: {e}",
                    message.offset(),
                    message.topic(),
                    message.partition()
                ),
            })
    }

    async fn dead_letter(
        &mut self,
        message: OwnedMessage,
        rejection: &Rejection,
    ) -> Result<(), ConsumerError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let headers = headers
            .insert(Header {
                key: REASON_HEADER,
                value: Some(rejection.code),
            })
            .insert(Header {
                key: DETAIL_HEADER,
                value: Some(&rejection.detail),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letter_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(e, _)| ConsumerError::Broker {
                broker: BROKER,
                reason: format!("cannot dead-letter to {}: {e}", self.dead_letter_topic),
            })?;
        self.ack(message).await
    }
}
