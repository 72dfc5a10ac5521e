//! One session: source → router → encoder → sink, with the acknowledgement rule.
//!
//! Batches go to the sink without waiting for earlier ones (a bounded window of in-flight events),
//! and their confirmations are awaited strictly in order. A position from the source is attached to
//! the batch that holds the events before it and acknowledged only when that batch is confirmed, so
//! the position acknowledged to the source never passes an unconfirmed event. Any failure ends the
//! session; the supervisor restarts from the source's acknowledged position, which re-sends at most
//! the unconfirmed window.
//!
//! A batch the broker refuses events of for good ends the session too, but only once every batch
//! in flight has answered: the session ends with all their refusals, so that the next one
//! dead-letters all of them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::cleanup::Cleaner;
use crate::dead_letters::{DeadLetters, Verdict};
use crate::encode::Encoder;
use crate::event::{Event, Origin, Routed};
use crate::lsn::Lsn;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::sink::{Delivery, Refusal, Sink, SinkError};
use crate::source::{Change, Source, SourceError};
use crate::telemetry;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Most events handed to the sink in one batch.
    pub batch_size: usize,
    /// Most events handed to the sink and not yet confirmed; reading from PostgreSQL pauses beyond it.
    pub max_in_flight: usize,
    /// The same bound in bytes of payload and headers, so that large events cannot fill memory
    /// before the event count is reached. One event larger than this still passes, alone.
    pub max_in_flight_bytes: usize,
    /// How often the confirmed position is reported to PostgreSQL.
    #[serde(with = "humantime_serde")]
    pub status_interval: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            batch_size: 1000,
            max_in_flight: 20_000,
            max_in_flight_bytes: 8 * 1024 * 1024,
            status_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl PipelineError {
    pub fn is_fatal(&self) -> bool {
        match self {
            PipelineError::Source(e) => e.is_fatal(),
            PipelineError::Sink(e) => matches!(e, SinkError::Misconfigured { .. }),
        }
    }
}

struct InFlight {
    delivery: Delivery,
    events: usize,
    /// What its events weigh against `max_in_flight_bytes`.
    bytes: usize,
    /// Acknowledged once this batch, and so everything before it, is confirmed.
    position: Option<Lsn>,
    /// What to log or trace per event once confirmed; collected only when debug logging or trace
    /// export is on.
    trace: Vec<Relayed>,
    /// Events per destination, for the published counter.
    destinations: HashMap<String, u64>,
    /// Commit times with their event counts, one entry per transaction in the batch.
    commits: Vec<(SystemTime, u64)>,
    /// Ids of the dead letters, recorded as confirmed so that later sessions skip them.
    dead_lettered: Vec<String>,
    /// Ids of the relayed rows, kept only when rows are cleaned up.
    cleanup_ids: Vec<String>,
}

/// The identity of a relayed event, for the per-event log line.
struct Relayed {
    id: String,
    aggregate_id: String,
    correlation_id: Option<String>,
    destination: String,
    origin: Origin,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Relayed {
    fn of(routed: &Routed) -> Relayed {
        let event = &routed.event;
        Relayed {
            id: event.id.clone(),
            aggregate_id: event.aggregate_id.clone(),
            correlation_id: event.correlation_id().map(str::to_owned),
            destination: routed.destination.clone(),
            origin: event.origin,
            traceparent: event.header("traceparent").map(str::to_owned),
            tracestate: event.header("tracestate").map(str::to_owned),
        }
    }
}

/// Tracks what is handed to the sink and what may be acknowledged.
struct Window<'m> {
    batch: Vec<Routed>,
    batch_position: Option<Lsn>,
    /// The batch's last events have no position after them yet: their transaction is still arriving.
    tail_open: bool,
    in_flight: VecDeque<InFlight>,
    in_flight_events: usize,
    in_flight_bytes: usize,
    batch_bytes: usize,
    /// Ids of the batch's relayed rows (not dead letters, not messages), kept only when rows are
    /// cleaned up.
    batch_cleanup: Vec<String>,
    acked: Lsn,
    /// The transaction of the last event pushed and how many of its events came before: the
    /// source resumes at a transaction's start, so each event's index within it is the same
    /// whichever session reads it.
    transaction: Option<(Origin, u32)>,
    metrics: &'m Metrics,
    encoder: &'m dyn Encoder,
    cleaner: Option<&'m Cleaner>,
    dead_letters: &'m DeadLetters,
}

