//! The service consumes over TLS from each broker (`rediss://`, `amqps://`, Kafka's `SSL`), trusting
//! the broker's throwaway CA through its configuration and nothing else: the system roots do not
//! hold that CA, so an invoice shows the CA setting reached the broker client. Servers that ask for
//! a client certificate get the configured one.

use crate::common::Setup;
use crate::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_invoices() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::redis_over_tls(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_presents_the_client_certificate() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::redis_over_tls(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_over_tls_invoices() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::rabbitmq_over_tls(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_over_tls_presents_the_client_certificate() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::rabbitmq_over_tls(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_invoices() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::kafka_over_tls()).await;
}
