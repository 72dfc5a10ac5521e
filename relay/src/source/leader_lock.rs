//! Single-active polling: a session-level advisory lock per outbox table. PostgreSQL grants it to
//! one session at a time and releases it when that session ends, so a killed leader frees it as
//! soon as its connection drops, and a standby's next try takes over.

use tokio_postgres::Client;

use crate::outbox::OutboxTable;
use crate::pg::catalog::{self, CatalogError};
use crate::pg::database::Database;
use crate::source::SourceError;

pub struct LeaderLock {
    client: Client,
}

impl LeaderLock {
    /// Takes the lock, or fails with [`SourceError::LockHeld`] while another relay has it.
    pub async fn acquire(
        database: &Database,
        outbox: &OutboxTable,
    ) -> Result<LeaderLock, SourceError> {
        let client = catalog::connect(database).await?;
        let key = format!("outbox-relay polling {}", outbox.quoted_name());
        let taken: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(CatalogError::Query)?
            .get(0);
        if !taken {
            return Err(SourceError::LockHeld(outbox.table.clone()));
        }
        Ok(LeaderLock { client })
    }

    /// The lock lives as long as its session.
    pub fn is_held(&self) -> bool {
        !self.client.is_closed()
    }
}
