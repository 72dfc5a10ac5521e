//! Sinks hand encoded messages to a broker and report when the broker has confirmed them.
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

use crate::encode::Message;

/// Resolves once the broker has confirmed every message of one batch, or with the first failure.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

#[async_trait]
pub trait Sink: Send {
    /// Hands a batch to the broker without waiting for its confirmation.
    ///
    /// Batches handed over later must not overtake earlier ones for the same key.
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError>;

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
    /// The broker refuses these messages for good (too large, unroutable, wrong key type, invalid
    /// name): the pipeline dead-letters them instead of retrying forever. A sink goes on past such a
    /// refusal and reports every one of its batch, so that one session learns them all.
    #[error("{sink} refuses {} for good: {}", count(.refusals), list(.refusals))]
    Unacceptable {
        sink: &'static str,
        refusals: Vec<Refusal>,
    },
}

/// One message a broker refuses for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} for {destination}: {reason}")]
pub struct Refusal {
    pub event_id: String,
    pub destination: String,
    pub reason: String,
}

impl SinkError {
    /// One refused message.
    pub fn unacceptable(
        sink: &'static str,
        event_id: String,
        destination: String,
        reason: String,
    ) -> SinkError {
        SinkError::Unacceptable {
            sink,
            refusals: vec![Refusal {
                event_id,
                destination,
                reason,
            }],
        }
    }
}

/// The outcome of a batch whose other messages were confirmed: the refusals, if any.
pub fn refused(sink: &'static str, refusals: Vec<Refusal>) -> Result<(), SinkError> {
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(SinkError::Unacceptable { sink, refusals })
    }
}

fn count(refusals: &[Refusal]) -> String {
    match refusals.len() {
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    }
}

/// The first few refusals: a batch may hold thousands, and a log line should stay readable.
fn list(refusals: &[Refusal]) -> String {
    const SHOWN: usize = 3;
    let mut text = refusals
        .iter()
        .take(SHOWN)
        .map(Refusal::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if refusals.len() > SHOWN {
        text.push_str(&format!("; and {} more", refusals.len() - SHOWN));
    }
    text
}

/// Connects the sink the configuration selects.
pub async fn connect(config: &crate::config::Config) -> Result<Box<dyn Sink>, SinkError> {
    connect_remembering(config, &rabbitmq::Nacked::default()).await
}

/// As [`connect`], for one of a relay's sessions: `nacked` carries what RabbitMQ refused in an
/// earlier session.
pub async fn connect_remembering(
    config: &crate::config::Config,
    nacked: &rabbitmq::Nacked,
) -> Result<Box<dyn Sink>, SinkError> {
    use crate::config::SinkKind;
    Ok(match config.sink {
        SinkKind::Kafka => Box::new(kafka::connect(&config.kafka).await?),
        SinkKind::Rabbitmq => {
            Box::new(rabbitmq::connect_remembering(&config.rabbitmq, nacked.clone()).await?)
        }
        SinkKind::Redis => Box::new(redis::connect(&config.redis).await?),
        SinkKind::Stdout => Box::new(stdout::StdoutSink::new()),
    })
}
