//! Keeps the relay running: chooses the source, connects it and the sink, runs pipeline sessions,
//! and restarts them with backoff after transient failures until shut down or a fatal error.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::backoff::Backoff;
use crate::checkpoint::recorder::{Recorder, Writer};
use crate::cleanup::{Cleaner, CleanupMode};
use crate::config::{Config, ConfigError};
use crate::dead_letters::DeadLetters;
use crate::encode;
use crate::gap_repair::{self, Plan};
use crate::lsn::Lsn;
use crate::metrics::{FailureKind, Metrics};
use crate::pg::catalog::{self, CatalogError};
use crate::pipeline::{self, PipelineError, Routing};
use crate::sink::{self, rabbitmq::Nacked, SinkError};
use crate::slot_monitor;
use crate::source::logical::{LogicalSettings, LogicalSource};
use crate::source::mode::{self, Mode};
use crate::source::polling::{PollingSettings, PollingSource};
use crate::source::snapshot::{Snapshot, SnapshotSource};
use crate::source::{Source, SourceError};

/// A session that ran this long was healthy; the next failure starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// How often a standby asks for the slot or the polling lock: a dead leader's session ends with its
/// TCP connection, so either frees almost at once and takeover takes about this long.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// How long the slot or lock must stay busy before this relay counts itself a standby.
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

impl RelayError {
    /// A setting to fix before starting again: the CLI exits with its configuration status.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            RelayError::Config(_)
                | RelayError::Pipeline(PipelineError::Source(SourceError::Catalog(
                    CatalogError::PasswordMissing | CatalogError::Unsupported { .. }
                )))
        )
    }
}

/// Relays until `shutdown` is cancelled (then drains and acknowledges) or a fatal error.
pub async fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    let mut backoff = Backoff::new(config.backoff.clone());
    let Some((mode, drain_first)) = choose_mode(config, &mut backoff, &shutdown).await? else {
        return Ok(());
    };
    if drain_first {
        let mut polling = config.polling()?;
        polling.until_drained = true;
        if !relay(
            config,
            Phase::Polling(Box::new(polling)),
            &metrics,
            &mut backoff,
            &shutdown,
        )
        .await?
        {
            return Ok(());
        }
        let database = config.database()?;
        let ended = async {
            let client = catalog::connect(&database).await?;
            mode::end_switch(&client, &config.publication).await
        };
        match ended.await {
            Ok(()) => tracing::info!("polling relayed every row it had not relayed yet; switching to logical replication"),
            // The mark stays: the next start drains again, re-sending only rows still unmarked.
            Err(e) => tracing::warn!(error = %e, "polling relayed its backlog, but the switch mark on the publication could not be cleared; switching to logical replication"),
        }
    }
    // A new slot first publishes the rows the configuration asks for; an existing one skips this.
    if mode == Mode::Logical
        && config.snapshot != Snapshot::Never
        && snapshot_applies(config).await
        && !relay(
            config,
            Phase::Snapshot(config.snapshot),
            &metrics,
            &mut backoff,
            &shutdown,
        )
        .await?
    {
        return Ok(());
    }
    if mode == Mode::Polling && config.snapshot != Snapshot::Never {
        tracing::info!(snapshot = %config.snapshot, "snapshot applies to a replication slot the relay creates; polling relays every unpublished row anyway");
    }
    let phase = match mode {
        Mode::Polling => Phase::Polling(Box::new(config.polling()?)),
        _ => Phase::Logical,
    };
    relay(config, phase, &metrics, &mut backoff, &shutdown).await?;
    Ok(())
}

/// Records the slot a repair created in the checkpoint.
async fn record_repair(logical: &LogicalSettings) -> Result<(), CatalogError> {
    let Some(table) = &logical.checkpoint_table else {
        return Ok(());
    };
    let client = catalog::connect(&logical.database).await?;
    gap_repair::repaired(&client, &logical.slot, table).await
}

