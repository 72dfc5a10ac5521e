//! Keeps the relay running: connects the sink and the source, runs pipeline sessions, and restarts
//! them with backoff after transient failures until shut down or a fatal error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::cleanup::{Cleaner, CleanupMode};
use crate::config::{Config, ConfigError};
use crate::lsn::Lsn;
use crate::metrics::{FailureKind, Metrics};
use crate::pipeline::{self, PipelineError, Routing};
use crate::router::Router;
use crate::sink::{self, SinkError};
use crate::slot_monitor;
use crate::source::logical::LogicalSource;

/// A session that ran this long was healthy; the next failure starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// How often a standby asks for the slot: a dead leader's session ends with its TCP connection,
/// so the slot frees almost at once and takeover takes about this long.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// How long the slot must stay busy before this relay counts itself a standby.
const STANDBY_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("event {event_id} cannot be dead-lettered either ({reason}); fix dead_letter_destination or the broker, then restart")]
    DeadLetterRefused { event_id: String, reason: String },
    #[error("gave up after {attempts} failed attempts (backoff.max_attempts); last error: {last}")]
    GaveUp { attempts: u32, last: PipelineError },
}

/// Relays until `shutdown` is cancelled (then drains and acknowledges) or a fatal error.
pub async fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    let router = Router::new(&config.destination).map_err(|e| ConfigError::Invalid {
        key: "destination",
        reason: e.to_string(),
    })?;
    let settings = config.logical()?;
    let mut backoff = Backoff::new(config.backoff.clone());
    let mut dead_letters = HashMap::new();
    let cleaner = (config.cleanup == CleanupMode::Delete)
        .then(|| Cleaner::spawn(settings.database.clone(), settings.outbox.clone()));
    let monitor = tokio::spawn(slot_monitor::run(
        settings.database.clone(),
        settings.slot.clone(),
        config.slot_lag_warning_bytes,
        metrics.clone(),
    ));
    let _stop_monitor = AbortOnDrop(monitor);
    let mut standby_since: Option<Instant> = None;
    let mut standing_by = false;
    loop {
        let started = Instant::now();
        let mut acked = Lsn::ZERO;
        let routing = Routing {
            router: &router,
            dead_letter_destination: &config.dead_letter_destination,
            dead_letters: &dead_letters,
            cleaner: cleaner.as_ref(),
        };
        let result = session(config, &settings, &routing, &mut acked, &metrics, &shutdown).await;
        metrics.set_ready(false);
        if metrics.leader.get() == 1 {
            // This session held the slot: whatever comes next starts a new standby episode.
            (standby_since, standing_by) = (None, false);
            metrics.leader.set(0);
        }
        let error = match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => e,
        };
        if matches!(&error, PipelineError::Source(e) if e.is_slot_in_use()) {
            let since = *standby_since.get_or_insert_with(Instant::now);
            // Our own last session's walsender may hold the slot for a moment after a failure;
            // only a slot busy for longer belongs to another relay.
            if !standing_by && since.elapsed() >= STANDBY_GRACE {
                tracing::info!(slot = %settings.slot, "another relay streams from the slot; standing by to take over");
                // Whatever this relay had in flight is the new leader's now.
                metrics.set_oldest_unconfirmed(None);
                metrics.in_flight_events.set(0);
                standing_by = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_POLL) => continue,
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
        (standby_since, standing_by) = (None, false);
        if let PipelineError::Sink(SinkError::Unacceptable {
            event_id,
            destination,
            reason,
            ..
        }) = &error
        {
            if dead_letters.contains_key(event_id) {
                return Err(RelayError::DeadLetterRefused {
                    event_id: event_id.clone(),
                    reason: reason.clone(),
                });
            }
            if !event_id.is_empty() {
                tracing::warn!(
                    event_id,
                    destination,
                    reason,
                    dead_letter_destination = %config.dead_letter_destination,
                    "the broker refuses this event for good; resuming from the slot and dead-lettering it"
                );
                dead_letters.insert(event_id.clone(), reason.clone());
                continue;
            }
        }
        metrics.failed(match error {
            PipelineError::Source(_) => FailureKind::Database,
            PipelineError::Sink(_) => FailureKind::Broker,
        });
        if started.elapsed() >= HEALTHY_SESSION {
            backoff.reset();
        }
        let Some(delay) = backoff.next_delay() else {
            return Err(RelayError::GaveUp {
                attempts: backoff.attempts(),
                last: error,
            });
        };
        tracing::warn!(error = %error, acked = %acked, retry_in = ?delay, "relay session failed; resuming from the slot after a pause");
        tokio::select! {
            _ = tokio::time::sleep(delay) => metrics.retries.inc(),
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

async fn session(
    config: &Config,
    settings: &crate::source::logical::LogicalSettings,
    routing: &Routing<'_>,
    acked: &mut Lsn,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    // The slot first: a standby then never opens broker connections it cannot use.
    let (mut source, confirmed) = LogicalSource::connect(settings).await?;
    *acked = confirmed;
    metrics.leader.set(1);
    let mut sink = sink::connect(config).await?;
    metrics.set_ready(true);
    match pipeline::run(
        &mut source,
        sink.as_mut(),
        routing,
        &config.pipeline,
        acked,
        metrics,
        shutdown,
    )
    .await
    {
        Ok(()) => {
            source.finish(*acked).await?;
            tracing::info!(acked = %acked, "drained and acknowledged; stopped");
            Ok(())
        }
        Err(error) => {
            // The source may still be healthy (a broker failed): report how far we got before leaving.
            if !matches!(error, PipelineError::Source(_)) {
                let _ = source.send_status(*acked, false).await;
            }
            Err(error)
        }
    }
}

/// Stops the slot monitor when the relay stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
