//! Command-line options and the environment variables that stand in for them.

use std::net::SocketAddr;
use std::time::Duration;

use brokers::{Messaging, Mode};
use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "order-service",
    version,
    about = "Orders over HTTP, with their events in the outbox"
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "ORDER_SERVICE_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// PostgreSQL connection URL, e.g. postgres://user:password@host:5432/orders; takes libpq's
    /// sslmode (disable, prefer, require, verify-ca, verify-full), sslrootcert, sslcert and sslkey.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most database connections held at once.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
    /// How long to keep retrying the first database connection at start-up, e.g. while the database
    /// itself starts.
    #[arg(long, env = "DATABASE_WAIT_SECS", default_value_t = 30)]
    pub database_wait_secs: u64,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long each step of an order's invoicing saga waits for its reply before it compensates
    /// (cancels the order) or retries (requests the void again).
    #[arg(long, env = "SAGA_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub saga_timeout_secs: u32,
    /// How often overdue sagas are looked for and timed out, in milliseconds. Unset, deadlines are
    /// recorded but nothing times out; set it together with MESSAGING_MODE, since without the
    /// invoice-service's replies every saga would time out and cancel its order (docs/SAGA.md).
    #[arg(long, env = "SAGA_SWEEP_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub saga_sweep_interval_ms: Option<u64>,
    /// The broker to consume the invoice-service's replies from: kafka, rabbitmq or redis. Unset, no
    /// replies are consumed.
    #[arg(long, env = "MESSAGING_MODE", value_parser = parse_mode)]
    pub messaging_mode: Option<Mode>,
    /// Where the invoice-service's relay publishes its replies (topic, routing key or stream).
    #[arg(long, env = "REPLIES_DESTINATION", default_value = contracts::INVOICE_DESTINATION)]
    pub replies_destination: String,
    /// The consumer group (Kafka, Redis), queue (RabbitMQ) and Redis consumer name.
    #[arg(long, env = "REPLIES_CONSUMER", default_value = "order-service")]
    pub replies_consumer: String,
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap_servers: String,
    #[arg(
        long,
        env = "RABBITMQ_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub rabbitmq_url: String,
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
}

impl Config {
    pub fn database_wait(&self) -> Duration {
        Duration::from_secs(self.database_wait_secs)
    }

    pub fn saga_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.saga_timeout_secs.into())
    }

    /// Where to consume replies from; `None` when no broker is configured.
    pub fn messaging(&self) -> Option<Messaging> {
        self.messaging_mode.map(|mode| {
            let mut messaging =
                Messaging::local(mode, &self.replies_destination, &self.replies_consumer);
            messaging.kafka.brokers = self.kafka_bootstrap_servers.clone();
            messaging.rabbitmq.url = self.rabbitmq_url.clone();
            messaging.redis.url = self.redis_url.clone();
            messaging
        })
    }

    /// `None` when deadlines are not enforced.
    pub fn saga_sweep_interval(&self) -> Option<Duration> {
        self.saga_sweep_interval_ms.map(Duration::from_millis)
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "kafka" => Ok(Mode::Kafka),
        "rabbitmq" => Ok(Mode::Rabbitmq),
        "redis" => Ok(Mode::Redis),
        other => Err(format!("{other:?} is not kafka, rabbitmq or redis")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
