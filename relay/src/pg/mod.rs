//! Everything that speaks to PostgreSQL: the replication protocol, the pgoutput decoder, and the
//! catalog work (publication, slot, prerequisites) done over an ordinary connection.

pub mod catalog;
pub mod database;
pub mod failover;
pub mod pgoutput;
pub mod publication;
pub mod replication;
pub mod transport;
pub mod wire;

pub use pgconn::redact_url;

/// An error and its causes on one line: tokio-postgres keeps the useful part (refused connection,
/// bad certificate) in the source.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        source = cause.source();
    }
    text
}
