//! The relay against real servers: throwaway PostgreSQL clusters, Redis, RabbitMQ and Tansu (Kafka
//! protocol) from the `harness` crate, with the `outbox-relay` binary as a child process.
//!
//! One test binary, so that the suite links once: each module is one area (a sink, a fault, the
//! `check` command), `support` and `sink_common` hold what they share. `otlp` compiles only with
//! `--features otlp`.

mod bad_input;
mod check;
mod check_publish;
mod checkpoint;
mod dead_letter;
mod debezium_parity;
mod deploy;
mod e2e_kafka;
mod e2e_rabbitmq;
mod e2e_redis;
mod exact_numbers;
mod failover;
mod faults;
mod high_availability;
mod kafka_unreachable;
mod least_privilege;
mod lifecycle;
mod majors;
mod messages;
mod metrics;
mod multi_host;
mod otlp;
mod partitioning;
mod password;
mod polling;
mod readme;
mod redaction;
mod replay;
mod sink_common;
mod sink_kafka;
mod sink_rabbitmq;
mod sink_redis;
mod slot;
mod snapshot;
mod stream_changes;
mod support;
mod tls;
mod tls_brokers;
