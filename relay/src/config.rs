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
use crate::encode::FormatConfig;
use crate::gap_repair::SlotCreate;
use crate::http::Endpoint;
use crate::outbox::OutboxTable;
use crate::pg::database::Database;
use crate::pipeline::PipelineSettings;
use crate::router::{Router, RoutingConfig};
use crate::sink::kafka::KafkaConfig;
use crate::sink::rabbitmq::RabbitMqConfig;
use crate::sink::redis::RedisConfig;
use crate::source::logical::LogicalSettings;
use crate::source::message::MessageSettings;
use crate::source::mode::Mode;
use crate::source::polling::PollingSettings;
use crate::source::snapshot::Snapshot;

mod ranges;

pub const ENV_PREFIX: &str = "OUTBOX_RELAY_";

/// `OUTBOX_RELAY_*` variables read by the command line itself, not configuration keys.
const CLI_ONLY_ENV: &[&str] = &["config", "log_format", "log_level"];

/// Keys that hold secrets, which the Kubernetes-secret convention may also read from a file:
/// `OUTBOX_RELAY_<KEY>_FILE` names a file holding `<KEY>`'s value. A list, not a rule, because other
/// keys end in `_file` themselves (`redis.ca_file`). `database_url_file` is a key of its own.
const SECRET_KEYS: &[&str] = &["rabbitmq__url", "redis__url", "metrics_token"];

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
    /// `logical`, `polling`, or `auto`: logical when the database allows it, polling otherwise.
    pub mode: Mode,
    /// libpq-style URL or key=value string of the database holding the outbox.
    pub database_url: String,
    /// A file holding `database_url` instead (a mounted secret); its surrounding whitespace is ignored.
    pub database_url_file: Option<PathBuf>,
    pub slot: String,
    pub publication: String,
    /// Which rows already in the outbox to publish when the relay creates its slot: `never`,
    /// `all`, `since=<RFC 3339>` (by `created_at`) or `unpublished` (polling's `published_at IS NULL`).
    pub snapshot: Snapshot,
    pub outbox: OutboxTable,
    /// Events a service emits with `pg_logical_emit_message` instead of an outbox row.
    pub messages: MessageSettings,
    /// Destination template: `{aggregatetype}` and `{type}` are replaced per event by those
    /// columns, any other `{name}` by the outbox column of that name.
    pub destination: String,
    /// Per-row destinations and the message key.
    pub routing: RoutingConfig,
    /// Names in the messages the relay writes.
    pub format: FormatConfig,
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
    pub polling: PollingConfig,
    pub backoff: BackoffSettings,
    /// Where `/metrics`, `/health/live` and `/health/ready` are served.
    pub metrics_addr: SocketAddr,
    /// Serve them over TLS with this PEM certificate chain (and `metrics_tls_key_file`).
    pub metrics_tls_cert_file: Option<PathBuf>,
    pub metrics_tls_key_file: Option<PathBuf>,
    /// Demand this bearer token on `/metrics` (not on the health endpoints, which probes call).
    pub metrics_token: Option<String>,
    /// Most distinct `destination` labels on `/metrics`; events to further destinations are counted
    /// under `destination="(other)"`, so a template with a high-cardinality field cannot grow the
    /// page and the relay's memory without bound.
    pub metrics_max_destinations: usize,
    /// Warn when the slot holds back at least this much WAL (0: never).
    pub slot_lag_warning_bytes: u64,
    /// Create the slot with `failover` (and turn it on for an existing slot), so that standbys syncing
    /// slots keep a copy for after a promotion; unset: on where the server has it (PostgreSQL 17+).
    pub slot_failover: Option<bool>,
    /// How long a stop signal may take to drain in-flight events before the relay gives up.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `schema.table` or `table` where the acknowledged position is recorded for gap repair; unset: off.
    pub checkpoint_table: Option<String>,
    /// Gap repair republishes rows created this long before the checkpoint's last commit too: a
    /// transaction that took longer than this from its first statement to its commit is missed.
    #[serde(with = "humantime_serde")]
    pub gap_repair_margin: Duration,
    /// `auto` creates a missing slot (repairing a gap the checkpoint shows); `never` stops instead.
    pub slot_create: SlotCreate,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Auto,
            database_url: String::new(),
            database_url_file: None,
            slot: "outbox_relay_slot".into(),
            publication: "outbox_relay_pub".into(),
            snapshot: Snapshot::Never,
            outbox: OutboxTable::default(),
            messages: MessageSettings::default(),
            destination: "outbox.event.{aggregatetype}".into(),
            routing: RoutingConfig::default(),
            format: FormatConfig::default(),
            dead_letter_destination: "outbox.dlq".into(),
            sink: SinkKind::Kafka,
            cleanup: CleanupMode::Keep,
            kafka: KafkaConfig::default(),
            rabbitmq: RabbitMqConfig::default(),
            redis: RedisConfig::default(),
            pipeline: PipelineSettings::default(),
            polling: PollingConfig::default(),
            backoff: BackoffSettings::default(),
            shutdown_grace: Duration::from_secs(30),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9187)),
            metrics_tls_cert_file: None,
            metrics_tls_key_file: None,
            metrics_token: None,
            metrics_max_destinations: crate::metrics::DEFAULT_MAX_DESTINATIONS,
            slot_lag_warning_bytes: 1 << 30,
            slot_failover: None,
            checkpoint_table: None,
            gap_repair_margin: Duration::from_secs(300),
            slot_create: SlotCreate::Auto,
        }
    }
}

