//! The `order-service` binary: reads its configuration, sets up logging, waits for the database,
//! migrates the schema, consumes the saga's replies, sweeps overdue sagas and serves HTTP until SIGTERM
//! or SIGINT.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use order_service::config::{Config, LogFormat};
use order_service::service::OrderService;
use order_service::store::{self, Pool};
use order_service::{consumer, http, shutdown, sweeper};
use pgconn::report;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    let pool = store::connect(&config.database_url, config.pool_size)?;
    migrate(&pool, config.database_wait()).await?;
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
    let signalled = shutdown::signalled();
    let shutdown = async move {
        if let Err(error) = signalled.await {
            tracing::error!(%error, "cannot wait for signals; stopping");
        }
    };
    let service = OrderService::new(pool).with_saga_timeout(config.saga_timeout());
    match config.saga_sweep_interval() {
        // Dropped with the runtime when main returns: a sweep cut short leaves its saga as it was.
        Some(interval) => drop(tokio::spawn(sweeper::run(service.clone(), interval))),
        None => tracing::info!("saga deadlines are recorded but not enforced"),
    }
    match config.messaging() {
        // Dropped with the runtime: a reply in progress stays unacknowledged and comes again.
        Some(messaging) => drop(tokio::spawn(consumer::run(messaging, service.clone()))),
        None => tracing::info!("no MESSAGING_MODE: the invoice-service's replies are not consumed"),
    }
    http::serve(listener, service, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Retries the first connection until `wait` has passed, so that the service may start before its
/// database.
async fn migrate(pool: &Pool, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut client = loop {
        match pool.get().await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(error = %report::chain(&error), "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error).context("cannot connect to the database"),
        }
    };
    let applied = store::migrate(&mut client)
        .await
        .context("cannot migrate the database schema")?;
    tracing::info!(?applied, "database schema up to date");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files and log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
