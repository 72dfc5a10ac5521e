//! The end-to-end scenarios every sink must pass, written once and run per broker.

use std::time::{Duration, Instant};

use harness::{Postgres, Process};

use super::check::{check, Report};
use super::workload::{self, Workload, Written, AGGREGATE_TYPES};
use super::{http_get, metric, metrics_addr, start_relay, start_relay_at, stop_relay, unique};
use harness::{Reader, Received};

/// How a test points the relay at its broker.
pub struct Target {
    /// Flags selecting the sink and its endpoint.
    pub sink_args: Vec<String>,
    /// The template prefix; destinations are `{prefix}.{aggregatetype}`.
    pub prefix: String,
    /// Run against a cluster without logical decoding, where `--mode auto` polls the table.
    pub polling: bool,
    /// The PostgreSQL major of the cluster; `None`: the system's.
    pub major: Option<u32>,
}

impl Target {
    pub fn new(sink_args: &[&str]) -> Target {
        Target {
            sink_args: sink_args.iter().map(|s| s.to_string()).collect(),
            prefix: unique("t"),
            polling: false,
            major: None,
        }
    }

    /// The same target, on a cluster of PostgreSQL `major` (see `harness::PostgresBuilder::major`).
    pub fn on_major(self, major: u32) -> Target {
        Target {
            major: Some(major),
            ..self
        }
    }

    /// The same target, relayed by polling: the cluster has `wal_level=replica`, so `auto` polls.
    pub fn polling(self) -> Target {
        Target {
            polling: true,
            ..self
        }
    }

    /// A throwaway cluster with the outbox table, as this target's mode needs it.
    pub async fn database(&self) -> Postgres {
        let mut builder = Postgres::builder();
        if let Some(major) = self.major {
            builder = builder.major(major);
        }
        if self.polling {
            builder = builder.setting("wal_level=replica");
        }
        let pg = builder.start().expect("PostgreSQL starts");
        super::create_outbox(&pg).await;
        pg
    }

    pub fn destinations(&self) -> Vec<String> {
        AGGREGATE_TYPES
            .iter()
            .map(|t| format!("{}.{t}", self.prefix))
            .collect()
    }

    /// RabbitMQ routing keys are the same strings as the other brokers' destinations.
    pub fn relay(&self, pg: &Postgres, extra: &[&str]) -> Process {
        self.relay_at(&pg.url(), extra)
    }

    /// [`Target::relay`] on a database URL of the test's making, e.g. one naming several hosts.
    pub fn relay_at(&self, url: &str, extra: &[&str]) -> Process {
        let relay = self.start_relay_at(url, extra);
        wait_streaming(&relay);
        relay
    }

    /// The relay, started without waiting for it to stream: for a broker it cannot use.
    pub fn start_relay(&self, pg: &Postgres, extra: &[&str]) -> Process {
        self.start_relay_at(&pg.url(), extra)
    }

    fn start_relay_at(&self, url: &str, extra: &[&str]) -> Process {
        let destination = format!("{}.{{aggregatetype}}", self.prefix);
        let mut args: Vec<&str> = self.sink_args.iter().map(String::as_str).collect();
        args.extend(["--destination", &destination]);
        args.extend(extra);
        start_relay_at(url, &args)
    }
}

/// A Kafka target whose relay gets `properties` through its `kafka.properties` (the returned file
/// must outlive the relay), and a reader configured with `reader`.
pub fn kafka_target(
    brokers: &str,
    properties: &[(&str, &str)],
    reader: &[(&str, &str)],
) -> (Target, Reader, tempfile::NamedTempFile) {
    let config = super::kafka_properties(properties);
    let target = Target::new(&[
        "--config",
        config.path().to_str().unwrap(),
        "--sink",
        "kafka",
        "--kafka-brokers",
        brokers,
    ]);
    let reader = Reader::kafka_with(brokers, &target.destinations(), reader);
    (target, reader, config)
}

