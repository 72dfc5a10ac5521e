//! `relay-check` against real servers from the `harness` crate: a throwaway PostgreSQL cluster with
//! the outbox table, the machine's Redis and RabbitMQ, a Tansu broker for Kafka, and the real
//! `outbox-relay` binary in between (built by `cargo build -p outbox-relay`; the tests say so if it
//! is missing). Where a fault is easier to make by hand (a reorder, a missing message), the test
//! publishes to the broker itself, the way the relay does.

mod common;
mod kafka;
mod rabbitmq;
mod redis;
