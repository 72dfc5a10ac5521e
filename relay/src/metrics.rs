//! The relay's Prometheus metrics: one registry, updated by the pipeline and the supervisor and
//! rendered in the text format by the HTTP endpoint.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::lsn::Lsn;

pub struct Metrics {
    registry: Registry,
    lag_seconds: prometheus::Gauge,
    pub slot_lag_bytes: IntGauge,
    events_published: IntCounterVec,
    failures: IntCounterVec,
    pub retries: IntCounter,
    pub dead_lettered: IntCounter,
    commit_to_ack: Histogram,
    batch_size: Histogram,
    pub in_flight_events: IntGauge,
    acknowledged_lsn: IntGauge,
    ready_gauge: IntGauge,
    pub leader: IntGauge,
    mode: IntGaugeVec,
    /// The destinations that have a label of their own, at most `max_destinations` of them.
    destinations: Mutex<HashSet<String>>,
    max_destinations: usize,
    /// Commit time of the oldest event not yet confirmed by the broker; kept across failed
    /// sessions, so the lag keeps growing while the broker is down.
    oldest_unconfirmed: Mutex<Option<SystemTime>>,
    ready: AtomicBool,
}

/// `metrics_max_destinations` unless configured.
pub const DEFAULT_MAX_DESTINATIONS: usize = 1000;

/// The `destination` label of events to destinations beyond `metrics_max_destinations`: no Kafka
/// topic, RabbitMQ routing key or template output of the default form can be named so.
pub const OTHER_DESTINATIONS: &str = "(other)";

/// Why a session ended, as the `kind` label of `outbox_relay_failures_total`.
#[derive(Debug, Clone, Copy)]
pub enum FailureKind {
    Database,
    Broker,
}

impl Metrics {
    /// Metrics for `sink`, with at most [`DEFAULT_MAX_DESTINATIONS`] destination labels.
    pub fn new(sink: &str) -> Metrics {
        Metrics::with_max_destinations(sink, DEFAULT_MAX_DESTINATIONS)
    }

