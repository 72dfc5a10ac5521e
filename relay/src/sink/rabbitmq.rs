//! RabbitMQ sink: publishes each message to one topic exchange, with the destination as routing key,
//! its value as body and its headers as AMQP headers.
//!
//! All messages go through one channel in confirm mode. RabbitMQ keeps a channel's publishes in
//! order, and confirms arrive in publish order, so several batches may be in flight at once.
//! Messages are `mandatory`: one that no queue is bound for comes back as a return, which the sink
//! reports as unacceptable (to be dead-lettered) rather than letting the event vanish. Dead letters
//! go to the same exchange with the dead-letter destination as routing key, into a durable queue of
//! that name which the sink declares on first use, so they are kept even if nobody listens yet.
//!
//! `amqps://` connects over TLS (rustls with ring): the broker must present a certificate for the
//! URL's host that chains to the system roots or to `ca_file`, which lapin adds to them. A client
//! certificate is sent when the broker asks for one and `client_cert_file` is set.

mod bindings;
pub mod nacked;
pub use nacked::Nacked;
pub mod publish_check;

use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use super::{refused, Delivery, Refusal, Sink, SinkError};

use crate::encode::{HeaderValue, Message};
use crate::pg::redact_url;
use tlsfiles::{self as tls, TlsFileError, TlsFiles, TlsKeys, TlsMaterial};

const NAME: &str = "rabbitmq";

const TLS_KEYS: TlsKeys = TlsKeys {
    url: "rabbitmq.url",
    tls_scheme: "amqps://",
    ca_file: "rabbitmq.ca_file",
    client_cert_file: "rabbitmq.client_cert_file",
    client_key_file: "rabbitmq.client_key_file",
};

/// Bounds connecting, opening the channel and declaring the exchange, so an unresponsive broker
/// fails `connect` instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a message published alone is sent again after nacks before the session ends.
const ALONE_ATTEMPTS: u32 = 50;

/// The pause before sending a nacked message again: a full queue frees room at its consumer's pace.
const ALONE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// AMQP `delivery_mode` for messages the broker writes to disk.
const PERSISTENT: u8 = 2;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RabbitMqConfig {
    /// AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Durable topic exchange the relay declares and publishes to.
    pub exchange: String,
    /// PEM file of CA certificates an `amqps://` broker may chain to, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for brokers that verify clients; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`, unencrypted.
    pub client_key_file: Option<PathBuf>,
    /// The management HTTP API `check` asks about queue bindings; unset, port 15672 on the URL's host.
    pub management_url: Option<String>,
}

impl RabbitMqConfig {
    /// The TLS files, read and checked.
    pub fn tls(&self) -> Result<TlsMaterial, TlsFileError> {
        tls::load(
            &TLS_KEYS,
            &self.url,
            &TlsFiles {
                ca_file: self.ca_file.as_deref(),
                client_cert_file: self.client_cert_file.as_deref(),
                client_key_file: self.client_key_file.as_deref(),
            },
        )
    }

    /// lapin's TLS settings; it uses them only for `amqps://`.
    fn tls_config(&self) -> Result<OwnedTLSConfig, SinkError> {
        let material = self.tls().map_err(|e| SinkError::Misconfigured {
            sink: NAME,
            reason: e.to_string(),
        })?;
        Ok(material.lapin_config())
    }
}

pub struct RabbitMqSink {
    /// The channel also keeps its connection open.
    channel: Channel,
    exchange: ShortString,
    /// Dead-letter queues declared and bound by this connection.
    dead_letter_queues: Vec<String>,
    nacked: Nacked,
}

/// Opens one connection and one confirm-mode channel, and declares the exchange.
pub async fn connect(config: &RabbitMqConfig) -> Result<RabbitMqSink, SinkError> {
    connect_remembering(config, Nacked::default()).await
}

/// As [`connect`], publishing carefully while `nacked` holds an unconfirmed event.
pub async fn connect_remembering(
    config: &RabbitMqConfig,
    nacked: Nacked,
) -> Result<RabbitMqSink, SinkError> {
    let exchange = exchange_name(config)?;
    let setup = async {
        let connection = open(config).await?;
        let declare = async {
            let channel = connection.create_channel().await?;
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
            Ok::<_, lapin::Error>(channel)
        };
        declare
            .await
            .map_err(|e| connect_error(config, e.to_string()))
    };
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, setup)
        .await
        .map_err(|_| connect_error(config, format!("no answer within {CONNECT_TIMEOUT:?}")))??;
    Ok(RabbitMqSink {
        channel,
        exchange,
        dead_letter_queues: Vec::new(),
        nacked,
    })
}

