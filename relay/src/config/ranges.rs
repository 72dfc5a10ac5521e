//! The valid range of every configuration key, checked when the configuration loads: a value
//! outside it stops the relay with exit code 2, naming the key and its range, before any connection
//! is opened, slot created or allocation sized by it. docs/CONFIGURATION.md lists the same ranges.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::error::KafkaError;

use super::{Config, ConfigError, SinkKind};
use crate::pg::redact_url;
use crate::source::mode::Mode;
use crate::source::snapshot::Snapshot;

/// Events per batch: the pipeline allocates a batch of this many up front.
pub const BATCH_SIZE: (usize, usize) = (1, 100_000);
/// Events in flight: bounded so the window's memory stays bounded too.
pub const MAX_IN_FLIGHT: usize = 1_000_000;
/// Each claim in flight holds a PostgreSQL connection of its own.
pub const CLAIMS_IN_FLIGHT: (usize, usize) = (1, 64);
/// Distinct destination labels on `/metrics`.
pub const METRICS_MAX_DESTINATIONS: (usize, usize) = (1, 100_000);
/// librdkafka's `message.timeout.ms` is a 32-bit count of milliseconds.
const KAFKA_MESSAGE_TIMEOUT_MAX: Duration = Duration::from_millis(i32::MAX as u64);
/// Kafka's protocol carries the replication factor as a 16-bit number.
const KAFKA_REPLICATION_FACTOR: (i32, i32) = (1, i16::MAX as i32);
const KAFKA_TOPIC_PARTITIONS: (i32, i32) = (1, 100_000);
const BACKOFF_MULTIPLIER: (f64, f64) = (1.0, 100.0);
/// From 64 KiB (a handful of ordinary events) to 16 GiB.
const MAX_IN_FLIGHT_BYTES: (usize, usize) = (64 * 1024, 16 * 1024 * 1024 * 1024);

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
const IDENTIFIER_BYTES: usize = 63;

/// Up to a week: a margin republishes that much history after every lost slot.
const GAP_REPAIR_MARGIN: (Duration, Duration) =
    (Duration::ZERO, Duration::from_secs(7 * 24 * 3600));

const MILLISECOND: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    let pipeline = &config.pipeline;
    within("pipeline.batch_size", pipeline.batch_size, BATCH_SIZE)?;
    if pipeline.max_in_flight < pipeline.batch_size || pipeline.max_in_flight > MAX_IN_FLIGHT {
        return Err(ConfigError::Invalid {
            key: "pipeline.max_in_flight",
            reason: format!(
                "{} is out of range; allowed: pipeline.batch_size ({}) to {MAX_IN_FLIGHT}",
                pipeline.max_in_flight, pipeline.batch_size
            ),
        });
    }
    within(
        "pipeline.max_in_flight_bytes",
        pipeline.max_in_flight_bytes,
        MAX_IN_FLIGHT_BYTES,
    )?;
    duration(
        "pipeline.status_interval",
        pipeline.status_interval,
        (MILLISECOND, HOUR),
    )?;

    let polling = &config.polling;
    duration("polling.interval", polling.interval, (MILLISECOND, DAY))?;
    within(
        "polling.claims_in_flight",
        polling.claims_in_flight,
        CLAIMS_IN_FLIGHT,
    )?;
    identifier("polling.channel", &polling.channel)?;

    let backoff = &config.backoff;
    duration("backoff.initial", backoff.initial, (MILLISECOND, HOUR))?;
    if backoff.max < backoff.initial || backoff.max > DAY {
        return Err(ConfigError::Invalid {
            key: "backoff.max",
            reason: format!(
                "{:?} is out of range; allowed: backoff.initial ({:?}) to {DAY:?}",
                backoff.max, backoff.initial
            ),
        });
    }
    // NaN is outside every range, but `within` would not see it: comparisons with NaN are false.
    if !backoff.multiplier.is_finite() {
        return Err(out_of_range(
            "backoff.multiplier",
            &backoff.multiplier,
            BACKOFF_MULTIPLIER,
        ));
    }
    within("backoff.multiplier", backoff.multiplier, BACKOFF_MULTIPLIER)?;

    duration(
        "shutdown_grace",
        config.shutdown_grace,
        (Duration::ZERO, DAY),
    )?;
    within(
        "metrics_max_destinations",
        config.metrics_max_destinations,
        METRICS_MAX_DESTINATIONS,
    )?;
    not_empty("dead_letter_destination", &config.dead_letter_destination)?;
    snapshot(config.snapshot)?;
    // `slot_failover` takes any boolean here: whether the server has failover slots is known once
    // connected, where `true` on a server before 17 stops the relay with this same exit code
    // (`pg::failover::wanted`).
    if let Some(table) = &config.checkpoint_table {
        table_name("checkpoint_table", table)?;
    }
    duration(
        "gap_repair_margin",
        config.gap_repair_margin,
        GAP_REPAIR_MARGIN,
    )?;
    outbox(config)?;
    messages(config)?;
    sink(config)
}

