//! An outbox event as the relay carries it from the database to a broker.

use std::time::SystemTime;

use crate::lsn::Lsn;
use crate::router::Field;

/// One committed outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The row's primary key; brokers use it as message id and consumers dedup on it.
    pub id: String,
    pub aggregate_type: String,
    /// Message key: every event of one aggregate goes to one partition, in commit order.
    pub aggregate_id: String,
    pub event_type: String,
    /// The payload as the database rendered it (JSON text for `jsonb`).
    pub payload: String,
    /// The row's `headers` object, values rendered as text; empty when the column is absent or null.
    pub headers: Vec<(String, String)>,
    /// The further columns the configuration reads (destination template, routing, format), by
    /// name, as text; `None` for NULL.
    pub columns: Vec<(String, Option<String>)>,
    pub created_at: Option<String>,
    /// Where the row was read, for the log lines.
    pub origin: Origin,
    /// The id (xid) of the transaction that wrote it, from logical replication's Begin message.
    pub transaction_id: Option<u32>,
    /// When that transaction committed: relay lag and commit-to-ack latency count from here.
    pub committed_at: SystemTime,
}

/// Where in the database an event was read, so that a log line leads an operator to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Logical replication: the commit LSN of the transaction that wrote the row, shared by all its
    /// events.
    Commit(Lsn),
    /// Polling: the row's sequence number; polling reads no WAL, so there is no LSN to give.
    Sequence(i64),
    /// Read from the table in a snapshot (at slot creation, or by `replay`): every row in it
    /// committed before WAL position `before`, and this is the `row`-th row read (from 0).
    Table {
        before: Lsn,
        row: u64,
        /// Republished by `replay`: its messages carry `replayed: true`.
        replayed: bool,
    },
}

impl Origin {
    pub fn lsn(self) -> Option<Lsn> {
        match self {
            Origin::Commit(lsn) => Some(lsn),
            Origin::Sequence(_) | Origin::Table { .. } => None,
        }
    }

    pub fn sequence(self) -> Option<i64> {
        match self {
            Origin::Sequence(seq) => Some(seq),
            Origin::Commit(_) | Origin::Table { .. } => None,
        }
    }

    pub fn is_replayed(self) -> bool {
        matches!(self, Origin::Table { replayed: true, .. })
    }
}

impl Event {
    /// Roughly what the event holds in memory: its payload, headers and identity.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let columns: usize = self
            .columns
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
            .sum();
        self.payload.len()
            + headers
            + columns
            + self.id.len()
            + self.aggregate_type.len()
            + self.aggregate_id.len()
            + self.event_type.len()
    }

    /// A further column's value, by name; `None` when NULL or not read.
    pub fn column(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
    }

    /// The value a destination template's placeholder stands for.
    pub fn field(&self, field: &Field) -> Option<&str> {
        match field {
            Field::AggregateType => Some(&self.aggregate_type),
            Field::EventType => Some(&self.event_type),
            Field::Column(name) => self.column(name),
        }
    }

    /// A header the service put in the row, by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The correlation id a service put in the row's headers, under any of the usual names.
    pub fn correlation_id(&self) -> Option<&str> {
        const NAMES: [&str; 4] = [
            "correlation_id",
            "correlationId",
            "x-correlation-id",
            "X-Correlation-Id",
        ];
        self.headers
            .iter()
            .find(|(key, _)| NAMES.contains(&key.as_str()))
            .map(|(_, value)| value.as_str())
    }
}

/// An event with the broker destination the router chose for it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub destination: String,
    pub event: Event,
    /// Set when the broker refused this event for good and it goes to the dead-letter destination.
    pub dead_letter: Option<DeadLetter>,
    /// The event's place in the outbox, as [`Routed::position`] spells it.
    position: String,
    /// Its index among its transaction's events (logical replication).
    index: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: String,
    /// Where the event was meant to go.
    pub destination: String,
}

impl Routed {
    pub fn new(destination: String, event: Event) -> Routed {
        let position = position(event.origin, 0);
        Routed {
            destination,
            event,
            dead_letter: None,
            position,
            index: None,
        }
    }

    /// Sets the event's index among the events of its transaction (logical replication), which the
    /// pipeline counts since the source always resumes at a transaction's start.
    pub fn with_index(mut self, index: u32) -> Routed {
        self.position = position(self.event.origin, index);
        self.index = self.event.origin.lsn().map(|_| index);
        self
    }

    /// Its index among its transaction's events, in logical replication.
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// Where the event stands in the outbox: commit LSN and index within the transaction, or the
    /// polling sequence number. Fixed-width, so comparing two positions of one aggregate as strings
    /// tells which event was written first, whichever broker reordered them.
    pub fn position(&self) -> &str {
        &self.position
    }

    /// Sends this event to `destination` instead, saying why.
    pub fn dead_lettered(mut self, destination: &str, reason: &str) -> Routed {
        let original = std::mem::replace(&mut self.destination, destination.to_owned());
        self.dead_letter = Some(DeadLetter {
            reason: reason.to_owned(),
            destination: original,
        });
        self
    }
}

/// Fixed-width hexadecimal for the commit LSN and index, zero-padded decimal for the sequence. A
/// row read from the table counts as written just before `before`, where the stream that follows
/// the snapshot starts: the first streamed commit's position sorts after every snapshot row's.
fn position(origin: Origin, index: u32) -> String {
    match origin {
        Origin::Commit(lsn) => format!("{:016X}/{index:08X}", lsn.0),
        Origin::Sequence(seq) => format!("{seq:019}"),
        Origin::Table { before, row, .. } => {
            format!("{:016X}/{row:08X}", before.0.saturating_sub(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(origin: Origin) -> Event {
        Event {
            id: "e-1".to_owned(),
            aggregate_type: "order".to_owned(),
            aggregate_id: "o-1".to_owned(),
            event_type: "Changed".to_owned(),
            payload: "{}".to_owned(),
            headers: Vec::new(),
            columns: Vec::new(),
            created_at: None,
            origin,
            transaction_id: None,
            committed_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn positions_compare_as_strings_in_outbox_order() {
        let at = |lsn: u64, index: u32| {
            Routed::new("d".to_owned(), event(Origin::Commit(Lsn(lsn))))
                .with_index(index)
                .position()
                .to_owned()
        };
        assert_eq!(at(0x16B3748, 10), "00000000016B3748/0000000A");
        assert!(at(0x16B3748, 9) < at(0x16B3748, 10));
        assert!(at(0xFFFF_FFFF, 1000) < at(0x1_0000_0000, 0));
        let seq = |n: i64| {
            Routed::new("d".to_owned(), event(Origin::Sequence(n)))
                .position()
                .to_owned()
        };
        assert_eq!(seq(42), "0000000000000000042");
        assert!(seq(9) < seq(10));
    }

    #[test]
    fn table_rows_sort_before_the_stream() {
        let table = Routed::new(
            "d".to_owned(),
            event(Origin::Table {
                before: Lsn(0x16B3748),
                row: 5,
                replayed: false,
            }),
        );
        assert_eq!(table.position(), "00000000016B3747/00000005");
        let streamed = Routed::new("d".to_owned(), event(Origin::Commit(Lsn(0x16B3748))));
        assert!(table.position() < streamed.position());
    }
}
