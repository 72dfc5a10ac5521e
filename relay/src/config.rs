//! The relay's configuration: defaults, then a TOML file, then `OUTBOX_RELAY_*` environment
//! variables, then command-line flags, later sources winning. Every bad value is reported with the
//! key that holds it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::backoff::BackoffSettings;
use crate::cleanup::CleanupMode;
use crate::outbox::OutboxTable;
use crate::pg::database::Database;
use crate::pipeline::PipelineSettings;
use crate::router::Router;
use crate::sink::kafka::KafkaConfig;
use crate::sink::rabbitmq::RabbitMqConfig;
use crate::sink::redis::RedisConfig;
use crate::source::logical::LogicalSettings;

pub const ENV_PREFIX: &str = "OUTBOX_RELAY_";

/// `OUTBOX_RELAY_*` variables read by the command line itself, not configuration keys.
const CLI_ONLY_ENV: &[&str] = &["config", "log_format", "log_level"];

/// Kubernetes injects `<SERVICE>_PORT`, `<SERVICE>_PORT_9187_TCP`, `<SERVICE>_SERVICE_HOST`, ... for
/// every Service; one named `outbox-relay` lands in our prefix. No configuration key starts so.
fn is_service_link(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "port" || key.starts_with("port_") || key.starts_with("service_")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Kafka,
    Rabbitmq,
    Redis,
    Stdout,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// libpq-style URL or key=value string of the database holding the outbox.
    pub database_url: String,
    /// A file holding `database_url` instead (a mounted secret); its surrounding whitespace is ignored.
    pub database_url_file: Option<PathBuf>,
    pub slot: String,
    pub publication: String,
    pub outbox: OutboxTable,
    /// Destination template: `{aggregatetype}` and `{type}` are replaced per event.
    pub destination: String,
    /// Where events the broker refuses for good go (Kafka topic, Redis stream, RabbitMQ routing key
    /// and queue), with the reason in headers.
    pub dead_letter_destination: String,
    pub sink: SinkKind,
    /// `delete` removes each outbox row once its event is confirmed; `keep` leaves rows alone.
    pub cleanup: CleanupMode,
    pub kafka: KafkaConfig,
    pub rabbitmq: RabbitMqConfig,
    pub redis: RedisConfig,
    pub pipeline: PipelineSettings,
    pub backoff: BackoffSettings,
    /// Where `/metrics`, `/health/live` and `/health/ready` are served.
    pub metrics_addr: SocketAddr,
    /// Warn when the slot holds back at least this much WAL (0: never).
    pub slot_lag_warning_bytes: u64,
    /// How long a stop signal may take to drain in-flight events before the relay gives up.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: String::new(),
            database_url_file: None,
            slot: "outbox_relay_slot".into(),
            publication: "outbox_relay_pub".into(),
            outbox: OutboxTable::default(),
            destination: "outbox.event.{aggregatetype}".into(),
            dead_letter_destination: "outbox.dlq".into(),
            sink: SinkKind::Kafka,
            cleanup: CleanupMode::Keep,
            kafka: KafkaConfig::default(),
            rabbitmq: RabbitMqConfig::default(),
            redis: RedisConfig::default(),
            pipeline: PipelineSettings::default(),
            backoff: BackoffSettings::default(),
            shutdown_grace: Duration::from_secs(30),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9187)),
            slot_lag_warning_bytes: 1 << 30,
        }
    }
}

/// A configuration value that cannot work, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Layers the sources; `overrides` holds only the flags given on the command line.
    pub fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, ConfigError> {
        let mut config: Config = layers(file, overrides)?.extract().map_err(Box::new)?;
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// Only the outbox layout, for commands that need no database (`ddl`).
    pub fn load_outbox(
        file: Option<&Path>,
        overrides: serde_json::Value,
    ) -> Result<OutboxTable, ConfigError> {
        Ok(layers(file, overrides)?
            .extract_inner("outbox")
            .map_err(Box::new)?)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.database_url_file else {
            return Ok(());
        };
        if !self.database_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "database_url_file",
                reason: "set either database_url or database_url_file, not both".into(),
            });
        }
        self.database_url = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid {
                key: "database_url_file",
                reason: format!("cannot read {}: {e}", path.display()),
            })?
            .trim()
            .to_owned();
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.database_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "database_url",
                reason: "required: pass --database-url or --database-url-file, set OUTBOX_RELAY_DATABASE_URL(_FILE), or put it in the config file".into(),
            });
        }
        self.database()?;
        Router::new(&self.destination).map_err(|e| ConfigError::Invalid {
            key: "destination",
            reason: e.to_string(),
        })?;
        if self.pipeline.batch_size == 0 || self.pipeline.max_in_flight < self.pipeline.batch_size {
            return Err(ConfigError::Invalid {
                key: "pipeline.max_in_flight",
                reason: "batch_size must be at least 1 and max_in_flight at least batch_size"
                    .into(),
            });
        }
        let tls = match self.sink {
            SinkKind::Rabbitmq => self.rabbitmq.tls().map(drop),
            SinkKind::Redis => self.redis.tls().map(drop),
            SinkKind::Kafka | SinkKind::Stdout => Ok(()),
        };
        tls.map_err(|e| ConfigError::Invalid {
            key: e.key,
            reason: e.reason,
        })?;
        for (key, name) in [("slot", &self.slot), ("publication", &self.publication)] {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{name:?} must be 1-63 characters of lower-case letters, digits and '_'"
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn database(&self) -> Result<Database, ConfigError> {
        Database::parse(&self.database_url).map_err(|e| ConfigError::Invalid {
            key: "database_url",
            reason: e.to_string(),
        })
    }

    pub fn logical(&self) -> Result<LogicalSettings, ConfigError> {
        Ok(LogicalSettings {
            database: self.database()?,
            slot: self.slot.clone(),
            publication: self.publication.clone(),
            outbox: self.outbox.clone(),
        })
    }
}

