//! RabbitMQ: the relay publishes to a topic exchange with the destination as routing key, and
//! RabbitMQ keeps only what a bound queue receives. So a durable queue is bound to the routing key
//! before the run is written (`bind_queue`), and read afterwards with `basic.get`.
//!
//! Messages are read without being acknowledged and go back to the queue when the reader closes,
//! so a verification can be repeated.

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::Error;

pub struct RabbitMqReader {
    connection: Connection,
    channel: Channel,
    queue: String,
}

fn broker_error(e: impl std::fmt::Display) -> Error {
    Error::Broker {
        broker: "rabbitmq",
        reason: e.to_string(),
    }
}

async fn open(url: &str) -> Result<(Connection, Channel), Error> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(broker_error)?;
    let channel = connection.create_channel().await.map_err(broker_error)?;
    Ok((connection, channel))
}

/// Declares `exchange` as the relay does (durable topic) and a durable `queue` bound to it with
/// `routing_key`. Both declarations are idempotent.
pub async fn bind_queue(
    url: &str,
    exchange: &str,
    routing_key: &str,
    queue: &str,
) -> Result<(), Error> {
    let (connection, channel) = open(url).await?;
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(broker_error)?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(broker_error)?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker_error)?;
    let _ = connection.close(200, "bound".into()).await;
    Ok(())
}

impl RabbitMqReader {
    /// Opens `queue`, which must exist: one created now would have missed the run.
    pub async fn connect(url: &str, queue: &str) -> Result<RabbitMqReader, Error> {
        let (connection, channel) = open(url).await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::Broker {
                broker: "rabbitmq",
                reason: format!(
                    "queue {queue} cannot be read ({e}); bind it before writing the run: relay-check bind"
                ),
            })?;
        Ok(RabbitMqReader {
            connection,
            channel,
            queue: queue.to_owned(),
        })
    }

    pub async fn poll(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        let mut payloads = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(broker_error)?
        {
            payloads.push(message.delivery.data);
        }
        Ok(payloads)
    }

    /// Closing the connection returns every unacknowledged message to the queue.
    pub async fn close(self) {
        let _ = self.connection.close(200, "verified".into()).await;
    }
}
