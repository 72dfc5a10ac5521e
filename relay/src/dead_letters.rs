//! Events the broker refused for good, kept across a relay's sessions: why, and whether their dead
//! letter has been confirmed.
//!
//! A session that ends on refusals is followed by one that dead-letters them; it re-reads the
//! unacknowledged transaction from its start, so a dead letter confirmed by an earlier session is
//! skipped rather than sent again, and each refused event costs one dead letter.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
pub struct DeadLetters(Mutex<HashMap<String, Entry>>);

#[derive(Debug)]
struct Entry {
    reason: String,
    confirmed: bool,
}

/// What to do with an event, by its id.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Relay,
    /// Send it to the dead-letter destination, saying why.
    DeadLetter(String),
    /// Its dead letter is confirmed already.
    Skip,
}

impl DeadLetters {
    /// Records a refusal; false when the event was refused already, that is, as a dead letter.
    pub fn refused(&self, event_id: &str, reason: &str) -> bool {
        let mut entries = self.lock();
        if entries.contains_key(event_id) {
            return false;
        }
        entries.insert(
            event_id.to_owned(),
            Entry {
                reason: reason.to_owned(),
                confirmed: false,
            },
        );
        true
    }

    pub fn verdict(&self, event_id: &str) -> Verdict {
        match self.lock().get(event_id) {
            None => Verdict::Relay,
            Some(entry) if entry.confirmed => Verdict::Skip,
            Some(entry) => Verdict::DeadLetter(entry.reason.clone()),
        }
    }

    /// The broker confirmed these events' dead letters.
    pub fn confirmed(&self, event_ids: &[String]) {
        let mut entries = self.lock();
        for id in event_ids {
            if let Some(entry) = entries.get_mut(id) {
                entry.confirmed = true;
            }
        }
    }

    pub fn ids(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Each update is one map operation: a panic elsewhere cannot leave an entry half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
