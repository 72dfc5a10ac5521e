//! The service's configuration: defaults, then an optional TOML file, then environment variables,
//! later sources winning.
//!
//! Every key can be set through `INVOICE_SERVICE_<KEY>`, nested keys joined by `__` (e.g.
//! `INVOICE_SERVICE_MESSAGING__KAFKA__BROKERS`). The settings a deployment touches most also have
//! the short names of the seed's Spring configuration, see [`ALIASES`].

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tlsfiles::TlsFileError;

pub use brokers::{KafkaSettings, Messaging, Mode, RabbitMqSettings, RedisSettings};

pub const ENV_PREFIX: &str = "INVOICE_SERVICE_";

/// Short environment variables and the keys they set.
pub const ALIASES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("MESSAGING_MODE", "messaging.mode"),
    ("KAFKA_BOOTSTRAP_SERVERS", "messaging.kafka.brokers"),
    ("RABBITMQ_URL", "messaging.rabbitmq.url"),
    ("REDIS_URL", "messaging.redis.url"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API listens (`INVOICE_SERVICE_ADDR`).
    pub addr: SocketAddr,
    /// The invoice database, as a libpq-style URL or key=value string (`DATABASE_URL`).
    pub database_url: String,
    /// Connections in the pool shared by the HTTP API and the consumer.
    pub database_pool_size: usize,
    /// Most a customer may have in open invoices (issued, not voided) in one currency, this order
    /// included (`INVOICE_SERVICE_CREDIT_LIMIT`, a decimal string such as "1000.00"); an order beyond
    /// it is rejected with `InvoiceRejected` (`credit-limit-exceeded`). Unset: no limit.
    #[serde(default, with = "decimal_option")]
    pub credit_limit: Option<Decimal>,
    pub messaging: Messaging,
}

/// A configuration that cannot work, naming the key that holds the bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
}

/// An optional decimal from a string (as a file gives it, `"1000.00"`) or a number (as figment reads
/// an environment variable such as `1000.00`).
mod decimal_option {
    use rust_decimal::Decimal;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::str_option::serialize(value, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Integer(i64),
            Float(f64),
        }
        Option::<Raw>::deserialize(d)?
            .map(|raw| match raw {
                Raw::Text(text) => text.parse().map_err(D::Error::custom),
                Raw::Integer(integer) => Ok(Decimal::from(integer)),
                Raw::Float(float) => Decimal::try_from(float).map_err(D::Error::custom),
            })
            .transpose()
    }
}

impl Config {
    /// Layers defaults, `file` (when given), and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.display().to_string()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        for (variable, key) in ALIASES {
            figment = figment.merge(Env::raw().only(&[variable]).map(|_| (*key).into()));
        }
        let config: Config = figment
            // CONFIG names the file itself, which the binary reads before this.
            .merge(Env::prefixed(ENV_PREFIX).ignore(&["CONFIG"]).split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        let messaging = &self.messaging;
        if self.database_url.is_empty() {
            return invalid(
                "database_url",
                "required: set DATABASE_URL or put it in the config file",
            );
        }
        if self.database_pool_size == 0 {
            return invalid("database_pool_size", "must be at least 1");
        }
        if self
            .credit_limit
            .is_some_and(|limit| limit.is_sign_negative())
        {
            return invalid("credit_limit", "must not be negative");
        }
        if messaging.destination.is_empty() {
            return invalid("messaging.destination", "must not be empty");
        }
        if messaging.dead_letter_destination == messaging.destination {
            return invalid(
                "messaging.dead_letter_destination",
                "must differ from messaging.destination, or dead letters would be consumed again",
            );
        }
        // Read now, so that a wrong path stops the service at start naming its key.
        messaging.rabbitmq.tls()?;
        messaging.redis.tls()?;
        if messaging.rabbitmq.prefetch == 0 {
            return invalid("messaging.rabbitmq.prefetch", "must be at least 1");
        }
        if messaging.redis.batch_size == 0 {
            return invalid("messaging.redis.batch_size", "must be at least 1");
        }
        if messaging.redis.reclaim_idle.is_zero() {
            return invalid(
                "messaging.redis.reclaim_idle",
                "must be positive, or entries in progress would be taken from live consumers",
            );
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([0, 0, 0, 0], 8081)),
            database_url: String::new(),
            database_pool_size: 8,
            credit_limit: None,
            messaging: Messaging::local(
                Mode::Kafka,
                contracts::ORDER_DESTINATION,
                "invoice-service",
            ),
        }
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type, a large one.
#[allow(clippy::result_large_err)]
mod tests {
    use std::time::Duration;