impl Window<'_> {
    fn pending_events(&self) -> usize {
        self.in_flight_events + self.batch.len()
    }

    fn pending_bytes(&self) -> usize {
        self.in_flight_bytes + self.batch_bytes
    }

    fn is_drained(&self) -> bool {
        self.batch.is_empty() && self.in_flight.is_empty()
    }

    /// The event's index within its transaction.
    fn index(&mut self, origin: Origin) -> u32 {
        let index = match self.transaction {
            Some((last, index)) if last == origin => index + 1,
            _ => 0,
        };
        self.transaction = Some((origin, index));
        index
    }

    /// Adds an event to the batch; `row` when an outbox row stands behind it, which cleanup deletes.
    fn push(&mut self, routed: Routed, row: bool) {
        if row && self.cleaner.is_some() && routed.dead_letter.is_none() {
            self.batch_cleanup.push(routed.event.id.clone());
        }
        self.batch_bytes += routed.event.size();
        self.batch.push(routed);
        self.tail_open = true;
        self.update_gauges();
    }

    /// The oldest unconfirmed event is at the front: of the oldest batch in flight, or of the batch.
    fn update_gauges(&self) {
        let oldest = match self.in_flight.front() {
            Some(front) => front.commits.first().map(|(at, _)| *at),
            None => self.batch.first().map(|r| r.event.committed_at),
        };
        self.metrics.set_oldest_unconfirmed(oldest);
        self.metrics
            .in_flight_events
            .set(self.in_flight_events as i64);
    }

    /// Places a source position after every event received before it.
    fn position(&mut self, lsn: Lsn) {
        self.tail_open = false;
        if !self.batch.is_empty() {
            self.batch_position = Some(lsn);
        } else if let Some(last) = self.in_flight.back_mut() {
            last.position = Some(lsn);
        } else {
            self.acked = self.acked.max(lsn);
        }
    }

    async fn publish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let batch = std::mem::take(&mut self.batch);
        let events = batch.len();
        let bytes = std::mem::take(&mut self.batch_bytes);
        let trace = if tracing::enabled!(tracing::Level::DEBUG) || telemetry::exporting() {
            batch.iter().map(Relayed::of).collect()
        } else {
            Vec::new()
        };
        let mut destinations: HashMap<String, u64> = HashMap::new();
        let mut commits: Vec<(SystemTime, u64)> = Vec::new();
        for routed in &batch {
            match destinations.get_mut(&routed.destination) {
                Some(n) => *n += 1,
                None => {
                    destinations.insert(routed.destination.clone(), 1);
                }
            }
            match commits.last_mut() {
                Some((at, n)) if *at == routed.event.committed_at => *n += 1,
                _ => commits.push((routed.event.committed_at, 1)),
            }
        }
        let dead_lettered = batch
            .iter()
            .filter(|r| r.dead_letter.is_some())
            .map(|r| r.event.id.clone())
            .collect();
        let cleanup_ids = std::mem::take(&mut self.batch_cleanup);
        self.metrics.observe_batch(events);
        let mut messages = Vec::with_capacity(events);
        let mut refusals = Vec::new();
        for routed in batch {
            match self.encoder.encode(routed) {
                Ok(message) => messages.push(message),
                Err(refusal) => refusals.push(refusal),
            }
        }
        let delivery = with_refusals(sink.publish(messages).await?, sink.name(), refusals);
        self.in_flight.push_back(InFlight {
            delivery,
            events,
            bytes,
            position: self.batch_position.take(),
            trace,
            destinations,
            commits,
            dead_lettered,
            cleanup_ids,
        });
        self.in_flight_events += events;
        self.in_flight_bytes += bytes;
        self.update_gauges();
        Ok(())
    }

    fn confirmed(&mut self, sink: &str) {
        let done = self
            .in_flight
            .pop_front()
            .expect("a delivery completed, so one was in flight");
        self.in_flight_events -= done.events;
        self.in_flight_bytes -= done.bytes;
        if let Some(position) = done.position {
            self.acked = self.acked.max(position);
        }
        for event in &done.trace {
            tracing::debug!(
                event_id = %event.id,
                aggregate_id = %event.aggregate_id,
                correlation_id = event.correlation_id.as_deref().unwrap_or(""),
                destination = %event.destination,
                lsn = event.origin.lsn().map(tracing::field::display),
                seq = event.origin.sequence(),
                "relayed"
            );
            telemetry::relayed(
                &event.id,
                &event.destination,
                event.traceparent.as_deref(),
                event.tracestate.as_deref(),
            );
        }
        for (destination, events) in &done.destinations {
            self.metrics.published(sink, destination, *events);
        }
        self.metrics
            .dead_lettered
            .inc_by(done.dead_lettered.len() as u64);
        self.dead_letters.confirmed(&done.dead_lettered);
        if let Some(cleaner) = self.cleaner {
            cleaner.confirmed(done.cleanup_ids);
        }
        for (committed_at, events) in &done.commits {
            self.metrics.observe_commit_to_ack(*committed_at, *events);
        }
        self.update_gauges();
        tracing::debug!(events = done.events, acked = %self.acked, "broker confirmed batch");
    }
}

