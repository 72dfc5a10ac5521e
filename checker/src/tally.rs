//! Counting what arrived against what was committed, per aggregate: lost (never arrived),
//! duplicated (arrived again), out of order (a first delivery that came after a newer event of its
//! aggregate). Duplicates are allowed by at-least-once delivery; losses and reorders are not.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Counts for one aggregate, or summed over all of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub expected: usize,
    /// Every arrival, duplicates included.
    pub received: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub per_aggregate: BTreeMap<String, Counts>,
    /// Arrivals that are no expected event: another workload's, or a rolled-back one.
    pub unexpected: usize,
}

impl Tally {
    pub fn totals(&self) -> Counts {
        let mut totals = Counts::default();
        for counts in self.per_aggregate.values() {
            totals.add(counts);
        }
        totals
    }

    /// Nothing lost and nothing out of order; duplicates do not fail a run.
    pub fn passed(&self) -> bool {
        let totals = self.totals();
        totals.lost == 0 && totals.out_of_order == 0
    }
}

/// Compares `received`, in arrival order, with `expected`: each aggregate's events in commit order.
/// Event keys are anything that identifies an event, e.g. its id or its sequence number.
pub fn tally<'e, K, Q>(
    expected: impl IntoIterator<Item = (&'e str, &'e [K])>,
    received: impl IntoIterator<Item = &'e Q>,
) -> Tally
where
    K: Borrow<Q> + 'e,
    Q: Hash + Eq + ?Sized + 'e,
{
    let mut names = Vec::new();
    let mut counts = Vec::new();
    let mut seen: Vec<Vec<bool>> = Vec::new();
    // Per event: its aggregate's index and its position in commit order.
    let mut index: HashMap<&Q, (usize, usize)> = HashMap::new();
    for (aggregate, events) in expected {
        let a = names.len();
        names.push(aggregate.to_owned());
        counts.push(Counts {
            expected: events.len(),
            ..Counts::default()
        });
        seen.push(vec![false; events.len()]);
        for (position, event) in events.iter().enumerate() {
            index.insert(event.borrow(), (a, position));
        }
    }
    // Per aggregate: the newest position delivered so far.
    let mut newest: Vec<Option<usize>> = vec![None; names.len()];
    let mut unexpected = 0;
    for event in received {
        let Some(&(a, position)) = index.get(event) else {
            unexpected += 1;
            continue;
        };
        counts[a].received += 1;
        if seen[a][position] {
            counts[a].duplicated += 1;
            continue;
        }
        seen[a][position] = true;
        match newest[a] {
            Some(newer) if newer > position => counts[a].out_of_order += 1,
            _ => newest[a] = Some(position),
        }
    }
    for (a, arrived) in seen.iter().enumerate() {
        counts[a].lost = arrived.iter().filter(|s| !**s).count();
    }
    Tally {
        per_aggregate: names.into_iter().zip(counts).collect(),
        unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expected: &[(&str, &[u32])], received: &[u32]) -> Tally {
        tally(expected.iter().map(|(a, e)| (*a, *e)), received)
    }

    #[test]
    fn an_in_order_delivery_passes() {
        let t = run(&[("a", &[1, 2, 3]), ("b", &[4, 5])], &[1, 4, 2, 5, 3]);
        assert!(t.passed());
        assert_eq!(
            t.totals(),
            Counts {
                expected: 5,
                received: 5,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn a_missing_event_is_lost_and_fails() {
        let t = run(&[("a", &[1, 2, 3])], &[1, 3]);
        assert_eq!(t.per_aggregate["a"].lost, 1);
        assert!(!t.passed());
    }

    #[test]
    fn a_swap_is_one_reorder_and_fails() {
        let t = run(&[("a", &[1, 2, 3, 4])], &[1, 3, 2, 4]);
        assert_eq!(t.per_aggregate["a"].out_of_order, 1);
        assert!(!t.passed());
    }

    #[test]
    fn a_redelivery_after_newer_events_is_a_duplicate_not_a_reorder() {
        let t = run(&[("a", &[1, 2, 3])], &[1, 2, 3, 1, 2]);
        let a = t.per_aggregate["a"];
        assert_eq!((a.received, a.duplicated, a.out_of_order), (5, 2, 0));
        assert!(t.passed());
    }

    #[test]
    fn events_of_no_aggregate_are_counted_apart() {
        let t = run(&[("a", &[1])], &[9, 1, 9]);
        assert_eq!(t.unexpected, 2);
        assert!(t.passed());
    }
}
