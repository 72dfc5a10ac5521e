//! The order-service: an Order aggregate behind an HTTP API that writes each state change and the
//! event reporting it (`OrderCreated`, `OrderConfirmed`, `OrderCancelled`) in one PostgreSQL
//! transaction, into the outbox table the relay publishes from.
//!
//! Confirming an order starts its invoicing saga with the invoice-service ([`saga`], `docs/SAGA.md`).
//!
//! Layers, inner to outer: [`domain`] and [`saga`] (rules, no I/O), [`events`] (domain to wire
//! contracts), [`store`] (PostgreSQL), [`service`] (use cases and transactions), [`http`] (the API),
//! [`sweeper`] (saga deadlines), [`consumer`] (the invoice-service's replies).

pub mod config;
pub mod consumer;
pub mod correlation;
pub mod domain;
pub mod events;
pub mod http;
pub mod replies;
pub mod saga;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod sweeper;
