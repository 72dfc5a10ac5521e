//! Command-line interface: subcommands and the flags that override the configuration file and
//! environment.

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::cleanup::CleanupMode;
use crate::config::SinkKind;
use crate::gap_repair::SlotCreate;
use crate::source::mode::Mode;
use crate::source::snapshot::Snapshot;
use crate::source::table::RowFilter;

#[derive(Debug, Parser)]
#[command(
    name = "outbox-relay",
    version,
    about = "Streams committed outbox rows from PostgreSQL to Kafka, RabbitMQ or Redis Streams: at least once, in order per aggregate.",
    after_help = "Configuration is layered: defaults, then --config FILE (TOML), then OUTBOX_RELAY_* environment variables \
(nested keys joined with '__', e.g. OUTBOX_RELAY_KAFKA__BROKERS), then flags."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "OUTBOX_RELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log line format; containers usually want json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OUTBOX_RELAY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `outbox_relay=debug`; defaults to RUST_LOG, then `info`.
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        env = "OUTBOX_RELAY_LOG_LEVEL"
    )]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream the outbox to the broker until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Check every prerequisite (database settings, privileges, table, publication, slot, broker) and print how to fix what fails.
    Check(Box<RunArgs>),
    /// Print the slot's confirmed position, its lag, and the events waiting behind it (polling: the unpublished rows).
    Status(Box<RunArgs>),
    /// Republish rows from the outbox table through the configured sink, in order, each message
    /// marked `replayed: true`; filters narrow the rows, and all given must hold.
    Replay(Box<ReplayArgs>),
    /// Print the SQL that creates the outbox table with the configured names, polling's columns included.
    Ddl(TableArgs),
    /// Drop the relay's replication slot, e.g. when removing a relay for good (an unused slot keeps WAL forever).
    DropSlot(ConnectionArgs),
}