/// Whether `snapshot` applies at this start: not to a slot whose gap the checkpoint repairs (the
/// repair chooses the rows: a configured `since=` could start after the gap), nor under
/// `slot_create = never`, which creates no slot. When the catalog cannot be asked, the snapshot
/// phase finds out for itself whether the slot exists.
async fn snapshot_applies(config: &Config) -> bool {
    let Ok(database) = config.database() else {
        return true;
    };
    let plan = async {
        let client = catalog::connect(&database).await?;
        gap_repair::plan(
            &client,
            &config.slot,
            config.checkpoint_table.as_deref(),
            config.gap_repair_margin,
            config.slot_create,
        )
        .await
    };
    !matches!(plan.await, Ok(Plan::Repair { .. } | Plan::Refuse { .. }))
}

/// What the sessions of one [`relay`] call read from.
enum Phase {
    Polling(Box<PollingSettings>),
    /// The rows already in the outbox, when the relay creates its slot.
    Snapshot(Snapshot),
    Logical,
}

/// Runs sessions of one phase; `Ok(true)` when a draining polling session or a snapshot relayed
/// its backlog, `Ok(false)` when shut down. Logical replication records its positions in the
/// checkpoint table, when one is configured, until the last session ends.
async fn relay(
    config: &Config,
    phase: Phase,
    metrics: &Arc<Metrics>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<bool, RelayError> {
    let logical = config.logical()?;
    let checkpoint = match (&logical.checkpoint_table, &phase) {
        (Some(table), Phase::Logical) => Some(Writer::spawn(
            logical.database.clone(),
            table.clone(),
            logical.slot.clone(),
        )),
        _ => None,
    };
    let (recorder, writer) = checkpoint.unzip();
    let result = sessions(config, phase, metrics, backoff, shutdown, recorder).await;
    if let Some(writer) = writer {
        writer.stop().await;
    }
    result
}

/// The sessions of [`relay`]. A logical phase whose slot was lost republishes the gap the
/// checkpoint shows through a snapshot session first, which creates the slot again.
async fn sessions(
    config: &Config,
    phase: Phase,
    metrics: &Arc<Metrics>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
    recorder: Option<Recorder>,
) -> Result<bool, RelayError> {
    let router = config.router()?;
    let encoder = encode::from_config(config)?;
    let polling = matches!(phase, Phase::Polling(_));
    let mode = if polling {
        Mode::Polling
    } else {
        Mode::Logical
    };
    metrics.set_mode(mode.name());
    let logical = config.logical()?;
    let dead_letters = DeadLetters::default();
    let nacked = Nacked::default();
    // Polling settles rows itself; logical replication reads the WAL and leaves the table alone.
    let cleaner = (!polling && config.cleanup == CleanupMode::Delete)
        .then(|| Cleaner::spawn(logical.database.clone(), logical.outbox.clone()));
    // Stops the slot monitor when the relay stops, however it stops.
    let _stop_monitor = matches!(phase, Phase::Logical).then(|| {
        AbortOnDropHandle::new(tokio::spawn(slot_monitor::run(
            logical.database.clone(),
            logical.slot.clone(),
            config.slot_lag_warning_bytes,
            metrics.clone(),
        )))
    });
    let mut standby_since: Option<Instant> = None;
    let mut standing_by = false;
    let mut repair: Option<Snapshot> = None;
    loop {
        let started = Instant::now();
        let mut acked = Lsn::ZERO;
        let routing = Routing {
            router: &router,
            encoder: encoder.as_ref(),
            dead_letter_destination: &config.dead_letter_destination,
            dead_letters: &dead_letters,
            cleaner: cleaner.as_ref(),
        };
        let snapshot = match (&phase, repair) {
            (Phase::Snapshot(snapshot), _) => Some(*snapshot),
            (Phase::Logical, repair) => repair,
            (Phase::Polling(_), _) => None,
        };
        let result = match (&phase, snapshot) {
            (Phase::Polling(polling), _) => {
                let dead = dead_letters.ids();
                let connect =
                    async { Ok((PollingSource::connect(polling, dead).await?, Lsn::ZERO)) };
                session(
                    connect, config, &routing, &nacked, &mut acked, metrics, shutdown,
                )
                .await
            }
            (_, Some(snapshot)) => {
                let connect = SnapshotSource::connect(&logical, snapshot);
                session(
                    connect, config, &routing, &nacked, &mut acked, metrics, shutdown,
                )
                .await
            }
            (_, None) => {
                let connect = async {
                    let (source, confirmed) = LogicalSource::connect(&logical).await?;
                    Ok((source.recording_to(recorder.clone()), confirmed))
                };
                session(
                    connect, config, &routing, &nacked, &mut acked, metrics, shutdown,
                )
                .await
            }
        };
        metrics.set_ready(false);
        if metrics.leader.get() == 1 {
            // This session held the slot: whatever comes next starts a new standby episode.
            (standby_since, standing_by) = (None, false);
            metrics.leader.set(0);
        }
        let error = match result {
            Ok(()) => return Ok(false),
            // The gap is republished and the slot exists again: stream from it.
            // Until the checkpoint shows the new slot, a session would take it for one made after a
            // failover and repair again: a failure to record it is a failed session.
            Err(PipelineError::Source(SourceError::Drained)) if repair.take().is_some() => {
                match record_repair(&logical).await {
                    Ok(()) => continue,
                    Err(e) if e.is_fatal() => return Err(PipelineError::Source(e.into()).into()),
                    Err(e) => PipelineError::Source(e.into()),
                }
            }
            Err(PipelineError::Source(SourceError::Drained)) => return Ok(true),
            Err(PipelineError::Source(SourceError::SlotLost(since))) => {
                let since = chrono::DateTime::<chrono::Utc>::from(since).fixed_offset();
                repair = Some(Snapshot::Since(since));
                continue;
            }
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => e,
        };
        if matches!(&error, PipelineError::Source(e) if e.is_held_elsewhere()) {
            let since = *standby_since.get_or_insert_with(Instant::now);
            // Our own last session's walsender may hold the slot for a moment after a failure;
            // only a slot busy for longer belongs to another relay.
            if !standing_by && since.elapsed() >= STANDBY_GRACE {
                tracing::info!(mode = mode.name(), reason = %error, "another relay is active on this outbox; standing by to take over");
                // Whatever this relay had in flight is the new leader's now.
                metrics.set_oldest_unconfirmed(None);
                metrics.in_flight_events.set(0);
                standing_by = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_POLL) => continue,
                _ = shutdown.cancelled() => return Ok(false),
            }
        }
        (standby_since, standing_by) = (None, false);
        if let PipelineError::Sink(SinkError::Unacceptable { refusals, .. }) = &error {
            let mut named = std::collections::HashSet::new();
            for refusal in refusals.iter().filter(|r| !r.event_id.is_empty()) {
                // A batch names an event once; another session's refusal of it was its dead letter.
                if !named.insert(&refusal.event_id) {
                    continue;
                }
                if !dead_letters.refused(&refusal.event_id, &refusal.reason) {
                    return Err(RelayError::DeadLetterRefused {
                        event_id: refusal.event_id.clone(),
                        reason: refusal.reason.clone(),
                    });
                }
                tracing::warn!(
                    event_id = %refusal.event_id,
                    destination = %refusal.destination,
                    reason = %refusal.reason,
                    dead_letter_destination = %config.dead_letter_destination,
                    "the broker refuses this event for good; resuming and dead-lettering it"
                );
            }
            if !named.is_empty() {
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
        tracing::warn!(error = %error, acked = %acked, retry_in = ?delay, "relay session failed; resuming from the last acknowledged position after a pause");
        tokio::select! {
            _ = tokio::time::sleep(delay) => metrics.retries.inc(),
            _ = shutdown.cancelled() => return Ok(false),
        }
    }
}

async fn session<S: Source>(
    connect: impl Future<Output = Result<(S, Lsn), SourceError>>,
    config: &Config,
    routing: &Routing<'_>,
    nacked: &Nacked,
    acked: &mut Lsn,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    // The slot or lock first: a standby then never opens broker connections it cannot use. A
    // server that accepts TCP but never answers holds a connect for its timeout (the database's
    // connect_timeout, Kafka's message_timeout: 30 s by default), so a stop signal cuts either short
    // rather than outlast an orchestrator's grace period.
    let (mut source, confirmed) = tokio::select! {
        connected = connect => connected?,
        _ = shutdown.cancelled() => {
            tracing::info!("stopped while connecting to the database");
            return Ok(());
        }
    };
    *acked = confirmed;
    metrics.leader.set(1);
    let mut sink = tokio::select! {
        sink = sink::connect_remembering(config, nacked) => sink?,
        _ = shutdown.cancelled() => {
            source.finish(*acked).await?;
            tracing::info!(acked = %acked, "stopped while connecting to the broker; nothing was in flight");
            return Ok(());
        }
    };
    metrics.set_ready(true);
    // Only now: a session that cannot reach the broker streams nothing, and says so once per retry.
    if S::POSITION_IS_LSN {
        tracing::info!(mode = S::MODE, from = %acked, "streaming the outbox");
    } else {
        tracing::info!(mode = S::MODE, "streaming the outbox");
    }
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
            // The relay stops here: the last acknowledgement must reach the slot first.
            if error.is_fatal() {
                if let Err(e) = source.finish(*acked).await {
                    tracing::warn!(error = %e, acked = %acked, "could not send the last acknowledgement");
                }
            // The source may still be healthy (a broker failed): report how far we got before leaving.
            } else if !matches!(error, PipelineError::Source(_)) {
                let _ = source.acknowledge(*acked, false).await;
            }
            Err(error)
        }
    }
}

