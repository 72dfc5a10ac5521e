//! `outbox-relay replay`: republishes rows from the outbox table through the configured sink, in
//! the order polling relays them, for an operator repairing a gap by hand or a consumer rebuilding
//! its state. The rows are read in one snapshot and go through the ordinary pipeline (batches,
//! order per aggregate, confirmations); every message carries `replayed: true`.
//!
//! Replay touches neither the slot nor the polling marks: it republishes, it does not relay. A row
//! the broker refuses for good stops it (exit 1) rather than going to the dead-letter destination,
//! since an operator is there to look.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::dead_letters::DeadLetters;
use crate::encode;
use crate::lsn::Lsn;
use crate::metrics::Metrics;
use crate::pg::catalog::{self, CatalogError};
use crate::pipeline::{self, PipelineError, Routing};
use crate::sink::{self, rabbitmq::Nacked};
use crate::source::table::{RowFilter, TableReading, TableSource};
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("stopped after {confirmed} of {rows} events were confirmed; run the same replay again to republish them all")]
    Interrupted { confirmed: u64, rows: i64 },
}

impl From<SourceError> for ReplayError {
    fn from(error: SourceError) -> ReplayError {
        ReplayError::Pipeline(error.into())
    }
}

impl From<CatalogError> for ReplayError {
    fn from(error: CatalogError) -> ReplayError {
        SourceError::from(error).into()
    }
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// A dry run: how many rows the filter picks.
    Counted(i64),
    /// Every picked row was republished and the broker confirmed it.
    Published(i64),
}

/// Republishes the rows `filter` picks (or only counts them), until done or `shutdown`.
pub async fn run(
    config: &Config,
    filter: &RowFilter,
    dry_run: bool,
    shutdown: &CancellationToken,
) -> Result<Replayed, ReplayError> {
    let router = config.router()?;
    let encoder = encode::from_config(config)?;
    let client = catalog::connect(&config.database()?).await?;
    let reading = TableReading::prepare(&client, &config.outbox_table()?, filter).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(CatalogError::Query)?;
    // The snapshot is taken at this first query: every row it shows committed before this WAL
    // position, which the messages' `outbox_position` is built on.
    let before: String = client
        .query_one(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                          ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await
        .map_err(CatalogError::Query)?
        .get(0);
    let before = catalog::parse_lsn(before)?;
    let rows = reading.count(&client).await?;
    if dry_run {
        return Ok(Replayed::Counted(rows));
    }
    let started = Instant::now();
    let mut source = TableSource::open(client, &reading, before, true).await?;
    let mut sink = sink::connect_remembering(config, &Nacked::default())
        .await
        .map_err(PipelineError::from)?;
    let sink_name = format!("{:?}", config.sink).to_lowercase();
    let metrics = Metrics::with_max_destinations(&sink_name, config.metrics_max_destinations);
    let dead_letters = DeadLetters::default();
    let routing = Routing {
        router: &router,
        encoder: encoder.as_ref(),
        dead_letter_destination: &config.dead_letter_destination,
        dead_letters: &dead_letters,
        cleaner: None,
    };
    let mut acked = Lsn::ZERO;
    let result = pipeline::run(
        &mut source,
        sink.as_mut(),
        &routing,
        &config.pipeline,
        &mut acked,
        &metrics,
        shutdown,
    )
    .await;
    match result {
        Err(PipelineError::Source(SourceError::Drained)) => {
            tracing::info!(rows, elapsed = ?started.elapsed(), "replayed every row the filter picks");
            Ok(Replayed::Published(rows))
        }
        // Positions count confirmed rows plus one.
        Ok(()) => Err(ReplayError::Interrupted {
            confirmed: acked.0.saturating_sub(1),
            rows,
        }),
        Err(error) => Err(error.into()),
    }
}
