//! The scenarios against RabbitMQ.

use crate::common::Setup;
use crate::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_v1_and_v2_each_produce_one_invoice() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::rabbitmq()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_redelivered_event_produces_one_invoice() {
    scenarios::a_redelivered_event_produces_one_invoice(Setup::rabbitmq()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_poison_events_are_dead_lettered_and_consumption_continues() {
    scenarios::poison_events_are_dead_lettered_and_consumption_continues(Setup::rabbitmq()).await;
}
