//! Command-line options and the environment variables that stand in for them.

use std::net::SocketAddr;
use std::time::Duration;

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
}

impl Config {
    pub fn database_wait(&self) -> Duration {
        Duration::from_secs(self.database_wait_secs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
