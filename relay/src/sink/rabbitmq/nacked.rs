//! When RabbitMQ last nacked a message, remembered across sessions: for a while after, the sink
//! publishes one message at a time.
//!
//! A nack (e.g. a full queue with `x-overflow: reject-publish`) refuses one message while the ones
//! published after it may still be accepted once the consumer frees room, and those are then
//! already in the queue. The session ends at the nack; the next one re-sends from the acknowledged
//! position, and waiting for each confirm before the next publish keeps any message from being
//! accepted ahead of one the broker refuses. While the broker refuses, throughput is the consumer's
//! anyway, so the careful mode lasts until the nacked event is confirmed and no nack came for
//! [`CAREFUL_FOR`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long after the last nack publishing stays one message at a time.
pub const CAREFUL_FOR: Duration = Duration::from_secs(10);

/// Shared by the sinks of one relay's sessions; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Nacked(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// The nacked event not confirmed since.
    event_id: Option<String>,
    last: Option<Instant>,
}

impl Nacked {
    /// Whether publishing must wait for each confirm before the next message.
    pub fn careful(&self) -> bool {
        let state = self.lock();
        state.event_id.is_some() || state.last.is_some_and(|at| at.elapsed() < CAREFUL_FOR)
    }

    pub fn nacked(&self, event_id: &str) {
        let mut state = self.lock();
        if state.last.is_none_or(|at| at.elapsed() >= CAREFUL_FOR) {
            tracing::info!(
                event_id,
                "the broker nacked a message: publishing one at a time for a while"
            );
        }
        state.event_id = Some(event_id.to_owned());
        state.last = Some(Instant::now());
    }

    /// Notes that `event_id` was confirmed, which ends the wait for it if it was the nacked one.
    pub fn confirmed(&self, event_id: &str) {
        let mut state = self.lock();
        if state.event_id.as_deref() == Some(event_id) {
            state.event_id = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain values: a panic elsewhere cannot leave them half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