/// The polling source's settings (`[polling]`); claims are `pipeline.batch_size` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingConfig {
    /// How often to look for rows when no notification arrives.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Claims in flight at once, each a transaction on a connection of its own.
    pub claims_in_flight: usize,
    /// The `LISTEN` channel the insert trigger notifies.
    pub channel: String,
    /// Install that trigger when missing (needs ownership of the table; without it, the interval).
    pub install_trigger: bool,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            interval: Duration::from_secs(1),
            claims_in_flight: 4,
            channel: "outbox_relay".into(),
            install_trigger: true,
        }
    }
}

/// A configuration value that cannot work, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", describe(.0))]
    Figment(#[from] Box<figment::Error>),
    #[error("cannot read {variable}'s file {path}: {reason}")]
    SecretFile {
        variable: String,
        path: PathBuf,
        reason: String,
    },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// figment's own words, except for an unknown key: its list of known keys nests backticks in
/// backticks and names an environment variable by the key it became.
fn describe(error: &figment::Error) -> String {
    let figment::error::Kind::UnknownField(_, known) = &error.kind else {
        return error.to_string();
    };
    let known = known.join(", ");
    let from_env = error
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains(ENV_PREFIX));
    if from_env {
        let variable = format!("{ENV_PREFIX}{}", error.path.join("__").to_uppercase());
        return format!(
            "unknown environment variable {variable}; the keys known there: {known} (a nested key takes a double underscore, e.g. {ENV_PREFIX}PIPELINE__BATCH_SIZE)"
        );
    }
    let file = match error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) => format!(" in {}", path.display()),
        _ => String::new(),
    };
    format!(
        "unknown key {}{file}; the keys known there: {known}",
        error.path.join(".")
    )
}

