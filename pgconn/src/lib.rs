//! PostgreSQL connection strings with libpq's TLS semantics, for tokio-postgres sessions and pools.
//!
//! A URL such as `postgres://app:pw@db/orders?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem`
//! parses into a [`Database`]: the tokio-postgres configuration without the TLS keywords, the
//! [`SslMode`], and the rustls client configuration (ring, TLS 1.2/1.3) that enforces it. The relay
//! and both demo services connect through it, so they accept the same strings and check
//! certificates the same way; the services' pools take `Database::deadpool_manager` (feature
//! `deadpool`). [`redact_url`] keeps passwords out of logs and errors, and [`report::chain`] puts
//! an error and its causes on one line.
//!
//! A string may name several hosts (`postgres://h1:5432,h2:5433/db?target_session_attrs=read-write`,
//! or `host=h1,h2 port=5432,5433`): [`Database::connect_with`] tries them in order as libpq does and
//! keeps the first session of the kind `target_session_attrs` asks for, so a client follows a
//! promotion without a new string.

mod connect;
mod database;
mod hosts;
mod options;
#[cfg(feature = "deadpool")]
mod pool;
mod redact;
pub mod report;
mod session_attrs;
mod sslmode;
mod tls;
mod verifier;

pub use connect::{Attempt, ConnectError, Failure, Session};
pub use database::{Database, DatabaseUrlError};
pub use hosts::{Endpoint, Server};
pub use redact::redact_url;
pub use session_attrs::TargetSessionAttrs;
pub use sslmode::SslMode;
pub use tls::TlsError;