/// Rows committed before the slot exists are not relayed, so writers wait for the relay to stream.
pub fn wait_streaming(relay: &Process) {
    harness::wait_until(
        Duration::from_secs(60),
        "the relay to start streaming",
        || relay.log().contains("streaming the outbox"),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
}

/// Faults are injected once the relay has had this many batches confirmed, so they land mid-stream.
pub fn wait_confirmed_batches(relay: &Process, batches: usize) {
    harness::wait_until(DEADLINE, "the broker to confirm batches", || {
        relay.log().matches("broker confirmed batch").count() >= batches
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
}

pub const CLEAN: Workload = Workload {
    writers: 4,
    transactions_per_writer: 75,
    events_per_transaction: 8,
    aggregates_per_writer: 6,
    rollback_every: 7,
    padding: 64,
    pause: Duration::ZERO,
};

pub const FAULT: Workload = Workload {
    writers: 4,
    transactions_per_writer: 100,
    events_per_transaction: 10,
    aggregates_per_writer: 5,
    rollback_every: 9,
    padding: 256,
    pause: Duration::from_millis(40),
};

const DEADLINE: Duration = Duration::from_secs(180);

fn has_all(written: &Written) -> impl FnMut(&[Received]) -> bool + '_ {
    move |received| check(written, received).lost == 0
}

/// Thousands of events in hundreds of transactions from concurrent writers, rolled-back transactions
/// among them, and one 1 MiB payload: all arrive once, in order per aggregate, with headers.
pub async fn delivers_everything_in_order(target: Target, mut reader: Reader) {
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &[]);
    let written = workload::write(&pg.url(), &CLEAN).await;
    let big = "y".repeat(1024 * 1024);
    let client = pg.client().await.unwrap();
    client
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', 'big-1', 'Big', jsonb_build_object('blob', $1::text))",
            &[&big],
        )
        .await
        .unwrap();
    let received = reader
        .collect_until(DEADLINE, |r| {
            check(&written, r).lost == 0 && r.iter().any(|m| m.key == "big-1")
        })
        .await;
    let report = check(&written, &received);
    eprintln!(
        "{} committed, {} rolled back: {report:?}",
        written.committed(),
        written.rolled_back.len()
    );
    report.assert_lossless();
    assert_eq!(report.duplicates, 0, "a clean run delivers each event once");
    assert!(written.committed() >= 2000);
    let big_message = received.iter().find(|m| m.key == "big-1").unwrap();
    assert!(
        big_message.payload.len() > 1024 * 1024,
        "1 MiB payload arrived whole"
    );
    assert!(
        received
            .iter()
            .all(|m| target.destinations().contains(&m.destination)),
        "routed by aggregate type"
    );
    stop_relay(&mut relay);
}

/// kill -9 of the relay mid-stream, then a restart: nothing lost, order of first deliveries kept, and
/// no more re-sent than the unconfirmed window.
pub async fn survives_relay_kill(target: Target, mut reader: Reader) {
    let pg = target.database().await;
    let window = ["--batch-size", "50", "--max-in-flight", "300"];
    let mut relay = target.relay(&pg, &window);
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &FAULT).await });
    wait_confirmed_batches(&relay, 10);
    assert!(
        !writers.is_finished(),
        "the kill lands mid-stream, while writers still commit"
    );
    relay.kill9().unwrap();
    let written = writers.await.unwrap();
    let mut relay = target.relay(&pg, &window);
    let received = reader.collect_until(DEADLINE, has_all(&written)).await;
    let report = check(&written, &received);
    eprintln!("after kill -9: {report:?}");
    report.assert_lossless();
    assert!(
        report.duplicates <= 300 + FAULT.events_per_transaction,
        "re-sent {} events, more than the unconfirmed window",
        report.duplicates
    );
    stop_relay(&mut relay);
}

/// PostgreSQL crashes (immediate shutdown) and comes back: the relay reconnects and resumes.
pub async fn resumes_after_postgres_crash(target: Target, mut reader: Reader) {
    let small = Workload {
        writers: 2,
        transactions_per_writer: 20,
        ..CLEAN
    };
    let mut pg = target.database().await;
    let mut relay = target.relay(&pg, &[]);
    let before = workload::write(&pg.url(), &small).await;
    reader.collect_until(DEADLINE, has_all(&before)).await;
    pg.restart_immediate().unwrap();
    let after = workload::write(&pg.url(), &small).await;
    let received = reader.collect_until(DEADLINE, has_all(&after)).await;
    check(&after, &received).assert_lossless();
    assert!(
        relay.log().contains("relay session failed"),
        "the relay saw the crash:\n{}",
        relay.log()
    );
    stop_relay(&mut relay);
}

/// The broker goes away mid-stream and comes back: the relay retries and nothing is lost.
pub async fn survives_broker_restart(
    target: Target,
    mut reader: Reader,
    restart: impl FnOnce(),
) -> Report {
    let pg = target.database().await;
    let mut relay = target.relay(&pg, &["--batch-size", "50", "--max-in-flight", "300"]);
    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &FAULT).await });
    wait_confirmed_batches(&relay, 10);
    assert!(
        !writers.is_finished(),
        "the restart lands mid-stream, while writers still commit"
    );
    tokio::task::block_in_place(restart);
    let written = writers.await.unwrap();
    let received = reader.collect_until(DEADLINE, has_all(&written)).await;
    let report = check(&written, &received);
    eprintln!("after broker restart: {report:?}");
    report.assert_lossless();
    assert!(
        relay.exited().unwrap().is_none(),
        "the relay kept running:\n{}",
        relay.log()
    );
    stop_relay(&mut relay);
    report
}