fn layers(file: Option<&Path>, overrides: serde_json::Value) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::Invalid {
                key: "--config",
                reason: format!("file {} does not exist", file.display()),
            });
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    Ok(figment
        .merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(CLI_ONLY_ENV)
                .filter(|key| !is_service_link(key.as_str()))
                .split("__"),
        )
        .merge(Serialized::defaults(overrides)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flags_override_defaults() {
        let config = Config::load(
            None,
            json!({"database_url": "postgres://u@h/db", "sink": "redis"}),
        )
        .unwrap();
        assert_eq!(config.sink, SinkKind::Redis);
        assert_eq!(config.slot, "outbox_relay_slot");
        assert_eq!(config.destination, "outbox.event.{aggregatetype}");
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "database_url = \"postgres://u@h/db\"\nslot = \"from_file\"\n[pipeline]\nbatch_size = 10\nstatus_interval = \"250ms\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), json!({"slot": "from_flag"})).unwrap();
        assert_eq!(config.slot, "from_flag");
        assert_eq!(config.pipeline.batch_size, 10);
        assert_eq!(config.pipeline.status_interval, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::load(
            None,
            json!({"database_url": "postgres://u@h/db", "pipeline": {"batch_size": "many"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("batch_size"), "{err}");
        let err = Config::load(
            None,
            json!({"database_url": "postgres://u@h/db", "sink": "kafak"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sink"), "{err}");
        let err = Config::load(None, json!({})).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
        let err = Config::load(
            None,
            json!({"database_url": "postgres://u:pw@h/db", "slot": "Bad-Slot"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`slot`"), "{err}");
        let err = Config::load(
            None,
            json!({"database_url": "postgres://u:hunter2@h:notaport/db"}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("database_url") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn command_line_variables_are_not_configuration_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTBOX_RELAY_LOG_FORMAT", "json");
            jail.set_env("OUTBOX_RELAY_CONFIG", "relay.toml");
            jail.set_env("OUTBOX_RELAY_PORT", "tcp://10.0.0.1:9187");
            jail.set_env("OUTBOX_RELAY_SERVICE_HOST", "10.0.0.1");
            // Only these two: other tests run in parallel and read the environment too.
            Config::load(None, json!({"database_url": "postgres://u@h/db"})).unwrap();
            Ok(())
        });
    }

    #[test]
    fn kafka_properties_from_flags_merge_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "database_url = \"postgres://u@h/db\"\n[kafka.properties]\n\"sasl.username\" = \"relay\"\n\"security.protocol\" = \"SSL\"\n").unwrap();
        let config = Config::load(
            Some(&path),
            json!({"kafka": {"properties": {"security.protocol": "SASL_SSL"}}}),
        )
        .unwrap();
        let properties: Vec<(&str, &str)> = config
            .kafka
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            properties,
            [
                ("sasl.username", "relay"),
                ("security.protocol", "SASL_SSL")
            ]
        );
    }

    #[test]
    fn the_database_url_may_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("database-url");
        std::fs::write(&secret, "postgres://relay:pw@db/orders\n").unwrap();
        let config = Config::load(None, json!({"database_url_file": secret})).unwrap();
        assert_eq!(config.database_url, "postgres://relay:pw@db/orders");
        let err = Config::load(
            None,
            json!({"database_url_file": secret, "database_url": "postgres://x@y/z"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database_url_file"), "{err}");
        let err = Config::load(
            None,
            json!({"database_url_file": dir.path().join("missing")}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::load(
            None,
            json!({"database_url": "postgres://u@h/db", "slott": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("slott"), "{err}");
    }
}
