//! The relay end to end into Kafka (a Tansu broker): real PostgreSQL, the relay binary.

mod support;

use harness::Reader;
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
