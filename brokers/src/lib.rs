//! Consuming what the outbox relay publishes, behind one small trait: receive a message, then either
//! acknowledge it or dead-letter it. One implementation per broker (Kafka, RabbitMQ, Redis Streams),
//! configured by [`Messaging`]; each service's worker drives whichever is configured.
//!
//! Every implementation turns the relay's wire format into the same [`Envelope`]: the message headers
//! (`id`, `type`, `aggregatetype`, `aggregateid` and the outbox row's own headers such as
//! `event_version` and `correlation_id`) and the payload text.

pub mod kafka;
pub mod rabbitmq;
pub mod redis;
mod rejection;
mod settings;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use rejection::{Rejection, DETAIL_HEADER, REASON_HEADER};
pub use settings::{KafkaSettings, Messaging, Mode, RabbitMqSettings, RedisSettings};

/// A message as received, in broker-neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub headers: BTreeMap<String, String>,
    pub payload: String,
}

impl Envelope {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One delivery: its envelope, or why the message is not even a readable envelope (e.g. a payload
/// that is not UTF-8), and the broker's handle needed to acknowledge or dead-letter it.
pub struct Received<M> {
    pub envelope: Result<Envelope, Rejection>,
    pub message: M,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot connect to {broker} at {endpoint}: {reason}")]
    Connect {
        broker: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("{broker}: {reason}")]
    Broker {
        broker: &'static str,
        reason: String,
    },
}

/// A connected consumer. On any error the caller drops it and connects anew; messages neither
/// acknowledged nor dead-lettered by then are delivered again.
#[async_trait]
pub trait Consumer: Send {
    /// What [`Consumer::ack`] and [`Consumer::dead_letter`] need of a received message.
    type Message: Send;

    /// Waits for the next message.
    async fn receive(&mut self) -> Result<Received<Self::Message>, ConsumerError>;

    /// Tells the broker the message is done with; called only after its database commit.
    async fn ack(&mut self, message: Self::Message) -> Result<(), ConsumerError>;

    /// Publishes the message unchanged to the dead-letter destination with `rejection` attached,
    /// waits for the broker to accept it, then acknowledges the original.
    async fn dead_letter(
        &mut self,
        message: Self::Message,
        rejection: &Rejection,
    ) -> Result<(), ConsumerError>;
}