/// Opens a connection with the configured credentials and TLS settings.
async fn open(config: &RabbitMqConfig) -> Result<Connection, SinkError> {
    let tls_config = config.tls_config()?;
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from("outbox-relay"));
    let runtime =
        lapin::runtime::default_runtime().map_err(|e| connect_error(config, e.to_string()))?;
    Connection::connect_with_config(&config.url, properties, tls_config, runtime)
        .await
        .map_err(|e| connect_error(config, e.to_string()))
}

fn exchange_name(config: &RabbitMqConfig) -> Result<ShortString, SinkError> {
    ShortString::try_new(config.exchange.as_str())
        .map_err(|e| connect_error(config, format!("exchange name: {e}")))
}

/// A failed handshake reads like any I/O error; say that TLS was in play and what it trusted.
fn connect_error(config: &RabbitMqConfig, reason: String) -> SinkError {
    let over = if config.url.starts_with(TLS_KEYS.tls_scheme) {
        format!(" ({})", tls::trust(config.ca_file.as_deref(), true))
    } else {
        String::new()
    };
    SinkError::Connect {
        sink: NAME,
        endpoint: redact_url(&config.url),
        reason: format!("{reason}{over}"),
    }
}

/// AMQP short strings hold at most 255 bytes; a longer id, type, header name or routing key is a
/// property of the event, so it is refused for good rather than failing the connection.
fn short_string(message: &Message, what: &str, value: &str) -> Result<ShortString, Refusal> {
    ShortString::try_new(value).map_err(|e| Refusal {
        event_id: message.id.clone(),
        destination: message.destination.clone(),
        reason: format!("{what}: {e}"),
    })
}

/// The longest prefix of `value` that fits a short string, cut between characters.
fn fitted(value: &str) -> ShortString {
    let mut end = value.len().min(SHORT_STRING_MAX);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&value[..end])
}

const SHORT_STRING_MAX: usize = 255;

/// The message's properties. A dead letter must always be accepted, so where an ordinary event is
/// refused for an over-long short string, a dead letter gets its id and type cut to fit (the `id`
/// and `type` headers, long strings, keep them whole) and leaves out header names that cannot fit,
/// listing them in `dlq_omitted_headers`.
fn properties(message: &Message) -> Result<BasicProperties, Refusal> {
    let dead_letter = message.dead_letter;
    let mut headers = FieldTable::default();
    let mut omitted = Vec::new();
    for (key, value) in &message.headers {
        let name = match short_string(message, "header name", key) {
            Ok(name) => name,
            Err(_) if dead_letter => {
                omitted.push(key.as_str());
                continue;
            }
            Err(refusal) => return Err(refusal),
        };
        let value = match value {
            HeaderValue::Text(text) => AMQPValue::LongString(LongString::from(text.as_str())),
            HeaderValue::Bytes(bytes) => AMQPValue::ByteArray(bytes.clone().into()),
        };
        headers.insert(name, value);
    }
    if !omitted.is_empty() {
        headers.insert(
            ShortString::from("dlq_omitted_headers"),
            AMQPValue::LongString(LongString::from(omitted.join("\n"))),
        );
    }
    let fit = |what: &str, value: &str| {
        if dead_letter {
            Ok(fitted(value))
        } else {
            short_string(message, what, value)
        }
    };
    let mut properties = BasicProperties::default()
        .with_message_id(fit("event id", &message.id)?)
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    if let Some(message_type) = &message.message_type {
        properties = properties.with_type(fit("event type", message_type)?);
    }
    if let Some(content_type) = &message.content_type {
        properties = properties.with_content_type(fit("content type", content_type)?);
    }
    Ok(properties)
}

/// A message handed to the channel, and what an error report needs (the payload is not kept).
struct Sent {
    confirm: PublisherConfirm,
    event_id: String,
    destination: String,
}

/// What the broker said of one message.
enum Outcome {
    Confirmed,
    /// Unroutable: refused for good, to be dead-lettered.
    Refused(Refusal),
    /// Nacked or lost: the session ends and the event is sent again.
    Failed(SinkError),
}

impl Sent {
    async fn outcome(self, nacked: &Nacked) -> Outcome {
        let Sent {
            confirm,
            event_id,
            destination,
        } = self;
        let reason = match confirm.await {
            Ok(Confirmation::Ack(None)) => {
                nacked.confirmed(&event_id);
                return Outcome::Confirmed;
            }
            Ok(Confirmation::Ack(Some(returned))) => {
                // With several publishes in flight, lapin may hand the return to another
                // message's confirm; the returned message itself says which event it is.
                let properties = &returned.delivery.properties;
                return Outcome::Refused(Refusal {
                    event_id: properties
                        .message_id()
                        .as_ref()
                        .map_or(event_id, ShortString::to_string),
                    destination: returned.delivery.routing_key.to_string(),
                    reason: format!(
                        "returned as unroutable ({} {}): no queue is bound for this routing key",
                        returned.reply_code, returned.reply_text
                    ),
                });
            }
            Ok(Confirmation::Nack(_)) => {
                nacked.nacked(&event_id);
                "the broker nacked the message".to_owned()
            }
            Ok(Confirmation::NotRequested) => "the channel is not in confirm mode".to_owned(),
            Err(e) => {
                return Outcome::Failed(SinkError::Broker {
                    sink: NAME,
                    reason: format!("lost confirm of event {event_id}: {e}"),
                })
            }
        };
        Outcome::Failed(SinkError::Rejected {
            sink: NAME,
            event_id,
            destination,
            reason,
        })
    }
}

