//! PostgreSQL connection strings with libpq's TLS semantics, for tokio-postgres sessions and pools.
//!
//! A URL such as `postgres://app:pw@db/orders?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem`
//! parses into a [`Database`]: the tokio-postgres configuration without the TLS keywords, the
//! [`SslMode`], and the rustls client configuration (ring, TLS 1.2/1.3) that enforces it. The relay
//! and both demo services connect through it, so they accept the same strings and check
//! certificates the same way; the services' pools take `Database::deadpool_manager` (feature
//! `deadpool`). [`redact_url`] keeps passwords out of logs and errors, and [`report::chain`] puts
//! an error and its causes on one line.

mod database;
mod options;
#[cfg(feature = "deadpool")]
mod pool;
mod redact;
pub mod report;
mod sslmode;
mod tls;
mod verifier;

pub use database::{Database, DatabaseUrlError};
pub use redact::redact_url;
pub use sslmode::SslMode;
pub use tls::TlsError;
