//! Sources turn a database's committed outbox rows into an ordered stream of [`Change`]s: logical
//! replication where the database allows it, polling the table where it does not.

pub mod leader_lock;
pub mod logical;
pub mod message;
pub mod mode;
pub mod polling;
pub mod snapshot;
pub mod table;

use std::future::Future;

use crate::event::Event;
use crate::lsn::Lsn;
use crate::outbox::MissingColumns;
use crate::pg::catalog::CatalogError;
use crate::pg::pgoutput::DecodeError;
use crate::pg::replication::ReplicationError;

/// What a source yields, in the order events must reach the broker.
// Events are nearly every change: boxing them would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Event(Event),
    /// An event a service emitted with `pg_logical_emit_message` ([`message`]): relayed like a
    /// row's, but no row stands behind it to clean up. `rejected` says why the message goes to the
    /// dead-letter destination instead.
    Message {
        event: Event,
        rejected: Option<String>,
    },
    /// Everything before this position has been yielded: once those events are confirmed by the
    /// broker, the position may be acknowledged to the source.
    Position(Lsn),
    /// The server's heartbeat: a position to acknowledge like a commit, when the source is between
    /// transactions, and whether the server wants a status update now (it drops silent sessions).
    Keepalive {
        position: Option<Lsn>,
        reply_requested: bool,
    },
}

/// A stream of outbox changes with a position that may be acknowledged once the broker confirmed
/// everything before it. Positions only grow; what is not acknowledged comes again after a restart.
pub trait Source: Send {
    /// The name shown in logs and the `mode` metric.
    const MODE: &'static str;
    /// Positions are WAL positions (reported as the acknowledged LSN), not the source's own tickets.
    const POSITION_IS_LSN: bool;

    /// The next change. Cancel-safe: a cancelled call loses nothing.
    fn next(&mut self) -> impl Future<Output = Result<Change, SourceError>> + Send;

    /// Confirms every change before `position`; the source may then forget those events for good.
    fn acknowledge(
        &mut self,
        position: Lsn,
        reply_requested: bool,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Acknowledges `position` and closes the session cleanly.
    fn finish(self, position: Lsn) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// SQLSTATEs after which retrying cannot succeed.
const FATAL_SQLSTATES: &[&str] = &[
    "28000", // invalid authorization: role lacks REPLICATION or is refused by pg_hba.conf
    "28P01", // wrong password
    "42501", // insufficient privilege
    "55000", // object not in prerequisite state: slot invalidated, wal_level too low
];

/// Refused credentials or privileges; for a URL of several hosts, refused by every one of them.
fn replication_is_fatal(error: &ReplicationError) -> bool {
    match error {
        ReplicationError::Server(e) => FATAL_SQLSTATES.contains(&e.code.as_str()),
        ReplicationError::Auth(_) => true,
        ReplicationError::Connect(e) => e.fatal_everywhere(replication_is_fatal),
        ReplicationError::Io(_) | ReplicationError::Protocol(_) => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    #[error("cannot decode the replication stream: {0}")]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Layout(#[from] MissingColumns),
    /// Another relay polls this outbox: PostgreSQL grants its advisory lock to one session at a time.
    #[error("another relay holds the polling lock on {0}")]
    LockHeld(String),
    #[error("the {0} connection to PostgreSQL closed")]
    Closed(&'static str),
    /// A session run to relay a backlog (polling's, or a new slot's snapshot) has relayed and
    /// settled all of it, or found nothing to relay.
    #[error("relayed every row of the backlog")]
    Drained,
    /// The slot is gone and the checkpoint shows where it stood: the rows created since this time
    /// are republished through a snapshot, which creates the slot again.
    #[error("the replication slot is gone; republishing the rows created since {} before streaming", humantime::format_rfc3339_seconds(*.0))]
    SlotLost(std::time::SystemTime),
}

impl SourceError {
    /// Another relay streams from the slot or polls the table: every other relay waits as a standby.
    pub fn is_held_elsewhere(&self) -> bool {
        match self {
            SourceError::Catalog(CatalogError::SlotInUse(_)) | SourceError::LockHeld(_) => true,
            // The slot was taken between the catalog check and START_REPLICATION.
            SourceError::Replication(ReplicationError::Server(e)) => e.code == "55006",
            _ => false,
        }
    }

    pub fn is_fatal(&self) -> bool {
        match self {
            SourceError::Catalog(e) => e.is_fatal(),
            SourceError::Replication(e) => replication_is_fatal(e),
            SourceError::Layout(_) => true,
            SourceError::Decode(_)
            | SourceError::LockHeld(_)
            | SourceError::Closed(_)
            | SourceError::Drained
            | SourceError::SlotLost(_) => false,
        }
    }
}
