//! What can stop a write or a verification before it has counted anything.

/// Errors of the checker library; a verification that counts losses is not an error but a
/// [`crate::Tally`] that did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid table name {0:?}: expected `name` or `schema.name` made of letters, digits and underscores")]
    TableName(String),
    #[error("invalid workload shape {0:?}: expected K x N, e.g. `4x100`, with K and N at least 1")]
    Shape(String),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no outbox rows of run {run} in {table}: if they were deleted, pass the run's shape with --expect K x N")]
    NoRows { run: String, table: String },
    #[error("{broker}: {reason}")]
    Broker {
        broker: &'static str,
        reason: String,
    },
}
