//! The relay end to end into Kafka (a Tansu broker): real PostgreSQL, the relay binary.

use crate::support;

use harness::Reader;
use rdkafka::producer::Producer;
use support::scenarios::{self, Target};

fn target_and_reader(brokers: &str) -> (Target, Reader) {
    let target = Target::new(&["--sink", "kafka", "--kafka-brokers", brokers]);
    let reader = Reader::kafka(brokers, &target.destinations());
    (target, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delivers_everything_in_order() {
    let kafka = harness::Kafka::start().unwrap();
    let (target, reader) = target_and_reader(&kafka.brokers());
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_survives_relay_kill() {
    let kafka = harness::Kafka::start().unwrap();
    let (target, reader) = target_and_reader(&kafka.brokers());
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_survives_broker_restart() {
    let mut kafka = harness::Kafka::start().unwrap();
    let (target, reader) = target_and_reader(&kafka.brokers());
    scenarios::survives_broker_restart(target, reader, || {
        kafka.stop().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        kafka.start_again().unwrap();
    })
    .await;
}

/// SASL/SCRAM credentials go through `kafka.properties`, as for a managed cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_authenticates_with_sasl_scram() {
    let kafka = harness::Kafka::start_with_scram("relay", "s3cret-pw").unwrap();
    let intruder: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-256")
        .set("sasl.username", "relay")
        .set("sasl.password", "wrong")
        .create()
        .unwrap();
    assert!(
        intruder
            .client()
            .fetch_metadata(None, std::time::Duration::from_secs(5))
            .is_err(),
        "the broker insists on the right password"
    );
    let credentials = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", "relay"),
        ("sasl.password", "s3cret-pw"),
    ];
    let (target, reader, _config) =
        scenarios::kafka_target(&kafka.brokers(), &credentials, &credentials);
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delivers_everything_in_order_when_polling() {
    let kafka = harness::Kafka::start().unwrap();
    let (target, reader) = target_and_reader(&kafka.brokers());
    scenarios::delivers_everything_in_order(target.polling(), reader).await;
}
