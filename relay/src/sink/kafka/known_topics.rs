//! The topics the Kafka sink knows to exist, so that it asks the broker to create only new ones.
//!
//! Bounded: a relay routing to ever new destinations (a topic per tenant, say) must not grow without
//! end. Forgetting a topic costs one creation request that the broker answers with "already exists".

use std::num::NonZeroUsize;

use lru::LruCache;

/// How many topic names are remembered; far more than a relay's usual handful of topics.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

pub(super) struct KnownTopics(LruCache<String, ()>);

impl KnownTopics {
    pub(super) fn new(topics: impl IntoIterator<Item = String>) -> KnownTopics {
        KnownTopics::with_capacity(CAPACITY, topics)
    }

    fn with_capacity(
        capacity: NonZeroUsize,
        topics: impl IntoIterator<Item = String>,
    ) -> KnownTopics {
        let mut known = KnownTopics(LruCache::new(capacity));
        for topic in topics {
            known.insert(topic);
        }
        known
    }

    /// Whether `topic` is known to exist; a hit keeps it among the remembered.
    pub(super) fn contains(&mut self, topic: &str) -> bool {
        self.0.get(topic).is_some()
    }

    pub(super) fn insert(&mut self, topic: String) {
        self.0.put(topic, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_least_recently_used_topic_beyond_its_capacity() {
        let capacity = NonZeroUsize::new(3).unwrap();
        let mut known = KnownTopics::with_capacity(capacity, ["a", "b", "c"].map(String::from));
        assert!(known.contains("a"));
        known.insert("d".into());
        assert!(!known.contains("b"), "b was used least recently");
        assert!(known.contains("a") && known.contains("c") && known.contains("d"));
        assert_eq!(known.0.len(), 3);
    }

    #[test]
    fn holds_at_most_its_capacity_whatever_the_broker_lists() {
        let known = KnownTopics::new((0..20_000).map(|i| format!("topic-{i}")));
        assert_eq!(known.0.len(), CAPACITY.get());
    }
}
