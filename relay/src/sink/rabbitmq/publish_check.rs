//! Whether the RabbitMQ user may publish to the exchange with the relay's routing keys, asked without
//! delivering: RabbitMQ checks write permission (and topic permission) when `basic.publish` arrives,
//! before a transaction buffers the message, so `tx.select`, `basic.publish`, `tx.rollback` routes
//! nothing while a refusal still closes the channel with ACCESS_REFUSED. When publishing is granted,
//! the management API tells whether a queue is bound for the routed keys ([`bindings`]): without one,
//! every event would be returned as unroutable and dead-lettered.

use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;

use lapin::options::BasicPublishOptions;
use lapin::protocol::AMQPError;
use lapin::types::ShortString;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, ErrorKind, Event};

use super::bindings::{self, Bindings};
use super::{RabbitMqConfig, NAME};
use crate::sink::publish_check::{list, Permission, Targets};
use crate::sink::SinkError;

const ACCESS_REFUSED: u16 = 403;
const NOT_FOUND: u16 = 404;

/// How long to wait for a channel's close reason once the channel is known to be closing.
const CLOSE_REASON_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(
    config: &RabbitMqConfig,
    targets: &Targets<'_>,
) -> Result<Permission, SinkError> {
    let exchange = super::exchange_name(config)?;
    let uri =
        AMQPUri::from_str(&config.url).map_err(|reason| super::connect_error(config, reason))?;
    let (user, vhost) = (&uri.authority.userinfo.username, &uri.vhost);
    let mut refusals: Vec<(String, AMQPError)> = Vec::new();
    for destination in targets.destinations {
        if let Some(refusal) = try_publish(config, &exchange, destination).await? {
            refusals.push((destination.clone(), refusal));
        }
    }
    let how = "tx.select, basic.publish, tx.rollback";
    let Some((_, first)) = refusals.first() else {
        let detail = format!(
            "user {user} may publish to exchange {exchange} with routing keys {} ({how})",
            list(targets.destinations)
        );
        return Ok(with_bindings(config, &uri, exchange.as_str(), targets, detail).await);
    };
    let refused: Vec<String> = refusals.iter().map(|(d, _)| d.clone()).collect();
    let detail = format!(
        "user {user} may not publish to exchange {exchange} with routing keys {}: {} ({how})",
        list(&refused),
        first.get_message()
    );
    let vhost = shell_quote(vhost);
    let fix = if first.get_id() == NOT_FOUND {
        format!("start the relay once (it declares exchange {exchange}), or check rabbitmq.exchange and the vhost in rabbitmq.url")
    } else if first.get_message().as_str().contains("topic") {
        let keys = targets.router.pattern(".*", escape_regex);
        format!(
            "rabbitmqctl set_topic_permissions -p {vhost} {user} {exchange} {} '.*'",
            shell_quote(&format!("^({keys}|{})$", escape_regex(targets.dead_letter)))
        )
    } else {
        // Configure for declaring the exchange and the dead-letter queue, write for publishing and
        // binding that queue, read on the exchange for the binding.
        let (exchange, dead_letter) = (
            escape_regex(exchange.as_str()),
            escape_regex(targets.dead_letter),
        );
        let both = shell_quote(&format!("^({exchange}|{dead_letter})$"));
        format!(
            "rabbitmqctl set_permissions -p {vhost} {user} {both} {both} {}",
            shell_quote(&format!("^{exchange}$"))
        )
    };
    Ok(Permission::Refused { detail, fix })
}

/// The granted line, with whether a queue is bound for the routed keys. The dead-letter destination is
/// left out: the relay declares and binds its queue itself.
async fn with_bindings(
    config: &RabbitMqConfig,
    uri: &AMQPUri,
    exchange: &str,
    targets: &Targets<'_>,
    detail: String,
) -> Permission {
    let routed: Vec<String> = targets
        .destinations
        .iter()
        .filter(|d| *d != targets.dead_letter)
        .cloned()
        .collect();
    if routed.is_empty() {
        return Permission::Granted { detail };
    }
    let management_url = config.management_url.as_deref();
    match bindings::check(uri, management_url, exchange, &routed).await {
        Bindings::Bound { api } => Permission::Granted {
            detail: format!("{detail}; a queue is bound for each routed key ({api})"),
        },
        Bindings::Unknown { reason } => Permission::Granted {
            detail: format!("{detail}; cannot tell whether a queue is bound ({reason})"),
        },
        Bindings::Unbound { api, keys } => Permission::Unverified {
            detail: format!(
                "{detail}; but no queue is bound to exchange {exchange} for routing keys {} ({api}): \
                 each such event would be returned as unroutable and dead-lettered into queue {}",
                list(&keys),
                targets.dead_letter
            ),
            fix: format!(
                "start the consuming services first, or bind their queues for those keys, e.g. \
                 rabbitmqadmin declare binding source={exchange} destination=<queue> routing_key={}",
                keys[0]
            ),
        },
    }
}

/// Publishes to `destination` inside a transaction and rolls it back; the broker's refusal, if any.
async fn try_publish(
    config: &RabbitMqConfig,
    exchange: &ShortString,
    destination: &str,
) -> Result<Option<AMQPError>, SinkError> {
    let broker = |e: lapin::Error| SinkError::Broker {
        sink: NAME,
        reason: format!("cannot ask about publishing to {destination}: {e}"),
    };
    let routing_key = ShortString::try_new(destination).map_err(|e| SinkError::Broker {
        sink: NAME,
        reason: format!("routing key {destination}: {e}"),
    })?;
    // A connection per destination, so that its events carry this publish's refusal only.
    let connection = tokio::time::timeout(super::CONNECT_TIMEOUT, super::open(config))
        .await
        .map_err(|_| {
            super::connect_error(
                config,
                format!("no answer within {:?}", super::CONNECT_TIMEOUT),
            )
        })??;
    // Subscribed before the publish: lapin reports a channel's close only to existing listeners.
    let mut events = Box::pin(connection.events_listener());
    let channel = connection.create_channel().await.map_err(broker)?;
    channel.tx_select().await.map_err(broker)?;
    let published = channel
        .basic_publish(
            exchange.clone(),
            routing_key,
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default(),
        )
        .await;
    let Err(error) = published.and(channel.tx_rollback().await) else {
        let _ = channel.close(200, "checked".into()).await;
        return Ok(None);
    };
    // basic.publish has no reply: a refusal arrives as the channel's close. The rollback reports it
    // if it was sent first; if the close came first, the rollback only sees a closing channel and
    // the reason comes through the connection's events.
    let reason = match error.kind() {
        ErrorKind::ProtocolError(amqp) => Some(amqp.clone()),
        _ => tokio::time::timeout(CLOSE_REASON_TIMEOUT, async {
            while let Some(event) = events.next().await {
                if let Event::Error(e) = event {
                    if let ErrorKind::ProtocolError(amqp) = e.kind() {
                        return Some(amqp.clone());
                    }
                }
            }
            None
        })
        .await
        .ok()
        .flatten(),
    };
    match reason {
        Some(amqp) if [ACCESS_REFUSED, NOT_FOUND].contains(&amqp.get_id()) => Ok(Some(amqp)),
        _ => Err(broker(error)),
    }
}

/// A name as a regular expression matching exactly it (RabbitMQ permissions are Erlang regexes).
fn escape_regex(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// One shell word, for fixes meant to be pasted.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
