//! Where and how to consume: the broker, the destination the relay publishes to, the dead-letter
//! destination, and each broker's connection and consumer-group settings. Serde names are the
//! configuration keys under `messaging.` that TLS errors name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tlsfiles::{TlsFileError, TlsFiles, TlsKeys, TlsMaterial};

/// Which broker to consume from, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    /// The seed's `app.messaging.mode` (`MESSAGING_MODE`).
    pub mode: Mode,
    /// Where the relay publishes order events: Kafka topic, RabbitMQ routing key or Redis stream.
    pub destination: String,
    /// Where events that cannot be invoiced go, in the same broker and naming scheme.
    pub dead_letter_destination: String,
    pub kafka: KafkaSettings,
    pub rabbitmq: RabbitMqSettings,
    pub redis: RedisSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Kafka,
    Rabbitmq,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `group.id`: instances sharing it split the topic's partitions.
    pub group_id: String,
    /// Partitions of the topics the service creates when they do not exist yet.
    pub topic_partitions: i32,
    /// Replication factor of the topics the service creates.
    pub replication_factor: i32,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.*`), applied last.
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`, or `amqps://…` for TLS.
    pub url: String,
    /// PEM file of CA certificates an `amqps://` broker may chain to, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for a broker that asks for one; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`, unencrypted.
    pub client_key_file: Option<PathBuf>,
    /// The relay's durable topic exchange; dead letters are published to it too.
    pub exchange: String,
    /// The service's durable queue, bound to the exchange with the destination as routing key.
    pub queue: String,
    /// Unacknowledged messages the broker may hand over at once (`basic.qos`).
    pub prefetch: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// e.g. `redis://127.0.0.1:6379/0`, or `rediss://…` for TLS.
    pub url: String,
    /// PEM file of the CA certificates a `rediss://` server must chain to, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for a server that asks for one; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`, unencrypted.
    pub client_key_file: Option<PathBuf>,
    /// Consumer group; created at the start of the stream if missing.
    pub group: String,
    /// This instance's name in the group; must differ between instances running at once.
    pub consumer: String,
    /// Entries fetched per `XREADGROUP` or `XAUTOCLAIM`.
    pub batch_size: usize,
    /// How long an entry must sit unacknowledged with a consumer before this one claims it, e.g.
    /// because its consumer crashed; also how often the service looks for such entries.
    #[serde(with = "humantime_serde")]
    pub reclaim_idle: Duration,
}

impl Messaging {
    /// Local brokers on their default ports, consuming `destination` as `name` (Kafka group, RabbitMQ
    /// queue, Redis group and consumer), dead letters to `<destination>.dlq`.
    pub fn local(mode: Mode, destination: &str, name: &str) -> Messaging {
        Messaging {
            mode,
            destination: destination.to_owned(),
            dead_letter_destination: format!("{destination}.dlq"),
            kafka: KafkaSettings {
                brokers: "127.0.0.1:9092".to_owned(),
                group_id: name.to_owned(),
                topic_partitions: 3,
                replication_factor: 1,
                properties: BTreeMap::new(),
            },
            rabbitmq: RabbitMqSettings {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
                ca_file: None,
                client_cert_file: None,
                client_key_file: None,
                exchange: "outbox".to_owned(),
                queue: name.to_owned(),
                prefetch: 32,
            },
            redis: RedisSettings {
                url: "redis://127.0.0.1:6379".to_owned(),
                ca_file: None,
                client_cert_file: None,
                client_key_file: None,
                group: name.to_owned(),
                consumer: name.to_owned(),
                batch_size: 32,
                reclaim_idle: Duration::from_secs(60),
            },
        }
    }
}

impl RabbitMqSettings {
    /// The TLS files, read and checked; each connect reads them again.
    pub fn tls(&self) -> Result<TlsMaterial, TlsFileError> {
        tlsfiles::load(
            &TlsKeys {
                url: "messaging.rabbitmq.url",
                tls_scheme: "amqps://",
                ca_file: "messaging.rabbitmq.ca_file",
                client_cert_file: "messaging.rabbitmq.client_cert_file",
                client_key_file: "messaging.rabbitmq.client_key_file",
            },
            &self.url,
            &TlsFiles {
                ca_file: self.ca_file.as_deref(),
                client_cert_file: self.client_cert_file.as_deref(),
                client_key_file: self.client_key_file.as_deref(),
            },
        )
    }
}

impl RedisSettings {
    /// The TLS files, read and checked; each connect reads them again.
    pub fn tls(&self) -> Result<TlsMaterial, TlsFileError> {
        tlsfiles::load(
            &TlsKeys {
                url: "messaging.redis.url",
                tls_scheme: "rediss://",
                ca_file: "messaging.redis.ca_file",
                client_cert_file: "messaging.redis.client_cert_file",
                client_key_file: "messaging.redis.client_key_file",
            },
            &self.url,
            &TlsFiles {
                ca_file: self.ca_file.as_deref(),
                client_cert_file: self.client_cert_file.as_deref(),
                client_key_file: self.client_key_file.as_deref(),
            },
        )
    }
}
