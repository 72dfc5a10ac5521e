//! An outbox event as the relay carries it from the database to a broker.

use std::time::SystemTime;

use crate::lsn::Lsn;

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
    pub created_at: Option<String>,
    /// Where the row was read, for the log lines.
    pub origin: Origin,
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
}

impl Origin {
    pub fn lsn(self) -> Option<Lsn> {
        match self {
            Origin::Commit(lsn) => Some(lsn),
            Origin::Sequence(_) => None,
        }
    }

    pub fn sequence(self) -> Option<i64> {
        match self {
            Origin::Commit(_) => None,
            Origin::Sequence(seq) => Some(seq),
        }
    }
}

impl Event {
    /// Headers every sink attaches: the event's identity first, then the row's own headers.
    pub fn message_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![
            ("id", self.id.as_str()),
            ("type", self.event_type.as_str()),
            ("aggregatetype", self.aggregate_type.as_str()),
            ("aggregateid", self.aggregate_id.as_str()),
        ];
        if let Some(created_at) = &self.created_at {
            headers.push(("created_at", created_at));
        }
        headers.extend(self.row_headers());
        headers
    }

    /// The row's headers, less any named like an identity header: consumers dedup on `id`, so a
    /// service must not be able to change it by accident.
    fn row_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        const RESERVED: [&str; 5] = ["id", "type", "aggregatetype", "aggregateid", "created_at"];
        self.headers
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
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

    /// The row's headers as one JSON object (Redis Streams and stdout carry them as a field).
    pub fn headers_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .row_headers()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

/// An event with the broker destination the router chose for it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub destination: String,
    pub event: Event,
    /// Set when the broker refused this event for good and it goes to the dead-letter destination.
    pub dead_letter: Option<DeadLetter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: String,
    /// Where the event was meant to go.
    pub destination: String,
}

/// A dead-lettered copy keeps payloads up to this size; larger ones may be why the broker refused
/// the event, and the row itself still holds them.
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 64 * 1024;

impl Routed {
    pub fn new(destination: String, event: Event) -> Routed {
        Routed {
            destination,
            event,
            dead_letter: None,
        }
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

    /// The event's headers, plus the reason and original destination of a dead letter.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = self.event.message_headers();
        if let Some(dead_letter) = &self.dead_letter {
            headers.push(("dlq_reason", &dead_letter.reason));
            headers.push(("dlq_destination", &dead_letter.destination));
            if self.event.payload.len() > DEAD_LETTER_MAX_PAYLOAD {
                headers.push(("dlq_payload_omitted", "true"));
            }
        }
        headers
    }

    /// The payload to send: the event's, except an oversized one in a dead letter.
    pub fn payload(&self) -> &str {
        match &self.dead_letter {
            Some(_) if self.event.payload.len() > DEAD_LETTER_MAX_PAYLOAD => "",
            _ => &self.event.payload,
        }
    }
}
