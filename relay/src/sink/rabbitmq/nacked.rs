//! The event RabbitMQ last nacked, remembered across sessions: until it is confirmed, the sink
//! publishes one message at a time.
//!
//! A nack (e.g. a full queue with `x-overflow: reject-publish`) refuses one message while the ones
//! published after it may still be accepted, and once that happened the session's later messages
//! of the aggregate are already in the queue. The session ends at the nack; the next one re-sends
//! from the acknowledged position, and waiting for each confirm before the next publish keeps any
//! message from being accepted ahead of the refused one while the broker is still refusing.

use std::sync::{Arc, Mutex, PoisonError};

/// Shared by the sinks of one relay's sessions; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Nacked(Arc<Mutex<Option<String>>>);

impl Nacked {
    /// Whether a nacked event is still unconfirmed, so publishing must wait for each confirm.
    pub fn careful(&self) -> bool {
        self.lock().is_some()
    }

    pub fn nacked(&self, event_id: &str) {
        *self.lock() = Some(event_id.to_owned());
    }

    /// Ends careful publishing when `event_id` is the event that was nacked.
    pub fn confirmed(&self, event_id: &str) {
        let mut nacked = self.lock();
        if nacked.as_deref() == Some(event_id) {
            tracing::info!(
                event_id,
                "the nacked event is confirmed; publishing with confirms in flight again"
            );
            *nacked = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The value is a plain id: a panic elsewhere cannot leave it half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
