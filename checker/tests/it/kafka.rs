//! Kafka (a Tansu broker): a relayed run verifies across the topic's partitions; a run written
//! while no relay runs is reported entirely lost; a reordered topic fails. One Tansu broker serves
//! all three, as each takes seconds to start.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::common::{self, Route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_run_verifies_an_unrelayed_one_is_lost_and_a_reorder_fails() {
    let kafka = harness::Kafka::start().unwrap();
    let brokers = kafka.brokers();
    let pg = common::outbox_database().await;
    let route = Route::new();
    kafka.create_topic(&route.destination, 3).unwrap();
    let mut relay = common::start_relay(
        &pg,
        &route,
        &["--sink", "kafka", "--kafka-brokers", &brokers],
    );
    let run = common::write(&pg, 5, 30);
    let broker = [
        "--broker",
        "kafka",
        "--broker-url",
        &brokers,
        "--destination",
        &route.destination,
    ];
    let ok = common::verify(&pg, &run, &broker, "90s");
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!((ok.totals().expected, ok.totals().received), (150, 150));
    common::stop_relay(&mut relay);

    let unrelayed = common::write(&pg, 2, 5);
    let lost = common::verify(&pg, &unrelayed, &broker, "2s");
    assert_eq!(lost.code, 1, "{lost:?}");
    assert_eq!((lost.totals().lost, lost.totals().received), (10, 0));
    assert!(lost.stdout.contains("150 other message(s)"), "{lost:?}");

    // The same broker: a run whose events reached a topic out of order.
    let run = common::write(&pg, 1, 3);
    let topic = harness::unique("reordered");
    kafka.create_topic(&topic, 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let key = relay_check::event::aggregate_id(&run, 0);
    for seq in [0, 2, 1] {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&common::payload(&run, 0, seq)),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
    let broker = [
        "--broker",
        "kafka",
        "--broker-url",
        &brokers,
        "--destination",
        &topic,
    ];
    let outcome = common::verify(&pg, &run, &broker, "30s");
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(
        (outcome.totals().lost, outcome.totals().out_of_order),
        (0, 1)
    );
}
