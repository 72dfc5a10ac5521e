//! Encoding: turns a routed event into the message a sink transports (destination, key, value,
//! headers), once, in the pipeline, so that sinks only carry bytes and a new format is one encoder.
//!
//! A format decides names and bytes; a sink decides how its broker carries them: Kafka record
//! headers, AMQP properties and headers, Redis stream fields, a line on stdout. Some formats lay a
//! message out differently per broker (stdout prints one JSON document), so an encoder is built for
//! the configured sink.

pub mod marks;
mod native;
pub mod placement;

pub use native::Native;
pub use placement::{Place, Placement};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, SinkKind};
use crate::event::Routed;
use crate::sink::Refusal;

/// Names in the messages the relay writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatConfig {
    /// The header (Redis: field) carrying the event id, Debezium's `id`.
    pub id_header: String,
    /// Further columns and where they go: `column:header[:alias]`, `column:envelope[:alias]`,
    /// `column:partition` (Debezium's `table.fields.additional.placement`).
    pub additional_columns: Vec<String>,
    /// `raw`: the payload column's text as the value; `json_string`: that text as one JSON string,
    /// as Debezium's `JsonConverter` writes a payload it does not expand
    /// (`table.expand.json.payload = false`).
    pub payload_encoding: PayloadEncoding,
    /// A NULL payload sends a Kafka tombstone (a record with a null value; RabbitMQ: an empty
    /// body), Debezium's `route.tombstone.on.empty.payload`. Redis and stdout are unchanged.
    pub tombstone_on_null_payload: bool,
    /// Headers (Redis: fields) about the event's transaction, each named as its value here; given
    /// in logical replication only, where there is a transaction to describe.
    pub metadata_headers: Vec<Metadata>,
}

/// What a metadata header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metadata {
    /// The transaction's commit LSN, as PostgreSQL prints it (`16/B374D848`).
    CommitLsn,
    /// The transaction's id (xid), in decimal.
    TransactionId,
    /// When the transaction committed, RFC 3339 in UTC with microseconds.
    CommitTime,
    /// The event's index among its transaction's events, from 0.
    TransactionIndex,
}

impl Metadata {
    pub fn name(self) -> &'static str {
        match self {
            Metadata::CommitLsn => "commit_lsn",
            Metadata::TransactionId => "transaction_id",
            Metadata::CommitTime => "commit_time",
            Metadata::TransactionIndex => "transaction_index",
        }
    }

    /// Its value for `routed`, when it has one.
    pub fn value(self, routed: &Routed) -> Option<String> {
        let event = &routed.event;
        let lsn = event.origin.lsn()?;
        Some(match self {
            Metadata::CommitLsn => lsn.to_string(),
            Metadata::TransactionId => event.transaction_id?.to_string(),
            Metadata::CommitTime => chrono::DateTime::<chrono::Utc>::from(event.committed_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Metadata::TransactionIndex => routed.index()?.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEncoding {
    #[default]
    Raw,
    JsonString,
}

impl FormatConfig {
    pub fn placements(&self) -> Result<Vec<Placement>, ConfigError> {
        Placement::parse_all(&self.additional_columns).map_err(|e| ConfigError::Invalid {
            key: "format.additional_columns",
            reason: e.to_string(),
        })
    }
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig {
            id_header: "id".into(),
            additional_columns: Vec::new(),
            payload_encoding: PayloadEncoding::Raw,
            tombstone_on_null_payload: false,
            metadata_headers: Vec::new(),
        }
    }
}

/// One outbound message, as the sink hands it to its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Kafka topic, RabbitMQ routing key, Redis stream key.
    pub destination: String,
    /// Kafka's record key (picks the partition); `None` sends a record without a key.
    pub key: Option<Vec<u8>>,
    /// The body; `None` is a Kafka tombstone.
    pub value: Option<Vec<u8>>,
    /// The Kafka partition, when the format chooses it; else the partitioner picks it by key.
    pub partition: Option<i32>,
    /// In order: Kafka record headers, AMQP headers, Redis stream fields.
    pub headers: Vec<(String, HeaderValue)>,
    /// The event's id: RabbitMQ's `message_id`, and how error reports name the message.
    pub id: String,
    /// RabbitMQ's `type` property.
    pub message_type: Option<String>,
    /// RabbitMQ's `content_type` property.
    pub content_type: Option<String>,
    /// A dead letter: brokers must take it even where they would refuse the event (RabbitMQ cuts
    /// over-long names to fit), and it goes to a destination the sink may have to declare.
    pub dead_letter: bool,
}

/// A header's value: text for what the relay and the row's `headers` say, bytes for binary
/// columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl HeaderValue {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Text(text) => text.as_bytes(),
            HeaderValue::Bytes(bytes) => bytes,
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(text: &str) -> HeaderValue {
        HeaderValue::Text(text.to_owned())
    }
}

impl From<String> for HeaderValue {
    fn from(text: String) -> HeaderValue {
        HeaderValue::Text(text)
    }
}

impl Message {
    /// A header by name, for tests and log lines.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// A message format.
pub trait Encoder: Send + Sync {
    /// The message for `routed`, a dead letter included (its marks are on `routed`): a dead letter
    /// is encoded again for the dead-letter destination each time it is sent.
    ///
    /// An event the format cannot express (a partition column that holds no partition number) is
    /// refused for good, and so dead-lettered like one the broker refused. A dead letter must
    /// always encode.
    fn encode(&self, routed: Routed) -> Result<Message, Refusal>;
}

/// The encoder the configuration selects, laid out for its sink.
pub fn from_config(config: &Config) -> Result<Box<dyn Encoder>, ConfigError> {
    let native = Native::configured(
        config.sink,
        &config.routing,
        &config.format,
        config.format.placements()?,
    );
    Ok(Box::new(
        native.with_tombstones(
            config
                .format
                .tombstone_on_null_payload
                .then(|| config.outbox.columns.payload.clone()),
        ),
    ))
}

/// How a sink carries a message, which some formats lay out differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Value plus named headers (Kafka record headers, AMQP headers).
    Headers,
    /// One flat list of fields (Redis Streams); the value goes in as field `payload`.
    Fields,
    /// One self-describing document per message (stdout's JSON lines).
    Document,
}

impl Carrier {
    pub fn of(sink: SinkKind) -> Carrier {
        match sink {
            SinkKind::Kafka | SinkKind::Rabbitmq => Carrier::Headers,
            SinkKind::Redis => Carrier::Fields,
            SinkKind::Stdout => Carrier::Document,
        }
    }
}

/// The name of the field a [`Carrier::Fields`] sink stores the value under.
pub const VALUE_FIELD: &str = "payload";
