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

/// A queue with `x-max-length` and `x-overflow: reject-publish` nacks what does not fit while a slow
/// consumer frees room: after a nack the relay publishes one message at a time until the nacked
/// event is confirmed, so no later message of its aggregate is accepted ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_keeps_order_when_a_full_queue_nacks() {
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = support::unique("outbox");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        &url,
        "--rabbitmq-exchange",
        &exchange,
    ]);
    let reader = Reader::rabbitmq_bounded(&url, &exchange, &target.destinations(), 100, 50).await;
    let (report, received) =
        scenarios::keeps_order_while_the_broker_refuses(target, reader, "nacked").await;
    report.assert_lossless();
    scenarios::assert_positions_increase(&received);
}