    use super::*;
    use figment::Jail;

    fn load(jail: &Jail, toml: Option<&str>) -> Result<Config, ConfigError> {
        let file = toml.map(|text| {
            jail.create_file("invoice.toml", text).unwrap();
            jail.directory().join("invoice.toml")
        });
        Config::load(file.as_deref())
    }

    #[test]
    fn defaults_are_kafka_on_8081_with_the_relays_destination() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://db/invoices");
            let config = load(jail, None).unwrap();
            assert_eq!(config.addr.port(), 8081);
            assert_eq!(config.messaging.mode, Mode::Kafka);
            assert_eq!(config.messaging.destination, "outbox.event.order");
            assert_eq!(
                config.messaging.dead_letter_destination,
                "outbox.event.order.dlq"
            );
            Ok(())
        });
    }

    #[test]
    fn the_credit_limit_is_a_decimal_from_the_file_or_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://env/db");
            assert_eq!(load(jail, None).unwrap().credit_limit, None);
            let config = load(jail, Some(r#"credit_limit = "1000.50""#)).unwrap();
            assert_eq!(config.credit_limit, Some("1000.50".parse().unwrap()));
            jail.set_env("INVOICE_SERVICE_CREDIT_LIMIT", "30.00");
            let config = load(jail, None).unwrap();
            assert_eq!(config.credit_limit, Some("30".parse().unwrap()));
            jail.set_env("INVOICE_SERVICE_CREDIT_LIMIT", "-1");
            assert!(load(jail, None)
                .unwrap_err()
                .to_string()
                .contains("credit_limit"));
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_with_short_and_prefixed_names() {
        Jail::expect_with(|jail| {
            let toml = r#"
                database_url = "postgres://file/db"
                [messaging]
                mode = "redis"
                [messaging.redis]
                consumer = "from-file"
                reclaim_idle = "5s"
            "#;
            jail.set_env("MESSAGING_MODE", "rabbitmq");
            jail.set_env("INVOICE_SERVICE_ADDR", "127.0.0.1:9000");
            jail.set_env("INVOICE_SERVICE_CONFIG", "ignored.toml");
            jail.set_env("INVOICE_SERVICE_MESSAGING__RABBITMQ__PREFETCH", "5");
            jail.set_env("RABBITMQ_URL", "amqp://rabbit/%2f");
            let config = load(jail, Some(toml)).unwrap();
            assert_eq!(config.database_url, "postgres://file/db");
            assert_eq!(config.messaging.mode, Mode::Rabbitmq);
            assert_eq!(config.addr, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(config.messaging.rabbitmq.prefetch, 5);
            assert_eq!(config.messaging.rabbitmq.url, "amqp://rabbit/%2f");
            assert_eq!(config.messaging.redis.consumer, "from-file");
            assert_eq!(config.messaging.redis.reclaim_idle, Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://db/invoices");
            jail.set_env("MESSAGING_MODE", "carrier-pigeon");
            let error = load(jail, None).unwrap_err().to_string();
            assert!(error.contains("carrier-pigeon"), "{error}");
            assert!(error.to_lowercase().contains("messaging.mode"), "{error}");

            jail.set_env("MESSAGING_MODE", "kafka");
            jail.set_env(
                "INVOICE_SERVICE_MESSAGING__DEAD_LETTER_DESTINATION",
                "outbox.event.order",
            );
            let error = load(jail, None).unwrap_err().to_string();
            assert!(
                error.contains("messaging.dead_letter_destination"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn broker_tls_files_are_checked_at_load_naming_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://db/invoices");
            jail.set_env("INVOICE_SERVICE_MESSAGING__REDIS__CA_FILE", "/etc/ca.pem");
            let error = load(jail, None).unwrap_err().to_string();
            assert!(
                error.contains("messaging.redis.ca_file") && error.contains("rediss://"),
                "{error}"
            );

            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://db/invoices");
            jail.set_env("RABBITMQ_URL", "amqps://u:p@broker/%2f");
            jail.set_env(
                "INVOICE_SERVICE_MESSAGING__RABBITMQ__CLIENT_CERT_FILE",
                "/etc/client.pem",
            );
            let error = load(jail, None).unwrap_err().to_string();
            assert!(
                error.contains("messaging.rabbitmq.client_key_file"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn database_url_is_required_and_unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            let error = load(jail, None).unwrap_err().to_string();
            assert!(error.contains("database_url"), "{error}");
            let error = load(
                jail,
                Some("database_url = \"x\"\nmessaging_mode = \"kafka\""),
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains("messaging_mode"), "{error}");
            Ok(())
        });
    }
}
