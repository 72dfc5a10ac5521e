//! The delivery check: nothing lost, nothing from rolled-back transactions, per-aggregate order of
//! first deliveries kept, headers carried; duplicates counted (allowed only after faults).

use std::collections::{HashMap, HashSet};

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

pub fn check(written: &Written, received: &[Received]) -> Report {
    let rolled_back: HashSet<&str> = written.rolled_back.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut first_deliveries: HashMap<&str, Vec<&str>> = HashMap::new();
    let (mut duplicates, mut from_rolled_back, mut bad_headers) = (0, 0, 0);
    for message in received {
        let id = message
            .headers
            .get("id")
            .map(String::as_str)
            .unwrap_or_default();
        if !written.per_aggregate.contains_key(&message.key)
            && !written.rolled_back.iter().any(|r| r == id)
        {
            continue; // not part of this workload, e.g. a test's own probe event
        }
        if rolled_back.contains(id) {
            from_rolled_back += 1;
        }
        if !seen.insert(id) {
            duplicates += 1;
            continue;
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
        first_deliveries
            .entry(message.key.as_str())
            .or_default()
            .push(id);
    }
    let mut lost = 0;
    let mut out_of_order = 0;
    for (aggregate, ids) in &written.per_aggregate {
        lost += ids.iter().filter(|id| !seen.contains(id.as_str())).count();
        let arrived: Vec<&str> = first_deliveries
            .get(aggregate.as_str())
            .cloned()
            .unwrap_or_default();
        let expected: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| arrived.contains(id))
            .collect();
        out_of_order += arrived
            .iter()
            .zip(&expected)
            .filter(|(a, e)| a != e)
            .count();
    }
    Report {
        delivered: seen.len(),
        lost,
        duplicates,
        out_of_order,
        from_rolled_back,
        bad_headers,
    }
}
