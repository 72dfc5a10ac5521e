//! Redis Streams consumer: a consumer group on the destination stream read with `XREADGROUP`, each
//! entry acknowledged with `XACK` after its database commit.
//!
//! An entry read but not acknowledged stays in the group's pending entries list. After a crash the
//! service first reads its own pending entries again (`XREADGROUP` from id 0), and it periodically
//! claims entries that another consumer has left idle for `reclaim_idle` (`XAUTOCLAIM`), such as
//! those of an instance that crashed and did not come back.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pgconn::redact_url;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisError};

use crate::Messaging;
use crate::{Consumer, ConsumerError, Envelope, Received};
use crate::{Rejection, DETAIL_HEADER, REASON_HEADER};

const BROKER: &str = "redis";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one `XREADGROUP` waits for new entries; short enough to reclaim on time.
const BLOCK: Duration = Duration::from_secs(2);

/// Longer than [`BLOCK`], or every idle read would time out.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The fields the relay writes besides `payload` and `headers`, which are message headers elsewhere.
const IDENTITY_FIELDS: [&str; 4] = ["id", "type", "aggregatetype", "aggregateid"];

pub struct RedisConsumer {
    connection: MultiplexedConnection,
    stream: String,
    dead_letter_stream: String,
    group: String,
    consumer: String,
    batch_size: usize,
    reclaim_idle: Duration,
    /// Entries read and not yet handed out; refilled only when empty, so everything this consumer
    /// had read before a refill is acknowledged by then.
    buffer: VecDeque<StreamId>,
    /// Set until this consumer's own pending entries, left by an earlier run, have been read again.
    reading_own_pending: bool,
    reclaim_cursor: String,
    next_reclaim: Instant,
}

/// An entry's id and fields, as needed to acknowledge or dead-letter it.
pub struct RedisMessage {
    id: String,
    fields: BTreeMap<String, String>,
}

/// Connects and creates the consumer group (and the stream) if missing.
pub async fn connect(messaging: &Messaging) -> Result<RedisConsumer, ConsumerError> {
    let settings = &messaging.redis;
    let connect_error = |reason: String| ConsumerError::Connect {
        broker: BROKER,
        endpoint: redact_url(&settings.url),
        reason,
    };
    let client = settings
        .tls()
        .map_err(|e| connect_error(e.to_string()))?
        .redis_client(&settings.url)
        .map_err(|e| connect_error(e.to_string()))?;
    let options = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&options)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    // From id 0, so entries the relay appended before the group existed are invoiced too.
    let created: Result<(), RedisError> = connection
        .xgroup_create_mkstream(&messaging.destination, &settings.group, "0")
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => return Err(connect_error(e.to_string())),
        _ => {}
    }
    Ok(RedisConsumer {
        connection,
        stream: messaging.destination.clone(),
        dead_letter_stream: messaging.dead_letter_destination.clone(),
        group: settings.group.clone(),
        consumer: settings.consumer.clone(),
        batch_size: settings.batch_size,
        reclaim_idle: settings.reclaim_idle,
        buffer: VecDeque::new(),
        reading_own_pending: true,
        reclaim_cursor: "0-0".to_owned(),
        next_reclaim: Instant::now(),
    })
}

fn broker_error(what: &str, e: RedisError) -> ConsumerError {
    ConsumerError::Broker {
        broker: BROKER,
        reason: format!("{what}: {e}"),
    }
}

