//! outbox-relay: streams committed outbox rows from PostgreSQL to a message broker.
//!
//! The pipeline is `source` (logical replication) → `router` (destination per event) → `encode`
//! (the message per event) → `sink` (broker),
//! with `pipeline` keeping the acknowledgement rule: the position confirmed to PostgreSQL never passes
//! an event the broker has not confirmed.

pub mod backoff;
pub mod check;
pub mod checkpoint;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod dead_letters;
pub mod encode;
pub mod event;
pub mod gap_repair;
pub mod http;
pub mod json_text;
pub mod lsn;
pub mod metrics;
pub mod outbox;
pub mod pg;
pub mod pipeline;
pub mod replay;
pub mod router;
pub mod sink;
pub mod slot_monitor;
pub mod source;
pub mod status;
pub mod supervisor;
pub mod telemetry;
#[cfg(test)]
mod test_doubles;
