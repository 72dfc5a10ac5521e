//! Shared by the sink tests: events with a per-key sequence, publishing with batches in flight as the
//! pipeline does, and checking what a consumer read back.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use harness::Received;
use outbox_relay::config::SinkKind;
use outbox_relay::encode::{Encoder, Native};
use outbox_relay::event::{Event, Origin, Routed};
use outbox_relay::lsn::Lsn;
use outbox_relay::sink::{Delivery, Sink, SinkError};

/// A name no other test (or earlier run) uses, for topics, streams and exchanges.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// `keys` aggregates, `per_key` events each, interleaved round-robin as concurrent writers would
/// produce them; aggregate `k` goes to `destinations[k % destinations.len()]`.
pub fn events(destinations: &[String], keys: usize, per_key: usize) -> Vec<Routed> {
    (0..per_key)
        .flat_map(|seq| (0..keys).map(move |key| (key, seq)))
        .map(|(key, seq)| {
            Routed::new(
                destinations[key % destinations.len()].clone(),
                Event {
                    id: uuid::Uuid::new_v4().to_string(),
                    aggregate_type: "Order".to_owned(),
                    aggregate_id: format!("order-{key}"),
                    event_type: "OrderUpdated".to_owned(),
                    payload: format!(r#"{{"seq":{seq}}}"#),
                    headers: vec![("trace".to_owned(), format!("trace-{key}-{seq}"))],
                    columns: Vec::new(),
                    created_at: None,
                    origin: Origin::Commit(Lsn(seq as u64 + 1)),
                    transaction_id: None,
                    committed_at: std::time::SystemTime::now(),
                },
            )
        })
        .collect()
}

/// Publishes `batch_size` events at a time, encoded in the default format for `kind`, with up to
/// `in_flight` deliveries outstanding, awaiting them oldest first (as the pipeline acknowledges).
/// Returns how long it took.
pub async fn publish_all(
    sink: &mut dyn Sink,
    kind: SinkKind,
    events: Vec<Routed>,
    batch_size: usize,
    in_flight: usize,
) -> Result<Duration, SinkError> {
    let encoder = Native::new(kind);
    let started = Instant::now();
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        if pending.len() == in_flight {
            pending.pop_front().expect("in flight").await?;
        }
        let batch = events
            .by_ref()
            .take(batch_size)
            .map(|routed| {
                encoder
                    .encode(routed)
                    .expect("the default format encodes any event")
            })
            .collect();
        pending.push_back(sink.publish(batch).await?);
    }
    for delivery in pending {
        delivery.await?;
    }
    Ok(started.elapsed())
}

/// Every sent event arrived exactly once, at its destination, with its identity and row headers,
/// and each key's events arrived in the order they were sent.
pub fn assert_delivered_in_order(sent: &[Routed], received: &[Received]) {
    assert_eq!(received.len(), sent.len(), "number of messages received");
    let mut expected: BTreeMap<&str, VecDeque<&Routed>> = BTreeMap::new();
    for routed in sent {
        expected
            .entry(&routed.event.aggregate_id)
            .or_default()
            .push_back(routed);
    }
    for message in received {
        let routed = expected
            .get_mut(message.key.as_str())
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("unexpected message {message:?}"));
        let event = &routed.event;
        assert_eq!(
            message.destination, routed.destination,
            "destination of {message:?}"
        );
        assert_eq!(
            message.payload, event.payload,
            "out of order for key {}",
            message.key
        );
        let identity = [
            ("id", &event.id),
            ("type", &event.event_type),
            ("aggregatetype", &event.aggregate_type),
            ("aggregateid", &event.aggregate_id),
        ];
        let row = event
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value));
        for (name, value) in identity.into_iter().chain(row) {
            assert_eq!(
                message.headers.get(name),
                Some(value),
                "header {name} of {message:?}"
            );
        }
    }
}