impl RedisConsumer {
    /// Reads this consumer's pending entries (`id` "0") or new ones (`id` ">", blocking a while).
    async fn read(&mut self, id: &str) -> Result<Vec<StreamId>, ConsumerError> {
        let mut options = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(self.batch_size);
        if id == ">" {
            options = options.block(BLOCK.as_millis() as usize);
        }
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&[&self.stream], &[id], &options)
            .await
            .map_err(|e| broker_error("XREADGROUP failed", e))?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect())
    }

    /// Claims one page of entries idle past `reclaim_idle`; after the last page, waits
    /// `reclaim_idle` before the next scan.
    async fn reclaim(&mut self) -> Result<Vec<StreamId>, ConsumerError> {
        let reply: redis::streams::StreamAutoClaimReply = self
            .connection
            .xautoclaim_options(
                &self.stream,
                &self.group,
                &self.consumer,
                self.reclaim_idle.as_millis() as usize,
                &self.reclaim_cursor,
                StreamAutoClaimOptions::default().count(self.batch_size),
            )
            .await
            .map_err(|e| broker_error("XAUTOCLAIM failed", e))?;
        if !reply.deleted_ids.is_empty() {
            tracing::warn!(
                ids = ?reply.deleted_ids,
                "pending entries were trimmed from the stream before anyone processed them"
            );
        }
        if !reply.claimed.is_empty() {
            tracing::info!(
                count = reply.claimed.len(),
                "claimed entries another consumer left unacknowledged"
            );
        }
        self.reclaim_cursor = reply.next_stream_id;
        if self.reclaim_cursor == "0-0" {
            self.next_reclaim = Instant::now() + self.reclaim_idle;
        }
        Ok(reply.claimed)
    }
}

fn message(entry: StreamId) -> RedisMessage {
    let fields = entry
        .map
        .into_iter()
        .map(|(name, value)| {
            let text = redis::from_redis_value::<String>(value)
                .unwrap_or_else(|e| format!("(unreadable value: {e})"));
            (name, text)
        })
        .collect();
    RedisMessage {
        id: entry.id,
        fields,
    }
}

/// The relay puts the outbox row's headers in a `headers` field as a JSON object of strings.
fn envelope(message: &RedisMessage) -> Result<Envelope, Rejection> {
    let malformed = |detail: String| Rejection::new("malformed-message", detail);
    let mut headers: BTreeMap<String, String> = match message.fields.get("headers") {
        Some(json) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
            .map_err(|e| malformed(format!("the headers field is not a JSON object: {e}")))?
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect(),
        None => BTreeMap::new(),
    };
    for field in IDENTITY_FIELDS {
        if let Some(value) = message.fields.get(field) {
            headers.insert(field.to_owned(), value.clone());
        }
    }
    let payload = message
        .fields
        .get("payload")
        .cloned()
        .ok_or_else(|| malformed("the entry has no payload field".to_owned()))?;
    Ok(Envelope { headers, payload })
}

#[async_trait]
impl Consumer for RedisConsumer {
    type Message = RedisMessage;

    async fn receive(&mut self) -> Result<Received<RedisMessage>, ConsumerError> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                let message = message(entry);
                return Ok(Received {
                    envelope: envelope(&message),
                    message,
                });
            }
            let entries = if Instant::now() >= self.next_reclaim {
                self.reclaim().await?
            } else if self.reading_own_pending {
                let entries = self.read("0").await?;
                self.reading_own_pending = !entries.is_empty();
                entries
            } else {
                self.read(">").await?
            };
            self.buffer.extend(entries);
        }
    }

    async fn ack(&mut self, message: RedisMessage) -> Result<(), ConsumerError> {
        let _: usize = self
            .connection
            .xack(&self.stream, &self.group, &[&message.id])
            .await
            .map_err(|e| broker_error(&format!("XACK {} failed", message.id), e))?;
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        message: RedisMessage,
        rejection: &Rejection,
    ) -> Result<(), ConsumerError> {
        let mut fields: Vec<(&str, &str)> = message
            .fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        fields.push((REASON_HEADER, rejection.code));
        fields.push((DETAIL_HEADER, &rejection.detail));
        let _: String = self
            .connection
            .xadd(&self.dead_letter_stream, "*", &fields)
            .await
            .map_err(|e| broker_error(&format!("XADD to {} failed", self.dead_letter_stream), e))?;
        self.ack(message).await
    }
}