    /// Metrics for `sink`, with at most `max_destinations` distinct destination labels.
    pub fn with_max_destinations(sink: &str, max_destinations: usize) -> Metrics {
        let registry =
            Registry::new_custom(Some("outbox_relay".into()), None).expect("a valid prefix");
        let seconds_buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        let metrics = Metrics {
            lag_seconds: prometheus::Gauge::new(
                "lag_seconds",
                "Age of the oldest committed outbox event the broker has not confirmed yet; 0 when caught up.",
            )
            .expect("valid metric"),
            slot_lag_bytes: IntGauge::new(
                "slot_lag_bytes",
                "WAL the replication slot retains: pg_current_wal_lsn() minus the slot's confirmed_flush_lsn.",
            )
            .expect("valid metric"),
            events_published: IntCounterVec::new(
                Opts::new("events_published_total", "Events the broker confirmed, by sink and destination."),
                &["sink", "destination"],
            )
            .expect("valid metric"),
            failures: IntCounterVec::new(
                Opts::new("failures_total", "Sessions ended by a failure, by kind (database or broker)."),
                &["kind"],
            )
            .expect("valid metric"),
            retries: IntCounter::new("retries_total", "Sessions started again after a failure.").expect("valid metric"),
            dead_lettered: IntCounter::new(
                "dead_lettered_total",
                "Events the broker refused for good, confirmed in the dead-letter destination.",
            )
            .expect("valid metric"),
            commit_to_ack: Histogram::with_opts(
                HistogramOpts::new(
                    "commit_to_ack_seconds",
                    "From the transaction's commit in PostgreSQL to the broker's confirmation of its event.",
                )
                .buckets(seconds_buckets),
            )
            .expect("valid metric"),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("batch_size_events", "Events per batch handed to the broker.")
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 8).expect("valid buckets")),
            )
            .expect("valid metric"),
            in_flight_events: IntGauge::new("in_flight_events", "Events handed to the broker and not yet confirmed.")
                .expect("valid metric"),
            acknowledged_lsn: IntGauge::new(
                "acknowledged_lsn",
                "The position last confirmed to PostgreSQL, as a 64-bit number.",
            )
            .expect("valid metric"),
            ready_gauge: IntGauge::new("ready", "1 while connected to both the database and the broker.")
                .expect("valid metric"),
            mode: IntGaugeVec::new(
                Opts::new(
                    "mode",
                    "1 for the source in use: logical (replication) or polling (the table).",
                ),
                &["mode"],
            )
            .expect("valid metric"),
            leader: IntGauge::new(
                "leader",
                "1 while this relay is active (holds the replication slot or the polling lock); other relays wait as standbys.",
            )
            .expect("valid metric"),
            registry,
            destinations: Mutex::new(HashSet::new()),
            max_destinations,
            oldest_unconfirmed: Mutex::new(None),
            ready: AtomicBool::new(false),
        };
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; labels carry the relay's version and sink.",
            ),
            &["version", "sink"],
        )
        .expect("valid metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), sink])
            .set(1);
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.lag_seconds.clone()),
            Box::new(metrics.slot_lag_bytes.clone()),
            Box::new(metrics.events_published.clone()),
            Box::new(metrics.failures.clone()),
            Box::new(metrics.retries.clone()),
            Box::new(metrics.dead_lettered.clone()),
            Box::new(metrics.commit_to_ack.clone()),
            Box::new(metrics.batch_size.clone()),
            Box::new(metrics.in_flight_events.clone()),
            Box::new(metrics.acknowledged_lsn.clone()),
            Box::new(metrics.ready_gauge.clone()),
            Box::new(metrics.leader.clone()),
            Box::new(metrics.mode.clone()),
            Box::new(build),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// The text exposition format, with the lag computed as of now.
    pub fn render(&self) -> String {
        let lag = self
            .oldest_unconfirmed
            .lock()
            .expect("lock")
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.lag_seconds.set(lag);
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        self.ready_gauge.set(i64::from(ready));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn failed(&self, kind: FailureKind) {
        let label = match kind {
            FailureKind::Database => "database",
            FailureKind::Broker => "broker",
        };
        self.failures.with_label_values(&[label]).inc();
    }

    /// Records the oldest unconfirmed event's commit time; `None` once everything is confirmed.
    pub fn set_oldest_unconfirmed(&self, committed_at: Option<SystemTime>) {
        *self.oldest_unconfirmed.lock().expect("lock") = committed_at;
    }

    /// Counts confirmed events under their destination's label, or under [`OTHER_DESTINATIONS`]
    /// once `max_destinations` destinations have labels: every label is a time series that the
    /// registry keeps for good, and a scraper's storage with it.
    pub fn published(&self, sink: &str, destination: &str, events: u64) {
        let label = {
            let mut labelled = self.destinations.lock().expect("lock");
            if labelled.contains(destination) {
                destination
            } else if labelled.len() < self.max_destinations {
                labelled.insert(destination.to_owned());
                destination
            } else {
                OTHER_DESTINATIONS
            }
        };
        self.events_published
            .with_label_values(&[sink, label])
            .inc_by(events);
    }

    pub fn observe_commit_to_ack(&self, committed_at: SystemTime, events: u64) {
        let seconds = SystemTime::now()
            .duration_since(committed_at)
            .map_or(0.0, |d| d.as_secs_f64());
        for _ in 0..events {
            self.commit_to_ack.observe(seconds);
        }
    }

    pub fn observe_batch(&self, events: usize) {
        self.batch_size.observe(events as f64);
    }

    /// Shows the source in use; `auto` resolves once the database has been asked.
    pub fn set_mode(&self, mode: &str) {
        self.mode.reset();
        self.mode.with_label_values(&[mode]).set(1);
    }

    pub fn acknowledged(&self, lsn: Lsn) {
        self.acknowledged_lsn.set(lsn.0 as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn renders_prometheus_text_with_lag_from_the_oldest_unconfirmed_event() {
        let metrics = Metrics::new("kafka");
        metrics.set_mode("logical");
        metrics.published("kafka", "outbox.event.order", 3);
        metrics.set_oldest_unconfirmed(Some(SystemTime::now() - Duration::from_secs(5)));
        let text = metrics.render();
        assert!(text.contains("outbox_relay_events_published_total{destination=\"outbox.event.order\",sink=\"kafka\"} 3"), "{text}");
        assert!(
            text.contains("outbox_relay_mode{mode=\"logical\"} 1"),
            "{text}"
        );
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("outbox_relay_lag_seconds "))
            .expect("lag line")
            .parse()
            .unwrap();
        assert!((5.0..6.0).contains(&lag), "{lag}");
        metrics.set_oldest_unconfirmed(None);
        assert!(metrics.render().contains("outbox_relay_lag_seconds 0\n"));
    }

    #[test]
    fn destinations_beyond_the_cap_share_one_label() {
        let metrics = Metrics::with_max_destinations("redis", 2);
        for destination in ["a", "b", "c", "d", "a"] {
            metrics.published("redis", destination, 1);
        }
        let text = metrics.render();
        let label = |d: &str| {
            format!("outbox_relay_events_published_total{{destination=\"{d}\",sink=\"redis\"}}")
        };
        assert!(text.contains(&format!("{} 2", label("a"))), "{text}");
        assert!(text.contains(&format!("{} 1", label("b"))), "{text}");
        assert!(
            text.contains(&format!("{} 2", label(OTHER_DESTINATIONS))),
            "{text}"
        );
        assert!(!text.contains("destination=\"c\""), "{text}");
    }
}
