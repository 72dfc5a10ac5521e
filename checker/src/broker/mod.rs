//! Reading a destination: every message's payload, from the oldest the broker still holds. Each
//! reader is polled repeatedly and returns only what arrived since its last poll.

mod kafka;
mod rabbitmq;
mod redis;

use std::fmt;
use std::str::FromStr;

pub use self::kafka::KafkaReader;
pub use self::rabbitmq::{bind_queue, RabbitMqReader};
pub use self::redis::RedisReader;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Kafka,
    RabbitMq,
    Redis,
}

impl FromStr for Broker {
    type Err = String;

    fn from_str(s: &str) -> Result<Broker, String> {
        match s {
            "kafka" => Ok(Broker::Kafka),
            "rabbitmq" => Ok(Broker::RabbitMq),
            "redis" => Ok(Broker::Redis),
            other => Err(format!(
                "unknown broker {other:?}: expected kafka, rabbitmq or redis"
            )),
        }
    }
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Broker::Kafka => "kafka",
            Broker::RabbitMq => "rabbitmq",
            Broker::Redis => "redis",
        })
    }
}

/// A connected reader of one destination.
pub enum Reader {
    Kafka(KafkaReader),
    /// Boxed: an AMQP connection and channel are large next to the other readers.
    RabbitMq(Box<RabbitMqReader>),
    Redis(RedisReader),
}

impl Reader {
    /// Payloads that arrived since the last poll, in arrival order.
    pub async fn poll(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        match self {
            Reader::Kafka(reader) => reader.poll().await,
            Reader::RabbitMq(reader) => reader.poll().await,
            Reader::Redis(reader) => reader.poll().await,
        }
    }

    /// Lets go of the destination; RabbitMQ then puts back what was read, so a later run sees it.
    pub async fn close(self) {
        if let Reader::RabbitMq(reader) = self {
            reader.close().await;
        }
    }
}
