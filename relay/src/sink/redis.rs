//! Redis Streams sink: appends each event to the stream named by its destination with `XADD`.
//!
//! One connection carries one pipeline per batch. Redis executes a connection's commands in the
//! order they arrive, so events of one aggregate land in their stream in commit order.
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

use super::{Delivery, Sink, SinkError};
use crate::event::Routed;
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
    /// Awaits the batch's pipeline before returning, so the returned delivery is already resolved:
    /// the replies to `XADD` are Redis's acknowledgement. Overlapping batches would gain little, as
    /// one round trip per batch of hundreds of events is cheap.
    async fn publish(&mut self, batch: Vec<Routed>) -> Result<Delivery, SinkError> {
        let mut pipe = redis::pipe();
        // Report which event a server error (e.g. WRONGTYPE on an existing key) belongs to.
        pipe.ignore_errors();
        for routed in &batch {
            let event = &routed.event;
            let headers = event.headers_json();
            let mut fields = vec![
                ("id", event.id.as_str()),
                ("aggregatetype", &event.aggregate_type),
                ("aggregateid", &event.aggregate_id),
                ("type", &event.event_type),
                ("payload", routed.payload()),
                ("headers", &headers),
            ];
            if let Some(created_at) = &event.created_at {
                fields.push(("created_at", created_at));
            }
            // The dead-letter fields, as the other sinks carry them in headers.
            for (name, value) in routed.headers() {
                if name.starts_with("dlq_") {
                    fields.push((name, value));
                }
            }
            match self.maxlen {
                Some(n) => {
                    pipe.xadd_maxlen(&routed.destination, StreamMaxlen::Approx(n), "*", &fields)
                }
                None => pipe.xadd(&routed.destination, "*", &fields),
            };
        }
        let replies: Vec<RedisResult<String>> = pipe
            .query_async(&mut self.connection)
            .await
            .map_err(|e| SinkError::Broker {
                sink: NAME,
                reason: e.to_string(),
            })?;
        if let Some((routed, error)) = batch
            .iter()
            .zip(replies)
            .find_map(|(routed, reply)| reply.err().map(|error| (routed, error)))
        {
            let (event_id, destination) = (routed.event.id.clone(), routed.destination.clone());
            let reason = error.to_string();
            // A key of another type stays so whatever is retried; other server errors (OOM,
            // loading) pass.
            return Err(if error.code() == Some("WRONGTYPE") {
                SinkError::Unacceptable {
                    sink: NAME,
                    event_id,
                    destination,
                    reason,
                }
            } else {
                SinkError::Rejected {
                    sink: NAME,
                    event_id,
                    destination,
                    reason,
                }
            });
        }
        Ok(Box::pin(std::future::ready(Ok(()))))
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
