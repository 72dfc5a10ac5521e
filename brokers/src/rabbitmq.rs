//! RabbitMQ consumer: a durable queue bound to the relay's topic exchange with the destination as
//! routing key, manual acknowledgements and a prefetch limit. Unacknowledged messages go back to the
//! queue when the connection dies, so a crash between the database commit and the ack redelivers.
//!
//! Dead letters are published to the same exchange with the dead-letter destination as routing key,
//! where a durable queue of that name keeps them; publisher confirms make sure the broker has taken a
//! dead letter before the original is acknowledged.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use pgconn::redact_url;

use crate::Messaging;
use crate::{Consumer, ConsumerError, Envelope, Received};
use crate::{Rejection, DETAIL_HEADER, REASON_HEADER};

const BROKER: &str = "rabbitmq";

/// Bounds connecting and declaring, so an unresponsive broker fails `connect` instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RabbitMqConsumer {
    /// Also keeps the connection open.
    channel: Channel,
    consumer: lapin::Consumer,
    exchange: ShortString,
    dead_letter_key: ShortString,
}

/// Declares the exchange (as the relay does), the service's queue and the dead-letter queue, binds
/// them, and starts consuming.
pub async fn connect(messaging: &Messaging) -> Result<RabbitMqConsumer, ConsumerError> {
    let settings = &messaging.rabbitmq;
    let connect_error = |reason: String| ConsumerError::Connect {
        broker: BROKER,
        endpoint: redact_url(&settings.url),
        reason,
    };
    let name = |what: &str, value: &str| {
        ShortString::try_new(value).map_err(|e| connect_error(format!("{what}: {e}")))
    };
    // lapin uses these only for `amqps://`, which it opens with rustls, trusting the system roots
    // and the CA file.
    let tls = settings
        .tls()
        .map_err(|e| connect_error(e.to_string()))?
        .lapin_config();
    let exchange = name("exchange", &settings.exchange)?;
    let queue = name("queue", &settings.queue)?;
    let routing_key = name("destination", &messaging.destination)?;
    let dead_letter_key = name(
        "dead-letter destination",
        &messaging.dead_letter_destination,
    )?;

    let setup = async {
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from("invoice-service"));
        let connection = Connection::connect_with_config(
            &settings.url,
            properties,
            tls,
            lapin::runtime::default_runtime()?,
        )
        .await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                exchange.clone(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for (queue, key) in [(&queue, &routing_key), (&dead_letter_key, &dead_letter_key)] {
            channel
                .queue_declare(
                    queue.clone(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_bind(
                    queue.clone(),
                    exchange.clone(),
                    key.clone(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let consumer = channel
            .basic_consume(
                queue.clone(),
                ShortString::from("invoice-service"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((channel, consumer))
    };
    let (channel, consumer) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
        .await
        .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| connect_error(e.to_string()))?;
    Ok(RabbitMqConsumer {
        channel,
        consumer,
        exchange,
        dead_letter_key,
    })
}

/// The relay sends every header as a long string; anything else is kept in its debug form rather
/// than dropped, so a dead letter still shows it.
fn text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(text) => text.to_string(),
        AMQPValue::ShortString(text) => text.to_string(),
        other => format!("{other:?}"),
    }
}

fn envelope(delivery: &Delivery) -> Result<Envelope, Rejection> {
    let properties = &delivery.properties;
    let mut headers: BTreeMap<String, String> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.to_string(), text(value)))
                .collect()
        })
        .unwrap_or_default();
    // The relay also sets the event id and type as AMQP properties.
    if let Some(id) = properties.message_id() {
        headers.entry("id".to_owned()).or_insert(id.to_string());
    }
    if let Some(kind) = properties.kind() {
        headers.entry("type".to_owned()).or_insert(kind.to_string());
    }
    let payload = String::from_utf8(delivery.data.clone())
        .map_err(|e| Rejection::new("malformed-message", format!("payload is not UTF-8: {e}")))?;
    Ok(Envelope { headers, payload })
}

fn broker_error(reason: String) -> ConsumerError {
    ConsumerError::Broker {
        broker: BROKER,
        reason,
    }
}

#[async_trait]
impl Consumer for RabbitMqConsumer {
    type Message = Delivery;

    async fn receive(&mut self) -> Result<Received<Delivery>, ConsumerError> {
        match self.consumer.next().await {
            Some(Ok(delivery)) => Ok(Received {
                envelope: envelope(&delivery),
                message: delivery,
            }),
            Some(Err(e)) => Err(broker_error(format!("consuming failed: {e}"))),
            None => Err(broker_error("the broker cancelled the consumer".to_owned())),
        }
    }

    async fn ack(&mut self, delivery: Delivery) -> Result<(), ConsumerError> {
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| broker_error(format!("cannot ack: {e}")))
    }

    async fn dead_letter(
        &mut self,
        delivery: Delivery,
        rejection: &Rejection,
    ) -> Result<(), ConsumerError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from(REASON_HEADER),
            AMQPValue::LongString(LongString::from(rejection.code)),
        );
        headers.insert(
            ShortString::from(DETAIL_HEADER),
            AMQPValue::LongString(LongString::from(rejection.detail.as_str())),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let confirmation = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                self.dead_letter_key.clone(),
                // Returned rather than dropped if the dead-letter queue's binding is gone.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await
            .map_err(|e| broker_error(format!("cannot dead-letter: {e}")))?
            .await
            .map_err(|e| broker_error(format!("lost the dead letter's confirm: {e}")))?;
        match confirmation {
            Confirmation::Ack(None) => self.ack(delivery).await,
            other => Err(broker_error(format!(
                "the broker did not take the dead letter: {other:?}"
            ))),
        }
    }
}