/// Messages are read from the replication stream only: polling reads the table and never sees one.
fn messages(config: &Config) -> Result<(), ConfigError> {
    not_empty("messages.prefix", &config.messages.prefix)?;
    if config.messages.enabled && config.mode == Mode::Polling {
        return Err(ConfigError::Invalid {
            key: "messages.enabled",
            reason: "pg_logical_emit_message events are read from the replication stream, which mode polling does not read; set mode to logical or auto, or turn messages off".into(),
        });
    }
    Ok(())
}

/// `snapshot`'s form is checked as it is read; a start time still to come would pick no row.
fn snapshot(snapshot: Snapshot) -> Result<(), ConfigError> {
    match snapshot {
        Snapshot::Since(since) if since > chrono::Utc::now() => Err(ConfigError::Invalid {
            key: "snapshot",
            reason: format!(
                "since={} is in the future; allowed: a time up to now",
                since.to_rfc3339()
            ),
        }),
        _ => Ok(()),
    }
}

/// `table` or `schema.table`.
pub(super) fn table_name(key: &'static str, table: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| !is_identifier(p)) {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{table:?} must be `table` or `schema.table`, each name 1-{IDENTIFIER_BYTES} bytes"
            ),
        });
    }
    Ok(())
}

fn outbox(config: &Config) -> Result<(), ConfigError> {
    table_name("outbox.table", &config.outbox.table)?;
    let c = &config.outbox.columns;
    for (key, name) in [
        ("outbox.columns.id", &c.id),
        ("outbox.columns.aggregate_type", &c.aggregate_type),
        ("outbox.columns.aggregate_id", &c.aggregate_id),
        ("outbox.columns.event_type", &c.event_type),
        ("outbox.columns.payload", &c.payload),
        ("outbox.columns.headers", &c.headers),
        ("outbox.columns.created_at", &c.created_at),
        (
            "outbox.columns.tracing_span_context",
            &c.tracing_span_context,
        ),
        ("outbox.columns.sequence", &c.sequence),
        ("outbox.columns.published_at", &c.published_at),
    ] {
        identifier(key, name)?;
    }
    if let Some(column) = &config.routing.destination_column {
        identifier("routing.destination_column", column)?;
    }
    if let Some(column) = &config.routing.key_column {
        identifier("routing.key_column", column)?;
    }
    not_empty("format.id_header", &config.format.id_header)?;
    for placement in config.format.placements()? {
        identifier("format.additional_columns", &placement.column)?;
    }
    for column in config.router()?.columns() {
        identifier("destination", &column)?;
    }
    Ok(())
}