#[derive(Debug, Args, Default)]
pub struct ConnectionArgs {
    /// PostgreSQL URL, e.g. postgres://relay:secret@db:5432/orders.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// A file holding the PostgreSQL URL, e.g. a mounted Kubernetes secret.
    #[arg(long, value_name = "FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<std::path::PathBuf>,
    /// Logical replication slot [default: outbox_relay_slot].
    #[arg(long)]
    pub slot: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct TableArgs {
    /// Outbox table, `schema.table` [default: public.outbox].
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Record the acknowledged position in this table, for gap repair after a lost slot [default: off].
    #[arg(long, value_name = "TABLE")]
    pub checkpoint_table: Option<String>,
}

impl TableArgs {
    /// The flags that were given, shaped like the configuration file.
    pub fn overrides(&self) -> Value {
        let mut root = Map::new();
        if let Some(table) = &self.table {
            root.insert("outbox".into(), json!({ "table": table }));
        }
        if let Some(table) = &self.checkpoint_table {
            root.insert("checkpoint_table".into(), json!(table));
        }
        Value::Object(root)
    }
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub table: TableArgs,
    /// Broker to publish to [default: kafka].
    #[arg(long, value_enum)]
    pub sink: Option<SinkKind>,
    /// Where events come from: logical replication, polling the table, or auto (logical when the
    /// database allows it) [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// When the relay creates its slot, first publish the rows already in the outbox: `never`,
    /// `all`, `since=<RFC 3339>` (by created_at) or `unpublished` (polling's published_at IS NULL)
    /// [default: never].
    #[arg(long, value_name = "CHOICE", value_parser = Snapshot::from_str)]
    pub snapshot: Option<Snapshot>,
    /// Polling: how often to look for rows when no notification arrives, e.g. 500ms [default: 1s].
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Delete outbox rows once the broker confirmed them, or keep them [default: keep].
    #[arg(long, value_enum)]
    pub cleanup: Option<CleanupMode>,
    /// Publication limited to the outbox table [default: outbox_relay_pub].
    #[arg(long)]
    pub publication: Option<String>,
    /// Destination template; `{aggregatetype}` and `{type}` are filled per event [default: outbox.event.{aggregatetype}].
    #[arg(long, value_name = "TEMPLATE")]
    pub destination: Option<String>,
    /// Where events the broker refuses for good are parked, with the reason [default: outbox.dlq].
    #[arg(long, value_name = "NAME")]
    pub dead_letter_destination: Option<String>,
    /// Kafka bootstrap servers, comma-separated [default: 127.0.0.1:9092].
    #[arg(long, value_name = "HOST:PORT,...")]
    pub kafka_brokers: Option<String>,
    /// Any librdkafka property, e.g. `security.protocol=SASL_SSL` or `ssl.ca.location=/etc/ca.pem`;
    /// repeatable, and merged over `[kafka.properties]`.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = key_value)]
    pub kafka_properties: Vec<(String, String)>,
    /// RabbitMQ URL [default: amqp://guest:guest@127.0.0.1:5672/%2f].
    #[arg(long, value_name = "URL")]
    pub rabbitmq_url: Option<String>,
    /// RabbitMQ topic exchange, declared durable [default: outbox].
    #[arg(long, value_name = "NAME")]
    pub rabbitmq_exchange: Option<String>,
    /// Redis URL [default: redis://127.0.0.1:6379].
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Approximate MAXLEN for Redis streams [default: unbounded].
    #[arg(long, value_name = "N")]
    pub redis_maxlen: Option<usize>,
    /// Most events per batch handed to the broker [default: 1000].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Most events handed to the broker and not yet confirmed [default: 20000].
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// The same bound in bytes of payload and headers [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_in_flight_bytes: Option<usize>,
    /// Create the replication slot when it is missing (repairing a gap the checkpoint shows), or stop
    /// with the steps to create it by hand [default: auto].
    #[arg(long, value_enum)]
    pub slot_create: Option<SlotCreate>,
    /// Address of /metrics, /health/live and /health/ready; port 0 picks a free one [default: 127.0.0.1:9187].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args, Default)]
pub struct ReplayArgs {
    /// Rows whose created_at is at or after this RFC 3339 time, e.g. 2026-12-01T00:00:00Z.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub since: Option<DateTime<FixedOffset>>,
    /// Rows whose created_at is before this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub until: Option<DateTime<FixedOffset>>,
    /// Rows of this aggregate type; repeatable.
    #[arg(long = "aggregate-type", value_name = "TYPE")]
    pub aggregate_types: Vec<String>,
    /// Rows of this aggregate id; repeatable.
    #[arg(long = "aggregate-id", value_name = "ID")]
    pub aggregate_ids: Vec<String>,
    /// The row with this id; repeatable.
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// Print how many rows the filters pick, and publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

impl ReplayArgs {
    pub fn filter(&self) -> RowFilter {
        RowFilter {
            since: self.since,
            until: self.until,
            aggregate_types: self.aggregate_types.clone(),
            aggregate_ids: self.aggregate_ids.clone(),
            ids: self.ids.clone(),
            unpublished: false,
        }
    }
}

impl RunArgs {
    /// The flags that were given, shaped like the configuration file.
    pub fn overrides(&self) -> Value {
        let mut root = Map::new();
        let mut put = |path: &[&str], value: Option<Value>| {
            let Some(value) = value else { return };
            let mut map = &mut root;
            for key in &path[..path.len() - 1] {
                map = map
                    .entry(*key)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("override paths do not collide");
            }
            map.insert(path[path.len() - 1].to_owned(), value);
        };
        let c = &self.connection;
        put(&["database_url"], c.database_url.as_ref().map(|v| json!(v)));
        put(
            &["database_url_file"],
            c.database_url_file.as_ref().map(|v| json!(v)),
        );
        put(&["slot"], c.slot.as_ref().map(|v| json!(v)));
        put(
            &["outbox", "table"],
            self.table.table.as_ref().map(|v| json!(v)),
        );
        put(
            &["checkpoint_table"],
            self.table.checkpoint_table.as_ref().map(|v| json!(v)),
        );
        put(&["slot_create"], self.slot_create.map(|v| json!(v)));
        put(&["sink"], self.sink.map(|v| json!(v)));
        put(&["mode"], self.mode.map(|v| json!(v)));
        put(&["snapshot"], self.snapshot.map(|v| json!(v.to_string())));
        put(
            &["polling", "interval"],
            self.poll_interval.as_ref().map(|v| json!(v)),
        );
        put(&["cleanup"], self.cleanup.map(|v| json!(v)));
        put(
            &["publication"],
            self.publication.as_ref().map(|v| json!(v)),
        );
        put(
            &["destination"],
            self.destination.as_ref().map(|v| json!(v)),
        );
        put(
            &["dead_letter_destination"],
            self.dead_letter_destination.as_ref().map(|v| json!(v)),
        );
        put(
            &["kafka", "brokers"],
            self.kafka_brokers.as_ref().map(|v| json!(v)),
        );
        let properties: Map<String, Value> = self
            .kafka_properties
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        put(
            &["kafka", "properties"],
            (!properties.is_empty()).then_some(Value::Object(properties)),
        );
        put(
            &["rabbitmq", "url"],
            self.rabbitmq_url.as_ref().map(|v| json!(v)),
        );
        put(
            &["rabbitmq", "exchange"],
            self.rabbitmq_exchange.as_ref().map(|v| json!(v)),
        );
        put(&["redis", "url"], self.redis_url.as_ref().map(|v| json!(v)));
        put(&["redis", "maxlen"], self.redis_maxlen.map(|v| json!(v)));
        put(
            &["pipeline", "batch_size"],
            self.batch_size.map(|v| json!(v)),
        );
        put(
            &["pipeline", "max_in_flight"],
            self.max_in_flight.map(|v| json!(v)),
        );
        put(
            &["pipeline", "max_in_flight_bytes"],
            self.max_in_flight_bytes.map(|v| json!(v)),
        );
        put(
            &["metrics_addr"],
            self.metrics_addr.map(|v| json!(v.to_string())),
        );
        Value::Object(root)
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_flags_override() {
        let cli = Cli::parse_from([
            "outbox-relay",
            "run",
            "--database-url",
            "postgres://u@h/db",
            "--sink",
            "rabbitmq",
            "--rabbitmq-exchange",
            "events",
            "--batch-size",
            "5",
            "--metrics-addr",
            "0.0.0.0:9300",
            "--kafka-property",
            "security.protocol=SASL_SSL",
            "--kafka-property",
            "sasl.password=a=b",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("parsed {:?}", cli.command)
        };
        assert_eq!(
            args.overrides(),
            json!({
                "database_url": "postgres://u@h/db",
                "sink": "rabbitmq",
                "rabbitmq": {"exchange": "events"},
                "pipeline": {"batch_size": 5},
                "metrics_addr": "0.0.0.0:9300",
                "kafka": {"properties": {"security.protocol": "SASL_SSL", "sasl.password": "a=b"}}
            })
        );
    }

    #[test]
    fn help_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
