//! Real servers on loopback for the workspace's integration tests: throwaway PostgreSQL clusters, Tansu
//! (Kafka protocol), Redis and RabbitMQ, plus the relay binary as a child process.
//!
//! Start functions block; they may be called from `#[tokio::test]` bodies. Every server and process is
//! stopped, and its temp dir deleted, when its value is dropped, including while a test panics; children
//! are also killed if the test binary itself is killed (see `spawner`).

mod certificates;
pub mod java_partitioner;
mod kafka;
mod port;
mod postgres;
mod process;
mod rabbitmq;
mod reader;
mod redis;
mod spawner;
mod wait;

pub use certificates::{Certificates, UNNAMED_HOST};
pub use kafka::Kafka;
pub use port::free_port;
pub use postgres::{assert_sessions_encrypted, Postgres, PostgresBuilder, Replication, Standby};
pub use process::Process;
pub use rabbitmq::RabbitMq;
pub use reader::{Reader, Received};
pub use redis::Redis;
pub use wait::{poll_until, wait_until};

/// A name no other test uses, valid as a Kafka topic, Redis key, RabbitMQ queue and exchange.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
