//! invoice-service: turns the order-service's `OrderConfirmed` events, as the outbox relay publishes
//! them to Kafka, RabbitMQ or Redis Streams, into invoices (or refusals under a configurable credit
//! limit), voids invoices on `OrderCancellationRequested` with credit notes, answers each in its own
//! outbox (`InvoiceIssued`, `InvoiceRejected`, `InvoiceVoided`, see `docs/SAGA.md`), and serves the
//! invoices over HTTP.
//!
//! The flow is a `brokers` consumer (one broker, chosen by `messaging.mode`) → `worker` (decode, invoice,
//! acknowledge) → `store` (PostgreSQL). Each event is applied exactly once: the invoice and the
//! event's `processed_events` row commit in one transaction, and the broker learns of it only after
//! that commit, so a redelivery after a crash finds the row and changes nothing.

pub mod config;
pub mod credit;
pub mod handler;
pub mod http;
pub mod invoice;
pub mod migrations;
pub mod outbox;
pub mod problem;
pub mod service;
pub mod store;
pub mod worker;
