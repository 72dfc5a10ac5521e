//! Sources turn a database's committed outbox rows into an ordered stream of [`Change`]s.

pub mod logical;

use crate::event::Event;
use crate::lsn::Lsn;

/// What a source yields, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Event(Event),
    /// Everything before this position has been yielded: once those events are confirmed by the
    /// broker, the position may be acknowledged to the database.
    Position(Lsn),
    /// The server's heartbeat: a position to acknowledge like a commit, when the source is between
    /// transactions, and whether the server wants a status update now (it drops silent sessions).
    Keepalive {
        position: Option<Lsn>,
        reply_requested: bool,
    },
}
