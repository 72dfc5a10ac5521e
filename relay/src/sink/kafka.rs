//! Kafka sink: publishes each message to the topic named by its destination, with its key, value
//! and headers.
//!
//! Order per aggregate holds because the key picks one partition and the producer is idempotent: the
//! broker accepts a partition's batches only in sequence-number order, so librdkafka's retries and
//! its several in-flight requests per connection can neither reorder nor duplicate messages. That is
//! why batches handed to [`KafkaSink::publish`] may overlap freely.

mod broker_errors;
mod known_topics;
mod partitioner;
pub mod publish_check;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use super::{refused, Delivery, Refusal, Sink, SinkError};
use crate::encode::Message;
use broker_errors::BrokerErrors;
use known_topics::KnownTopics;

const NAME: &str = "kafka";

/// How long to wait before offering a message again when librdkafka's local queue is full; the
/// queue drains as the broker acknowledges earlier messages.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// How often [`connect`] asks for metadata again, and looks at why the brokers do not answer.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Partitions of topics the relay creates.
    pub topic_partitions: i32,
    /// Replication factor of topics the relay creates.
    pub replication_factor: i32,
    /// How long librdkafka keeps retrying a message before failing its delivery; also bounds the
    /// broker check in [`connect`] and topic creation.
    #[serde(with = "humantime_serde")]
    pub message_timeout: Duration,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.*`), applied last so they
    /// override the relay's defaults.
    pub properties: BTreeMap<String, String>,
    /// Properties whose values are secrets kept in files (e.g. `sasl.password`), read at start.
    pub property_files: BTreeMap<String, std::path::PathBuf>,
}

pub struct KafkaSink {
    producer: FutureProducer<BrokerErrors>,
    admin: AdminClient<BrokerErrors>,
    admin_options: AdminOptions,
    topic_partitions: i32,
    replication_factor: i32,
    /// Topics known to exist: those listed by the broker at connect time and those created since.
    known_topics: KnownTopics,
}

/// Creates an idempotent producer and checks that the brokers answer within `message_timeout`, giving
/// up at once on a TLS or SASL failure.
pub async fn connect(config: &KafkaConfig) -> Result<KafkaSink, SinkError> {
    let connect_error = |reason: String| SinkError::Connect {
        sink: NAME,
        endpoint: config.brokers.clone(),
        reason,
    };

    let mut client_config = ClientConfig::new();
    client_config
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "outbox-relay")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // One request in flight: idempotence would allow 5, but librdkafka 2.12 then spins its
        // broker thread (a core per relay here) and sends no faster; measured in the throughput
        // bench, CPU fell from ~9 s to ~1.5 s per 100k events and throughput rose. Each request
        // still carries many messages. Override through `properties` if a broker is far away.
        .set("max.in.flight.requests.per.connection", "1")
        // A few milliseconds of lingering lets one produce request carry many messages.
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        // librdkafka's 1 MB default refuses ordinary 1 MiB payloads locally; the broker's own limit
        // (message.max.bytes / max.message.bytes) still applies.
        .set("message.max.bytes", "16777216")
        // Not snappy: Tansu's sqlite storage cannot serve snappy batches back to consumers.
        .set("compression.type", "lz4")
        .set("partitioner", partitioner::PARTITIONER)
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().to_string(),
        );
    for (key, value) in &config.properties {
        client_config.set(key, value);
    }

    let misconfigured = |e: KafkaError| SinkError::Misconfigured {
        sink: NAME,
        reason: format!("{e} (check kafka.properties)"),
    };
    let errors = BrokerErrors::default();
    let producer: FutureProducer<BrokerErrors> = client_config
        .create_with_context(errors.clone())
        .map_err(misconfigured)?;
    let admin: AdminClient<BrokerErrors> = client_config
        .create_with_context(errors.clone())
        .map_err(misconfigured)?;

    // librdkafka connects lazily, so ask for metadata to learn now whether the brokers answer.
    let timeout = config.message_timeout;
    let deadline = Instant::now() + timeout;
    let metadata = loop {
        let attempt = Instant::now();
        let probe = producer.clone();
        let answer = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::client(&probe).fetch_metadata(None, PROBE_INTERVAL)
        })
        .await
        .map_err(|e| connect_error(format!("metadata task failed: {e}")))?;
        let error = match answer {
            Ok(metadata) => break metadata,
            Err(error) => error,
        };
        let latest = errors.latest();
        if let Some(settings) = latest.as_ref().filter(|e| e.is_settings_error()) {
            return Err(connect_error(settings.to_string()));
        }
        if Instant::now() >= deadline {
            let why = latest.map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(connect_error(format!(
                "no metadata within {timeout:?}: {error}{why}"
            )));
        }
        // A request can fail at once (no broker up yet): do not spin.
        tokio::time::sleep_until((attempt + PROBE_INTERVAL).into()).await;
    };
    errors.connected();
    let known_topics = KnownTopics::new(
        metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| topic.name().to_owned()),
    );

    Ok(KafkaSink {
        producer,
        admin,
        admin_options: AdminOptions::new()
            .request_timeout(Some(config.message_timeout))
            .operation_timeout(Some(config.message_timeout)),
        topic_partitions: config.topic_partitions,
        replication_factor: config.replication_factor,
        known_topics,
    })
}

impl KafkaSink {
    /// Creates the batch's topics that are not known yet. Brokers often have topic auto-creation
    /// disabled (Tansu has none), and a produce to a missing topic would only fail at timeout.
    async fn ensure_topics(&mut self, batch: &[Message]) -> Result<(), SinkError> {
        let missing: BTreeSet<&str> = batch
            .iter()
            .map(|message| message.destination.as_str())
            .filter(|topic| !self.known_topics.contains(topic))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let new_topics: Vec<NewTopic> = missing
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    self.topic_partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let results = self
            .admin
            .create_topics(&new_topics, &self.admin_options)
            .await
            .map_err(|e| SinkError::Broker {
                sink: NAME,
                reason: format!("cannot create topics {missing:?}: {e}"),
            })?;
        let mut refusals = Vec::new();
        for result in results {
            match result {
                Ok(topic) | Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    self.known_topics.insert(topic);
                }
                // An invalid name refuses every event bound for the topic, to be dead-lettered.
                Err((topic, RDKafkaErrorCode::InvalidTopic)) => {
                    let reason = format!("cannot create topic: {}", RDKafkaErrorCode::InvalidTopic);
                    refusals.extend(batch.iter().filter(|r| r.destination == topic).map(|r| {
                        Refusal {
                            event_id: r.id.clone(),
                            destination: topic.clone(),
                            reason: reason.clone(),
                        }
                    }));
                }
                // Name the first event bound for the topic, for the log line.
                Err((topic, code)) => {
                    let event_id = batch
                        .iter()
                        .find(|message| message.destination == topic)
                        .map(|message| message.id.clone())
                        .unwrap_or_default();
                    return Err(SinkError::Rejected {
                        sink: NAME,
                        event_id,
                        reason: format!("cannot create topic: {code}"),
                        destination: topic,
                    });
                }
            }
        }
        refused(NAME, refusals)
    }

    /// Hands one message to librdkafka's queue, waiting while the queue is full.
    async fn enqueue(&self, message: &Message) -> Result<DeliveryFuture, SinkError> {
        let headers = message.headers.iter().fold(
            OwnedHeaders::new_with_capacity(message.headers.len()),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            },
        );
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&message.destination).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        if let Some(value) = &message.value {
            record = record.payload(value);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((error, _)) => {
                    return Err(failure(
                        &error,
                        message.id.clone(),
                        message.destination.clone(),
                    ))
                }
            }
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError> {
        self.ensure_topics(&batch).await?;
        // Refusals for good do not stop the batch: every one of them is reported at once.
        let mut refusals = Vec::new();
        // Keep only what an error report needs; librdkafka holds its own copy of each message.
        let mut pending: Vec<(DeliveryFuture, String, String)> = Vec::with_capacity(batch.len());
        for message in batch {
            match self.enqueue(&message).await {
                Ok(delivery) => pending.push((delivery, message.id, message.destination)),
                Err(SinkError::Unacceptable {
                    refusals: mut r, ..
                }) => refusals.append(&mut r),
                Err(e) => return Err(e),
            }
        }
        Ok(Box::pin(async move {
            for (delivery, event_id, destination) in pending {
                let reason = match delivery.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((error, _message))) => match failure(&error, event_id, destination) {
                        SinkError::Unacceptable {
                            refusals: mut r, ..
                        } => {
                            refusals.append(&mut r);
                            continue;
                        }
                        other => return Err(other),
                    },
                    Err(_canceled) => "delivery cancelled: the producer was dropped".to_owned(),
                };
                return Err(SinkError::Rejected {
                    sink: NAME,
                    event_id,
                    destination,
                    reason,
                });
            }
            refused(NAME, refusals)
        }))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_partitions: 3,
            replication_factor: 1,
            message_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
            property_files: BTreeMap::new(),
        }
    }
}

/// Errors that sending the same message again cannot cure.
fn is_unacceptable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::BadMessage
            // A partition number the topic does not have (from a partition column).
            | RDKafkaErrorCode::UnknownPartition
    )
}

fn failure(error: &KafkaError, event_id: String, destination: String) -> SinkError {
    let reason = error.to_string();
    match error.rdkafka_error_code() {
        Some(code) if is_unacceptable(code) => {
            SinkError::unacceptable(NAME, event_id, destination, reason)
        }
        _ => SinkError::Rejected {
            sink: NAME,
            event_id,
            destination,
            reason,
        },
    }
}