/// The configured mode, with `auto` resolved from the database's catalog, and whether polling must
/// first relay the rows it had not relayed before logical replication takes over; `None` when shut
/// down while the database could not be reached.
async fn choose_mode(
    config: &Config,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<Option<(Mode, bool)>, RelayError> {
    if config.mode != Mode::Auto {
        return Ok(Some((config.mode, false)));
    }
    let database = config.database()?;
    let logical = config.logical()?;
    loop {
        let resolved = async {
            let client = catalog::connect(&database).await?;
            let (mode, reason) = mode::resolve(
                config.mode,
                &client,
                &config.slot,
                &config.outbox,
                config.cleanup,
                config.messages.enabled,
            )
            .await?;
            if mode != Mode::Logical {
                return Ok((mode, reason, None));
            }
            let backlog =
                mode::polling_backlog(&client, &config.outbox, &config.slot, &config.publication)
                    .await?;
            if backlog.is_some() {
                mode::begin_switch(&client, &logical).await?;
            }
            Ok::<_, CatalogError>((mode, reason, backlog))
        };
        // A database that accepts TCP but never answers holds a connect for its connect_timeout.
        let resolved = tokio::select! {
            resolved = resolved => resolved,
            _ = shutdown.cancelled() => return Ok(None),
        };
        let error = match resolved {
            Ok((mode, reason, backlog)) => {
                tracing::info!(mode = mode.name(), reason, "mode auto: chose the source");
                if let Some(rows) = backlog {
                    tracing::info!(rows, slot = %config.slot, "polling relays the rows it has not relayed yet (published_at IS NULL) before logical replication takes over; the slot, created now, holds everything committed since");
                }
                backoff.reset();
                return Ok(Some((mode, backlog.is_some())));
            }
            Err(e) => PipelineError::Source(SourceError::Catalog(e)),
        };
        if error.is_fatal() {
            return Err(error.into());
        }
        let Some(delay) = backoff.next_delay() else {
            return Err(RelayError::GaveUp {
                attempts: backoff.attempts(),
                last: error,
            });
        };
        tracing::warn!(error = %error, retry_in = ?delay, "cannot ask the database which source to use; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}