/// Where events go: the destination template, except for events the broker refused for good,
/// which go to the dead-letter destination (or nowhere once their dead letter is confirmed); and
/// how they are encoded for the sink.
pub struct Routing<'a> {
    pub router: &'a Router,
    pub encoder: &'a dyn Encoder,
    pub dead_letter_destination: &'a str,
    pub dead_letters: &'a DeadLetters,
    /// Deletes rows once relayed, when the configuration asks for it.
    pub cleaner: Option<&'a Cleaner>,
}

impl Routing<'_> {
    fn route(&self, event: Event, index: u32) -> Option<Routed> {
        let routed = self.router.route(event).with_index(index);
        Some(match self.dead_letters.verdict(&routed.event.id) {
            Verdict::Skip => return None,
            Verdict::DeadLetter(reason) => self.dead_letter(routed, &reason),
            Verdict::Relay => routed,
        })
    }

    /// Routes an emitted message: like a row's event, or to the dead letters when the source
    /// rejected it. A rejected message is dead-lettered by every session that reads it, as its
    /// content will not change.
    fn route_message(&self, event: Event, index: u32, rejected: Option<String>) -> Option<Routed> {
        match rejected {
            None => self.route(event, index),
            Some(reason) => {
                let routed = self.router.route(event).with_index(index);
                Some(self.dead_letter(routed, &reason))
            }
        }
    }

    fn dead_letter(&self, routed: Routed, reason: &str) -> Routed {
        let event = &routed.event;
        tracing::warn!(
            event_id = %event.id,
            aggregate_id = %event.aggregate_id,
            correlation_id = event.correlation_id().unwrap_or(""),
            lsn = event.origin.lsn().map(tracing::field::display),
            seq = event.origin.sequence(),
            destination = %routed.destination,
            reason = %reason,
            "dead-lettering the event"
        );
        routed.dead_lettered(self.dead_letter_destination, reason)
    }
}

