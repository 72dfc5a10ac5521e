//! The relay end to end into RabbitMQ: real PostgreSQL, real RabbitMQ, the relay binary.

use crate::support;

use harness::Reader;
use support::scenarios::{self, Target};

async fn target_and_reader(url: &str) -> (Target, Reader) {
    let exchange = support::unique("outbox");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        url,
        "--rabbitmq-exchange",
        &exchange,
    ]);
    let reader = Reader::rabbitmq(url, &exchange, &target.destinations()).await;
    (target, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_delivers_everything_in_order() {
    let (target, reader) = target_and_reader(&harness::RabbitMq::shared().unwrap()).await;
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_survives_relay_kill() {
    let (target, reader) = target_and_reader(&harness::RabbitMq::shared().unwrap()).await;
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_survives_broker_restart() {
    let mut rabbitmq = harness::RabbitMq::start().unwrap();
    let (target, reader) = target_and_reader(&rabbitmq.url()).await;
    scenarios::survives_broker_restart(target, reader, || rabbitmq.restart().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_delivers_everything_in_order_when_polling() {
    let (target, reader) = target_and_reader(&harness::RabbitMq::shared().unwrap()).await;
    scenarios::delivers_everything_in_order(target.polling(), reader).await;
}
