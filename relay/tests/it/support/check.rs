//! The delivery check: nothing lost, nothing from rolled-back transactions, per-aggregate order of
//! first deliveries kept, headers carried; duplicates counted (allowed only after faults).
//!
//! Lost, duplicated and out-of-order events are counted by the `relay-check` library, as the
//! `relay-check verify` command counts them; what only these tests know (rolled-back ids, the
//! headers each event was written with) is checked here.

use std::collections::HashSet;

use super::workload::Written;
use harness::Received;

#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub out_of_order: usize,
    pub from_rolled_back: usize,
    pub bad_headers: usize,
}

impl Report {
    /// Panics unless every committed event arrived, in order, with its headers.
    pub fn assert_lossless(&self) {
        assert_eq!(
            (
                self.lost,
                self.out_of_order,
                self.from_rolled_back,
                self.bad_headers
            ),
            (0, 0, 0, 0),
            "{self:?}"
        );
    }
}

fn id(message: &Received) -> &str {
    message
        .headers
        .get("id")
        .map(String::as_str)
        .unwrap_or_default()
}

pub fn check(written: &Written, received: &[Received]) -> Report {
    let rolled_back: HashSet<&str> = written.rolled_back.iter().map(String::as_str).collect();
    let tally = relay_check::tally(
        written
            .per_aggregate
            .iter()
            .map(|(aggregate, ids)| (aggregate.as_str(), ids.as_slice())),
        received.iter().map(id),
    );
    let totals = tally.totals();
    let mut first_seen = HashSet::new();
    let (mut from_rolled_back, mut bad_headers) = (0, 0);
    for message in received {
        let id = id(message);
        if rolled_back.contains(id) {
            from_rolled_back += 1;
            continue;
        }
        if !written.per_aggregate.contains_key(&message.key) || !first_seen.insert(id) {
            continue; // a test's own probe event, or a duplicate whose first copy was checked
        }
        let expected_correlation = written.correlation.get(id);
        if expected_correlation.is_none()
            || message.headers.get("correlation_id") != expected_correlation
            || !message.headers.contains_key("traceparent")
            || !message.headers.contains_key("created_at")
            || message.headers.get("aggregateid") != Some(&message.key)
            || message.headers.get("type").map(String::as_str) != Some("Changed")
        {
            bad_headers += 1;
        }
    }
    Report {
        delivered: totals.received - totals.duplicated,
        lost: totals.lost,
        duplicates: totals.duplicated,
        out_of_order: totals.out_of_order,
        from_rolled_back,
        bad_headers,
    }
}
