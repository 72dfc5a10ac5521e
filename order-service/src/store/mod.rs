//! PostgreSQL persistence: the connection pool, schema migrations, the order tables, the saga
//! instances, the replies already processed and the outbox.

mod migrations;
pub mod orders;
pub mod outbox;
mod pool;
pub mod processed;
pub mod sagas;

pub use migrations::{migrate, run_migrations, Migration, MigrationError, MIGRATIONS};
pub use pool::{connect, Pool};

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL")]
    Url(#[from] pgconn::DatabaseUrlError),
    #[error("cannot build the connection pool")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error")]
    Db(#[from] tokio_postgres::Error),
    #[error("stored order {id} is invalid: {reason}")]
    Corrupt { id: Uuid, reason: String },
    #[error("stored saga {id} is invalid: {reason}")]
    CorruptSaga { id: Uuid, reason: String },
    #[error("cannot serialize an event")]
    Serialize(#[from] serde_json::Error),
}