/// The selected sink's section; the others are never used, so they are not held against the user.
fn sink(config: &Config) -> Result<(), ConfigError> {
    match config.sink {
        SinkKind::Kafka => {
            let kafka = &config.kafka;
            if kafka.brokers.split(',').any(|b| b.trim().is_empty()) {
                return Err(ConfigError::Invalid {
                    key: "kafka.brokers",
                    reason: format!(
                        "{:?} must be a comma-separated list of host:port, none empty",
                        kafka.brokers
                    ),
                });
            }
            within(
                "kafka.topic_partitions",
                kafka.topic_partitions,
                KAFKA_TOPIC_PARTITIONS,
            )?;
            within(
                "kafka.replication_factor",
                kafka.replication_factor,
                KAFKA_REPLICATION_FACTOR,
            )?;
            duration(
                "kafka.message_timeout",
                kafka.message_timeout,
                (MILLISECOND, KAFKA_MESSAGE_TIMEOUT_MAX),
            )?;
            kafka_properties(&kafka.properties)
        }
        SinkKind::Rabbitmq => {
            let url = &config.rabbitmq.url;
            lapin::uri::AMQPUri::from_str(url).map_err(|e| ConfigError::Invalid {
                key: "rabbitmq.url",
                reason: format!("not an amqp:// or amqps:// URL: {}", redacted(&e, url)),
            })?;
            if config.rabbitmq.exchange.len() > 255 {
                return Err(ConfigError::Invalid {
                    key: "rabbitmq.exchange",
                    reason: "must be at most 255 bytes (an AMQP short string)".into(),
                });
            }
            match &config.rabbitmq.management_url {
                Some(url) if !url.starts_with("http://") || reqwest::Url::parse(url).is_err() => {
                    Err(ConfigError::Invalid {
                        key: "rabbitmq.management_url",
                        reason: format!("not an http:// URL: {url:?}"),
                    })
                }
                _ => Ok(()),
            }
        }
        SinkKind::Redis => {
            let url = &config.redis.url;
            redis::Client::open(url.as_str()).map_err(|e| ConfigError::Invalid {
                key: "redis.url",
                reason: format!(
                    "not a redis://, rediss:// or redis+unix:// URL: {}",
                    redacted(&e, url)
                ),
            })?;
            match config.redis.maxlen {
                Some(maxlen) => within("redis.maxlen", maxlen, (1, usize::MAX)),
                None => Ok(()),
            }
        }
        SinkKind::Stdout => Ok(()),
    }
}

/// librdkafka checks each property's name and value as it is set, without connecting anywhere.
fn kafka_properties(properties: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let mut client = rdkafka::ClientConfig::new();
    for (property, value) in properties {
        client.set(property, value);
    }
    match client.create_native_config() {
        Err(KafkaError::ClientConfig(_, description, property, value)) => {
            // librdkafka quotes the value, which may be a password.
            let secret = ["password", "secret", "jaas", "token"]
                .iter()
                .any(|word| property.contains(word));
            let description = if secret && !value.is_empty() {
                description.replace(&value, "***")
            } else {
                description
            };
            Err(ConfigError::Invalid {
                key: "kafka.properties",
                reason: format!("{property:?}: {description}"),
            })
        }
        Err(e) => Err(ConfigError::Invalid {
            key: "kafka.properties",
            reason: e.to_string(),
        }),
        Ok(_) => Ok(()),
    }
}

/// A parser's message, with the URL it may quote stripped of its password.
fn redacted(error: &dyn Display, url: &str) -> String {
    error.to_string().replace(url, &redact_url(url))
}

fn within<T: PartialOrd + Display>(
    key: &'static str,
    value: T,
    (min, max): (T, T),
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(out_of_range(key, &value, (min, max)));
    }
    Ok(())
}

fn out_of_range<T: Display>(key: &'static str, value: &T, (min, max): (T, T)) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: format!("{value} is out of range; allowed: {min} to {max}"),
    }
}

fn duration(
    key: &'static str,
    value: Duration,
    (min, max): (Duration, Duration),
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{:?} is out of range; allowed: {:?} to {:?}",
                value, min, max
            ),
        });
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.len() <= IDENTIFIER_BYTES && !name.contains('\0')
}

fn identifier(key: &'static str, name: &str) -> Result<(), ConfigError> {
    if !is_identifier(name) {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{name:?} must be 1-{IDENTIFIER_BYTES} bytes, without NUL"),
        });
    }
    Ok(())
}

fn not_empty(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}