impl Config {
    /// Layers the sources; `overrides` holds only the flags given on the command line.
    /// `overrides` is any serializable tree of keys: the flags as JSON, or in tests values as
    /// figment parses environment variables.
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Config, ConfigError> {
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

    /// Only the checkpoint table's name, for `ddl`.
    pub fn load_checkpoint_table(
        file: Option<&Path>,
        overrides: serde_json::Value,
    ) -> Result<Option<String>, ConfigError> {
        let table: Option<String> = layers(file, overrides)?
            .extract_inner("checkpoint_table")
            .map_err(Box::new)?;
        if let Some(table) = &table {
            ranges::table_name("checkpoint_table", table)?;
        }
        Ok(table)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        for (property, path) in &self.kafka.property_files {
            if self.kafka.properties.contains_key(property) {
                return Err(ConfigError::Invalid {
                    key: "kafka.property_files",
                    reason: format!(
                        "{property:?} is set in kafka.properties too; set it in one place"
                    ),
                });
            }
            let value = read_secret(&format!("kafka.property_files.{property:?}"), path)?;
            self.kafka.properties.insert(property.clone(), value);
        }
        let Some(path) = &self.database_url_file else {
            return Ok(());
        };
        if !self.database_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "database_url_file",
                reason: "set either database_url or database_url_file, not both".into(),
            });
        }
        self.database_url = read_secret("database_url_file", path)?;
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
        self.endpoint()?;
        self.router()?;
        ranges::check(self)?;
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
        Database::parse(&self.database_url)
            .map(|database| database.with_default_application_name("outbox-relay"))
            .map_err(|e| ConfigError::Invalid {
                key: "database_url",
                reason: e.to_string(),
            })
    }

    pub fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        let tls = match (&self.metrics_tls_cert_file, &self.metrics_tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "metrics_tls_cert_file",
                    reason: "set both metrics_tls_cert_file and metrics_tls_key_file, or neither"
                        .into(),
                })
            }
        };
        if self.metrics_token.as_deref() == Some("") {
            return Err(ConfigError::Invalid {
                key: "metrics_token",
                reason: "an empty token would let anyone in; leave it unset instead".into(),
            });
        }
        Ok(Endpoint {
            addr: self.metrics_addr,
            tls,
            token: self.metrics_token.clone(),
        })
    }

    /// The router of `destination` and `routing`.
    pub fn router(&self) -> Result<Router, ConfigError> {
        let router = Router::new(&self.destination).map_err(|e| ConfigError::Invalid {
            key: "destination",
            reason: e.to_string(),
        })?;
        Ok(router.with_destination_column(self.routing.destination_column.clone()))
    }

    /// The outbox table with the further columns the routing reads from each row: a missing one
    /// stops the relay at start, naming it.
    pub fn outbox_table(&self) -> Result<OutboxTable, ConfigError> {
        let mut outbox = self.outbox.clone();
        outbox.extra_columns = self.router()?.columns();
        let placed: Vec<String> = self
            .format
            .placements()?
            .into_iter()
            .map(|placement| placement.column)
            .collect();
        // Read again as a further column, so that a NULL tells from the JSON `null`.
        let payload =
            (self.format.tombstone_on_null_payload).then(|| self.outbox.columns.payload.clone());
        for column in self
            .routing
            .key_column
            .iter()
            .chain(&placed)
            .chain(&payload)
        {
            if !outbox.extra_columns.contains(column) {
                outbox.extra_columns.push(column.clone());
            }
        }
        Ok(outbox)
    }

    pub fn polling(&self) -> Result<PollingSettings, ConfigError> {
        Ok(PollingSettings {
            database: self.database()?,
            outbox: self.outbox_table()?,
            cleanup: self.cleanup,
            claim_size: self.pipeline.batch_size,
            claims_in_flight: self.polling.claims_in_flight,
            interval: self.polling.interval,
            channel: self.polling.channel.clone(),
            install_trigger: self.polling.install_trigger,
            until_drained: false,
        })
    }

    pub fn logical(&self) -> Result<LogicalSettings, ConfigError> {
        Ok(LogicalSettings {
            database: self.database()?,
            slot: self.slot.clone(),
            publication: self.publication.clone(),
            outbox: self.outbox_table()?,
            slot_failover: self.slot_failover,
            checkpoint_table: self.checkpoint_table.clone(),
            gap_repair_margin: self.gap_repair_margin,
            slot_create: self.slot_create,
            messages: self.messages.clone(),
        })
    }
}

/// A secret's file, without the surrounding whitespace editors and `echo` leave.
fn read_secret(variable: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|e| ConfigError::SecretFile {
            variable: variable.to_owned(),
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Values of the `OUTBOX_RELAY_<SECRET_KEY>_FILE` variables that are set, keyed as figment nests them.
fn secret_files_from_env() -> Result<figment::value::Dict, ConfigError> {
    let mut values = figment::value::Dict::new();
    for key in SECRET_KEYS {
        let variable = format!("{ENV_PREFIX}{}_FILE", key.to_ascii_uppercase());
        if let Some(path) = std::env::var_os(&variable) {
            let value = read_secret(&variable, Path::new(&path))?;
            insert_path(&mut values, &key.replace("__", "."), value);
        }
    }
    Ok(values)
}

fn insert_path(dict: &mut figment::value::Dict, path: &str, value: String) {
    use figment::value::Value;
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), Value::from(value));
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(figment::value::Dict::new()));
            if let Value::Dict(_, nested) = entry {
                insert_path(nested, rest, value);
            }
        }
    }
}