impl RabbitMqSink {
    async fn declare_dead_letter_queue(&mut self, name: &str) -> Result<(), SinkError> {
        if self.dead_letter_queues.iter().any(|q| q == name) {
            return Ok(());
        }
        let broker = |e: lapin::Error| SinkError::Broker {
            sink: NAME,
            reason: format!("cannot declare dead-letter queue {name}: {e}"),
        };
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(name.into(), durable, FieldTable::default())
            .await
            .map_err(broker)?;
        self.channel
            .queue_bind(
                name.into(),
                self.exchange.clone(),
                name.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.dead_letter_queues.push(name.to_owned());
        Ok(())
    }

    /// Awaits the confirm of `sent`, the only message in flight, and sends it again after a
    /// nack: nothing later was published, so a retry cannot land behind a later message. Gives up
    /// after [`ALONE_ATTEMPTS`], so that the session ends and a stop signal is heard.
    async fn publish_alone(
        &mut self,
        message: &Message,
        mut sent: Sent,
    ) -> Result<Outcome, SinkError> {
        let mut attempt = 1;
        loop {
            let outcome = sent.outcome(&self.nacked).await;
            let nacked = matches!(&outcome, Outcome::Failed(SinkError::Rejected { .. }));
            if !nacked || attempt == ALONE_ATTEMPTS {
                return Ok(outcome);
            }
            tokio::time::sleep(ALONE_RETRY_PAUSE).await;
            attempt += 1;
            sent = match self.send(message).await? {
                Ok(sent) => sent,
                Err(refusal) => return Ok(Outcome::Refused(refusal)),
            };
        }
    }

    /// Hands one message to the channel; resolves once its frames are written.
    async fn send(&mut self, message: &Message) -> Result<Result<Sent, Refusal>, SinkError> {
        if message.dead_letter {
            self.declare_dead_letter_queue(&message.destination).await?;
        }
        let routing_key = match short_string(message, "routing key", &message.destination) {
            Ok(key) => key,
            Err(refusal) if message.dead_letter => {
                return Err(SinkError::Misconfigured {
                    sink: NAME,
                    reason: format!("dead_letter_destination: {}", refusal.reason),
                })
            }
            Err(refusal) => return Ok(Err(refusal)),
        };
        let properties = match properties(message) {
            Ok(properties) => properties,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                routing_key,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.value.as_deref().unwrap_or_default(),
                properties,
            )
            .await
            .map_err(|e| SinkError::Broker {
                sink: NAME,
                reason: format!("cannot publish event {}: {e}", message.id),
            })?;
        Ok(Ok(Sent {
            confirm,
            event_id: message.id.clone(),
            destination: message.destination.clone(),
        }))
    }
}

#[async_trait]
impl Sink for RabbitMqSink {
    /// Refusals for good (unroutable, over-long names) do not stop the batch: all are reported at
    /// once. While a nacked event is unconfirmed, each message's confirm is awaited before the
    /// next is published, and the batch stops at a nack.
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError> {
        let mut refusals = Vec::new();
        let mut pending: Vec<Sent> = Vec::with_capacity(batch.len());
        for message in &batch {
            let sent = match self.send(message).await? {
                Ok(sent) => sent,
                Err(refusal) => {
                    refusals.push(refusal);
                    continue;
                }
            };
            if !self.nacked.careful() {
                pending.push(sent);
                continue;
            }
            match self.publish_alone(message, sent).await? {
                Outcome::Confirmed => {}
                Outcome::Refused(refusal) => refusals.push(refusal),
                Outcome::Failed(error) => return Ok(Box::pin(std::future::ready(Err(error)))),
            }
        }
        let nacked = self.nacked.clone();
        Ok(Box::pin(async move {
            for sent in pending {
                match sent.outcome(&nacked).await {
                    Outcome::Confirmed => {}
                    Outcome::Refused(refusal) => refusals.push(refusal),
                    Outcome::Failed(error) => return Err(error),
                }
            }
            refused(NAME, refusals)
        }))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        RabbitMqConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "outbox".into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            management_url: None,
        }
    }
}
