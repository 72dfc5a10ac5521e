//! invoice-service against real servers: PostgreSQL, Tansu (Kafka protocol), RabbitMQ and Redis from
//! the `harness` crate. Test messages are published exactly as the relay publishes outbox rows.
//!
//! One test binary: the scenarios are written once and run against each broker.

mod broker_tls;
mod common;
mod crash;
mod fuzz_http;
mod http;
mod kafka;
mod rabbitmq;
mod redis;
mod saga;
mod scenarios;
mod startup;
mod tls;
