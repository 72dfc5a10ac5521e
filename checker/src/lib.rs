//! Delivery checker for the outbox relay: writes a workload of K aggregates × N events through a
//! real outbox table, reads what arrived at the broker, and counts per aggregate what was lost,
//! duplicated and delivered out of order.
//!
//! The flow is `workload` (write the rows) → `expected` (what should arrive, from the table or from
//! the run's shape) → `broker` (read the destination) → `tally` (compare) → `report` (print). The
//! counting in `tally` is independent of the workload, so the relay's own tests use it too.

pub mod broker;
pub mod error;
pub mod event;
pub mod expected;
pub mod report;
pub mod table;
pub mod tally;
pub mod verify;
pub mod workload;

pub use error::Error;
pub use tally::{tally, Counts, Tally};