/// Two relays on one outbox: one streams, the other stands by (the slot in logical mode, an
/// advisory lock in polling mode) and takes over within seconds of the leader's kill -9, losing
/// nothing and keeping order. `extra` holds the flags both relays get.
pub async fn standby_takes_over_from_a_killed_leader(
    target: Target,
    mut reader: Reader,
    extra: &[&str],
) {
    let pg = target.database().await;
    let mut window = vec!["--batch-size", "50", "--max-in-flight", "300"];
    window.extend(extra);
    let mut leader = target.relay(&pg, &window);
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend(["--destination", &destination]);
    args.extend(&window);
    let mut standby = start_relay(&pg, &args);
    harness::wait_until(
        Duration::from_secs(60),
        "the second relay to stand by",
        || standby.log().contains("standing by to take over"),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", standby.log()));
    let gauge = |relay: &Process| {
        metric(
            &http_get(&metrics_addr(relay), "/metrics").1,
            "outbox_relay_leader",
            &[],
        )
        .unwrap()
    };
    assert_eq!((gauge(&leader), gauge(&standby)), (1.0, 0.0));

    let url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&url, &FAULT).await });
    wait_confirmed_batches(&leader, 10);
    assert!(!writers.is_finished(), "the leader dies mid-stream");
    leader.kill9().unwrap();
    let killed = Instant::now();
    harness::wait_until(Duration::from_secs(30), "the standby to take over", || {
        standby.log().contains("streaming the outbox")
    })
    .unwrap();
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?}");
    assert!(takeover < Duration::from_secs(5), "took {takeover:?}");
    assert_eq!(gauge(&standby), 1.0);

    let written = writers.await.unwrap();
    let received = reader.collect_until(DEADLINE, has_all(&written)).await;
    let report = check(&written, &received);
    eprintln!("after failover: {report:?}");
    report.assert_lossless();
    stop_relay(&mut standby);
}

/// One aggregate's events, written faster than a slow consumer takes them: 4,000 events of
/// 1 KiB in transactions of 20.
pub const ONE_AGGREGATE_BACKLOG: Workload = Workload {
    writers: 1,
    transactions_per_writer: 200,
    events_per_transaction: 20,
    aggregates_per_writer: 1,
    rollback_every: 0,
    padding: 1024,
    pause: Duration::ZERO,
};

/// A broker that refuses messages for a while (a full queue or a server out of memory) while a
/// slow consumer (`reader`) frees room: the refused messages come again, and no later message of
/// their aggregate is first delivered before them. `refusal` is what the relay logs when the broker
/// refuses, to show that it did.
pub async fn keeps_order_while_the_broker_refuses(
    target: Target,
    mut reader: Reader,
    refusal: &str,
) -> (Report, Vec<Received>) {
    let pg = target.database().await;
    // Retries come quickly, so that many land while the consumer frees room one message at a time.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[backoff]\ninitial = \"20ms\"\nmax = \"200ms\"\n",
    )
    .unwrap();
    let mut relay = target.relay(
        &pg,
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--batch-size",
            "100",
        ],
    );
    // Written much faster than the consumer takes them: a backlog builds up in the broker.
    let written = workload::write(&pg.url(), &ONE_AGGREGATE_BACKLOG).await;
    let received = reader
        .collect_until(Duration::from_secs(300), has_all(&written))
        .await;
    let report = check(&written, &received);
    let refusals = relay.log().matches(refusal).count();
    eprintln!("{refusals} refusals ({refusal}): {report:?}");
    assert!(refusals > 0, "the broker never refused:\n{}", relay.log());
    stop_relay(&mut relay);
    (report, received)
}

/// `outbox_position` of first deliveries grows within each aggregate: consumers can rely on it to
/// detect a reorder.
pub fn assert_positions_increase(received: &[Received]) {
    let mut seen = std::collections::HashSet::new();
    let mut last: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for message in received {
        if !seen.insert(message.headers["id"].as_str()) {
            continue;
        }
        let position = message.headers["outbox_position"].as_str();
        if let Some(previous) = last.insert(&message.key, position) {
            assert!(
                previous < position,
                "position {position} of {} after {previous}",
                message.key
            );
        }
    }
}
