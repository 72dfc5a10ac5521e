//! Redis Streams sink: appends each message to the stream named by its destination with `XADD`:
//! its headers as the entry's fields, then its value as field `payload`.
//!
//! One connection carries one transaction (`MULTI`/`EXEC`) per batch, sent only once the previous
//! batch's reply is in. Redis executes a connection's commands in the order they arrive, and a
//! transaction refused for a passing reason lands none of its events, so events of one aggregate
//! land in their stream in commit order even when the server refuses writes for a while.
//!
//! `rediss://` connects over TLS (rustls with ring): the server must present a certificate for the
//! URL's host that chains to `ca_file`, or to the system roots without it.

pub mod publish_check;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamMaxlen;
use redis::{AsyncConnectionConfig, RedisResult};
use serde::{Deserialize, Serialize};

use super::{refused, Delivery, Refusal, Sink, SinkError};
use crate::encode::{Message, VALUE_FIELD};
use crate::pg::redact_url;
use tlsfiles::{self as tls, TlsFileError, TlsFiles, TlsKeys, TlsMaterial};

const NAME: &str = "redis";

const TLS_KEYS: TlsKeys = TlsKeys {
    url: "redis.url",
    tls_scheme: "rediss://",
    ca_file: "redis.ca_file",
    client_cert_file: "redis.client_cert_file",
    client_key_file: "redis.client_key_file",
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one batch's pipeline may take. The client's default (500 ms) is too tight for large
/// batches on a busy server.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379/0`, `redis://user:password@host/`, or `rediss://…` for TLS.
    pub url: String,
    /// Trim each stream to about this many entries (`MAXLEN ~ n`); unbounded when absent.
    pub maxlen: Option<usize>,
    /// PEM file of the CA certificates a `rediss://` server must chain to, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for servers with `tls-auth-clients yes`; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`, unencrypted.
    pub client_key_file: Option<PathBuf>,
}

impl RedisConfig {
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

    /// The client for the URL, with the CA and client certificate when they are set.
    fn client(&self) -> Result<redis::Client, SinkError> {
        let material = self.tls().map_err(|e| SinkError::Misconfigured {
            sink: NAME,
            reason: e.to_string(),
        })?;
        // The URL cannot be parsed; its text is not repeated, as it may hold a password.
        material
            .redis_client(&self.url)
            .map_err(|e| SinkError::Misconfigured {
                sink: NAME,
                reason: format!("`redis.url`: {e}"),
            })
    }
}

pub struct RedisSink {
    connection: MultiplexedConnection,
    maxlen: Option<usize>,
}

/// Opens the connection and checks it with `PING`.
pub async fn connect(config: &RedisConfig) -> Result<RedisSink, SinkError> {
    // A failed handshake reads like any I/O error; say that TLS was in play and what it trusted.
    let over = if config.url.starts_with(TLS_KEYS.tls_scheme) {
        format!(" ({})", tls::trust(config.ca_file.as_deref(), false))
    } else {
        String::new()
    };
    let connect_error = |e: redis::RedisError| SinkError::Connect {
        sink: NAME,
        endpoint: redact_url(&config.url),
        reason: format!("{e}{over}"),
    };
    let client = config.client()?;
    let options = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&options)
        .await
        .map_err(connect_error)?;
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .map_err(connect_error)?;
    Ok(RedisSink {
        connection,
        maxlen: config.maxlen,
    })
}

#[async_trait]
impl Sink for RedisSink {
    /// Sends the batch as one transaction (`MULTI`, the `XADD`s, `EXEC`) and awaits its reply
    /// before returning, so the returned delivery is already resolved and the next batch is sent
    /// only once this one's fate is known. A refusal when commands are queued (OOM under
    /// `noeviction`, BUSY, NOREPLICAS, READONLY) aborts the whole transaction: none of its events
    /// lands, so none can land ahead of one that must be retried. Only errors when a command
    /// runs (WRONGTYPE) leave the others applied, and those are refusals for good.
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError> {
        let mut pipe = redis::pipe();
        // Report which event an error when a command runs (WRONGTYPE) belongs to.
        pipe.atomic().ignore_errors();
        for message in &batch {
            let mut fields: Vec<(&str, &[u8])> = message
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            if let Some(value) = &message.value {
                fields.push((VALUE_FIELD, value));
            }
            match self.maxlen {
                Some(n) => {
                    pipe.xadd_maxlen(&message.destination, StreamMaxlen::Approx(n), "*", &fields)
                }
                None => pipe.xadd(&message.destination, "*", &fields),
            };
        }
        // A queue-time refusal comes back as the aborted transaction's error (EXECABORT), naming
        // no event.
        let replies: Vec<RedisResult<String>> = pipe
            .query_async(&mut self.connection)
            .await
            .map_err(|e| SinkError::Broker {
                sink: NAME,
                reason: format!("the batch's transaction failed: {e}"),
            })?;
        let mut refusals = Vec::new();
        for (message, reply) in batch.iter().zip(replies) {
            let Err(error) = reply else { continue };
            let (event_id, destination) = (message.id.clone(), message.destination.clone());
            let reason = error.to_string();
            // A key of another type stays so whatever is retried; any other error passes.
            if error.code() != Some("WRONGTYPE") {
                return Err(SinkError::Rejected {
                    sink: NAME,
                    event_id,
                    destination,
                    reason,
                });
            }
            refusals.push(Refusal {
                event_id,
                destination,
                reason,
            });
        }
        Ok(Box::pin(std::future::ready(refused(NAME, refusals))))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            maxlen: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}