/// Runs until `shutdown` (then drains and returns the position to acknowledge) or the first error.
/// `acked` is the position already confirmed; it is updated as batches are confirmed, so that on
/// error the caller still knows how far the session got.
pub async fn run<S: Source>(
    source: &mut S,
    sink: &mut dyn Sink,
    routing: &Routing<'_>,
    settings: &PipelineSettings,
    acked: &mut Lsn,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    let mut window = Window {
        batch: Vec::with_capacity(settings.batch_size),
        batch_position: None,
        tail_open: false,
        in_flight: VecDeque::new(),
        in_flight_events: 0,
        in_flight_bytes: 0,
        batch_bytes: 0,
        batch_cleanup: Vec::new(),
        acked: *acked,
        transaction: None,
        metrics,
        encoder: routing.encoder,
        cleaner: routing.cleaner,
        dead_letters: routing.dead_letters,
    };
    let mut reported = *acked;
    let mut last_report = Instant::now();
    let mut ticker = tokio::time::interval(settings.status_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut draining = false;
    // A source that cannot go on (rows it cannot interpret) stops reading, but what it yielded
    // before is still delivered and acknowledged, so a restart does not re-send it.
    let mut stopped: Option<SourceError> = None;

    loop {
        *acked = window.acked;
        if draining && window.is_drained() {
            return stopped.map_or(Ok(()), |e| Err(e.into()));
        }
        let can_read = !draining
            && window.pending_events() < settings.max_in_flight
            && window.pending_bytes() < settings.max_in_flight_bytes;
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !draining => {
                tracing::info!(in_flight = window.pending_events(), "shutting down: draining in-flight events");
                draining = true;
            }
            // Before the source, which under a backlog is always ready and would starve it.
            _ = ticker.tick() => {
                // Report positions acknowledged between transactions, and at least every ten seconds
                // so the server knows we are alive even while the window is full and nothing is read.
                if window.acked > reported || last_report.elapsed() >= Duration::from_secs(10) {
                    report(source, window.acked, metrics).await?;
                    (reported, last_report) = (window.acked, Instant::now());
                }
            }
            result = next_delivery(&mut window.in_flight), if !window.in_flight.is_empty() => {
                if let Err(SinkError::Unacceptable { sink, refusals }) = result {
                    let refusals = collect_refusals(&mut window.in_flight, refusals).await;
                    return Err(SinkError::Unacceptable { sink, refusals }.into());
                }
                result?;
                window.confirmed(sink.name());
                // Report at once, so that a crash re-sends no more than the unconfirmed window.
                if window.acked > reported {
                    report(source, window.acked, metrics).await?;
                    (reported, last_report) = (window.acked, Instant::now());
                }
            }
            change = source.next(), if can_read => match change {
                Err(error) if error.is_fatal() => {
                    tracing::error!(%error, in_flight = window.pending_events(), "the source cannot go on; delivering what it read before stopping");
                    stopped = Some(error);
                    draining = true;
                }
                Err(error) => return Err(error.into()),
                Ok(Change::Event(event)) => {
                    let index = window.index(event.origin);
                    let Some(routed) = routing.route(event, index) else {
                        continue;
                    };
                    window.push(routed, true);
                    if window.batch.len() >= settings.batch_size {
                        window.publish(sink).await?;
                    }
                }
                Ok(Change::Message { event, rejected }) => {
                    let index = window.index(event.origin);
                    let Some(routed) = routing.route_message(event, index, rejected) else {
                        continue;
                    };
                    window.push(routed, false);
                    if window.batch.len() >= settings.batch_size {
                        window.publish(sink).await?;
                    }
                }
                Ok(Change::Position(lsn)) => {
                    window.position(lsn);
                    // Its events may all be confirmed already (a polling claim that filled one
                    // batch): report now rather than at the next tick.
                    if window.acked > reported {
                        report(source, window.acked, metrics).await?;
                        (reported, last_report) = (window.acked, Instant::now());
                    }
                }
                Ok(Change::Keepalive { position, reply_requested }) => {
                    if let Some(lsn) = position {
                        window.position(lsn);
                    }
                    if reply_requested {
                        report(source, window.acked, metrics).await?;
                        (reported, last_report) = (window.acked, Instant::now());
                    }
                }
            },
            // Reached only when nothing else is ready: the stream has paused, so send what we have,
            // but only at a transaction's end. Messages reach us one at a time, so the stream
            // pauses inside most transactions; sending there would split each into round trips of
            // one or two events, which at a few thousand events/s costs more CPU than the relay has.
            _ = std::future::ready(()),
                if !window.batch.is_empty() && (!window.tail_open || draining || !can_read) => {
                window.publish(sink).await?;
            }
        }
    }
}

/// Confirms `acked` to PostgreSQL, which may then recycle the WAL before it.
async fn report<S: Source>(
    source: &mut S,
    acked: Lsn,
    metrics: &Metrics,
) -> Result<(), SourceError> {
    source.acknowledge(acked, false).await?;
    if S::POSITION_IS_LSN {
        metrics.acknowledged(acked);
    }
    Ok(())
}

/// Awaits the batches in flight after one with refusals, adding theirs: nothing of them is
/// acknowledged, as the refused events come first. Stops at any other failure, which the next
/// session meets again.
async fn collect_refusals(
    in_flight: &mut VecDeque<InFlight>,
    mut refusals: Vec<Refusal>,
) -> Vec<Refusal> {
    in_flight.pop_front();
    for later in in_flight.iter_mut() {
        match later.delivery.as_mut().await {
            Ok(()) => {}
            Err(SinkError::Unacceptable { refusals: more, .. }) => refusals.extend(more),
            Err(_) => break,
        }
    }
    refusals
}

/// The batch's delivery, failing with the events the encoder refused once the others are
/// confirmed: they are dead-lettered as the broker's refusals are.
fn with_refusals(delivery: Delivery, sink: &'static str, mut refused: Vec<Refusal>) -> Delivery {
    if refused.is_empty() {
        return delivery;
    }
    Box::pin(async move {
        match delivery.await {
            Ok(()) => Err(SinkError::Unacceptable {
                sink,
                refusals: refused,
            }),
            Err(SinkError::Unacceptable { sink, refusals }) => {
                refused.extend(refusals);
                Err(SinkError::Unacceptable {
                    sink,
                    refusals: refused,
                })
            }
            Err(other) => Err(other),
        }
    })
}

async fn next_delivery(in_flight: &mut VecDeque<InFlight>) -> Result<(), SinkError> {
    match in_flight.front_mut() {
        Some(front) => front.delivery.as_mut().await,
        None => std::future::pending().await,
    }
}