fn layers(file: Option<&Path>, overrides: impl Serialize) -> Result<Figment, ConfigError> {
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
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    !is_service_link(&key)
                        && !SECRET_KEYS
                            .iter()
                            .any(|secret| key.strip_suffix("_file") == Some(secret))
                })
                .split("__"),
        )
        .merge(Serialized::defaults(secret_files_from_env()?))
        .merge(Serialized::defaults(overrides)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `Config::load` while no other test sets variables: `figment::Jail` takes one lock for all
    /// the tests that do, and they set some that would fail any load (a missing secret's file).
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, ConfigError> {
        let mut loaded = None;
        figment::Jail::expect_with(|_| {
            loaded = Some(Config::load(file, overrides));
            Ok(())
        });
        loaded.expect("the jail ran the closure")
    }

    #[test]
    fn flags_override_defaults() {
        let config = load(
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
        let config = load(Some(&path), json!({"slot": "from_flag"})).unwrap();
        assert_eq!(config.slot, "from_flag");
        assert_eq!(config.pipeline.batch_size, 10);
        assert_eq!(config.pipeline.status_interval, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load(
            None,
            json!({"database_url": "postgres://u@h/db", "pipeline": {"batch_size": "many"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("batch_size"), "{err}");
        let err = load(
            None,
            json!({"database_url": "postgres://u@h/db", "sink": "kafak"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sink"), "{err}");
        let err = load(None, json!({})).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
        let err = load(
            None,
            json!({"database_url": "postgres://u:pw@h/db", "slot": "Bad-Slot"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`slot`"), "{err}");
        let err = load(
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
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn secrets_come_from_files_named_by_file_variables() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("amqp", "amqp://relay:s3cret@mq:5672/%2f\n")?;
            jail.create_file("sasl", "k4fka\n")?;
            jail.create_file(
                "relay.toml",
                "[kafka.property_files]\n\"sasl.password\" = \"sasl\"\n",
            )?;
            jail.set_env("OUTBOX_RELAY_RABBITMQ__URL_FILE", "amqp");
            let config = Config::load(
                Some(Path::new("relay.toml")),
                json!({"database_url": "postgres://u@h/db"}),
            )
            .unwrap();
            assert_eq!(config.rabbitmq.url, "amqp://relay:s3cret@mq:5672/%2f");
            assert_eq!(config.kafka.properties["sasl.password"], "k4fka");

            jail.set_env("OUTBOX_RELAY_REDIS__URL_FILE", "missing");
            let error = Config::load(None, json!({"database_url": "postgres://u@h/db"}))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("OUTBOX_RELAY_REDIS__URL_FILE") && error.contains("missing"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn kafka_properties_from_flags_merge_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "database_url = \"postgres://u@h/db\"\n[kafka.properties]\n\"sasl.username\" = \"relay\"\n\"security.protocol\" = \"SSL\"\n").unwrap();
        let config = load(
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
        let config = load(None, json!({"database_url_file": secret})).unwrap();
        assert_eq!(config.database_url, "postgres://relay:pw@db/orders");
        let err = load(
            None,
            json!({"database_url_file": secret, "database_url": "postgres://x@y/z"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database_url_file"), "{err}");
        let err = load(
            None,
            json!({"database_url_file": dir.path().join("missing")}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn message_events_need_logical_replication_and_a_prefix() {
        let config = load(
            None,
            json!({"database_url": "postgres://u@h/db", "messages": {"enabled": true}}),
        )
        .unwrap();
        assert_eq!(config.messages.prefix, "outbox");
        let err = load(
            None,
            json!({"database_url": "postgres://u@h/db", "mode": "polling", "messages": {"enabled": true}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid value for `messages.enabled`") && err.contains("polling"),
            "{err}"
        );
        let err = load(
            None,
            json!({"database_url": "postgres://u@h/db", "messages": {"prefix": ""}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`messages.prefix`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = load(
            None,
            json!({"database_url": "postgres://u@h/db", "slott": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("slott"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn an_unknown_key_is_named_as_it_was_written_with_the_known_ones() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OUTBOX_RELAY_BATCH_SIZE", "10");
            let err = Config::load(None, json!({})).unwrap_err().to_string();
            assert!(
                err.starts_with("unknown environment variable OUTBOX_RELAY_BATCH_SIZE; the keys known there: mode, ")
                    && err.contains("e.g. OUTBOX_RELAY_PIPELINE__BATCH_SIZE")
                    && !err.contains('`'),
                "{err}"
            );
            jail.clear_env();
            jail.create_file("relay.toml", "[pipeline]\nbatchsize = 10\n")?;
            let err = Config::load(Some(Path::new("relay.toml")), json!({}))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("unknown key pipeline.batchsize in ")
                    && err.ends_with("relay.toml; the keys known there: batch_size, max_in_flight, max_in_flight_bytes, status_interval"),
                "{err}"
            );
            Ok(())
        });
    }
}
