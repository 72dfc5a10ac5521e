//! Sinks hand routed events to a broker and report when the broker has confirmed them.
//!
//! A sink keeps order within its one connection (Kafka's idempotent producer, one RabbitMQ channel with
//! publisher confirms, one Redis connection), so the pipeline can keep several batches in flight and
//! still acknowledge positions strictly in order.

pub mod kafka;
pub mod publish_check;
pub mod rabbitmq;
pub mod redis;
pub mod stdout;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::event::Routed;

/// Resolves once the broker has confirmed every message of one batch, or with the first failure.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

#[async_trait]
pub trait Sink: Send {
    /// Hands a batch to the broker without waiting for its confirmation.
    ///
    /// Batches handed over later must not overtake earlier ones for the same key.
    async fn publish(&mut self, batch: Vec<Routed>) -> Result<Delivery, SinkError>;

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}

/// Why a broker did not take a message. Every variant makes the pipeline restart from the last
/// acknowledged position, so nothing after a failed message is confirmed before it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to {sink} at {endpoint}: {reason}")]
    Connect {
        sink: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("{sink} did not confirm event {event_id} for {destination}: {reason}")]
    Rejected {
        sink: &'static str,
        event_id: String,
        destination: String,
        reason: String,
    },
    #[error("{sink} failed: {reason}")]
    Broker { sink: &'static str, reason: String },
    /// The sink's own settings are invalid (e.g. an unknown librdkafka property): retrying cannot help.
    #[error("{sink} settings are invalid: {reason}")]
    Misconfigured { sink: &'static str, reason: String },
    /// The broker refuses this one message for good (too large, unroutable, wrong key type, invalid
    /// name): the pipeline dead-letters it instead of retrying forever.
    #[error("{sink} refuses event {event_id} for {destination} for good: {reason}")]
    Unacceptable {
        sink: &'static str,
        event_id: String,
        destination: String,
        reason: String,
    },
}

/// Connects the sink the configuration selects.
pub async fn connect(config: &crate::config::Config) -> Result<Box<dyn Sink>, SinkError> {
    use crate::config::SinkKind;
    Ok(match config.sink {
        SinkKind::Kafka => Box::new(kafka::connect(&config.kafka).await?),
        SinkKind::Rabbitmq => Box::new(rabbitmq::connect(&config.rabbitmq).await?),
        SinkKind::Redis => Box::new(redis::connect(&config.redis).await?),
        SinkKind::Stdout => Box::new(stdout::StdoutSink::new()),
    })
}
