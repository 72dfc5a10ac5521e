//! Deletes outbox rows once the broker has confirmed their events, for services that leave rows in
//! the table. Logical replication reads the WAL, not the table, so a deleted row is still re-sent
//! after a crash; cleanup never risks an event. Dead-lettered rows are kept: they may hold the only
//! full copy of a payload the dead letter had to omit.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::outbox::OutboxTable;
use crate::pg::catalog;
use crate::pg::database::Database;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CleanupMode {
    /// Leave rows alone (services delete them, or a retention job does).
    #[default]
    Keep,
    /// Delete each row once its event is confirmed, in batches.
    Delete,
}

/// Most ids per DELETE statement.
const BATCH: usize = 5000;

/// Hands confirmed ids to a background task that deletes them on its own connection, so deletes
/// never slow the stream down.
#[derive(Clone)]
pub struct Cleaner {
    ids: mpsc::UnboundedSender<Vec<String>>,
}

impl Cleaner {
    pub fn spawn(database: Database, outbox: OutboxTable) -> Cleaner {
        let (ids, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(database, outbox, receiver));
        Cleaner { ids }
    }

    pub fn confirmed(&self, ids: Vec<String>) {
        if !ids.is_empty() {
            let _ = self.ids.send(ids);
        }
    }
}

/// A relayed row may not be visible to another session yet: decoding can send a transaction the
/// moment its commit record is on disk, a moment before the committing backend publishes it as
/// committed. Rows a delete did not find are tried once more after this pause.
const RETRY_AFTER: Duration = Duration::from_secs(1);

async fn run(
    database: Database,
    outbox: OutboxTable,
    mut receiver: mpsc::UnboundedReceiver<Vec<String>>,
) {
    let mut client = None;
    let mut retry: Vec<String> = Vec::new();
    let mut retry_at = Instant::now();
    loop {
        let (mut pending, last_try) = tokio::select! {
            ids = receiver.recv() => match ids {
                Some(ids) => (ids, false),
                None => return,
            },
            _ = tokio::time::sleep_until(retry_at.into()), if !retry.is_empty() => (std::mem::take(&mut retry), true),
        };
        while let Ok(more) = receiver.try_recv() {
            pending.extend(more);
        }
        for chunk in pending.chunks(BATCH) {
            if client
                .as_ref()
                .is_none_or(tokio_postgres::Client::is_closed)
            {
                client = catalog::connect(&database).await.ok();
            }
            let Some(connected) = &client else {
                tracing::warn!(
                    rows = chunk.len(),
                    "cleanup cannot reach PostgreSQL; those rows stay in the outbox"
                );
                continue;
            };
            match delete(connected, &outbox, chunk).await {
                Ok(deleted) => {
                    tracing::debug!(deleted = deleted.len(), "deleted relayed outbox rows");
                    if deleted.len() < chunk.len() && !last_try {
                        let deleted: HashSet<String> = deleted.into_iter().collect();
                        retry.extend(chunk.iter().filter(|id| !deleted.contains(*id)).cloned());
                        retry_at = Instant::now() + RETRY_AFTER;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, rows = chunk.len(), "cleanup failed; those rows stay in the outbox")
                }
            }
        }
    }
}

/// Deletes by primary key, cast to the id column's own type so that its index is used; returns
/// the ids it deleted (a service may have deleted its own rows already).
async fn delete(
    client: &tokio_postgres::Client,
    outbox: &OutboxTable,
    ids: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let id_type: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = $2",
            &[&outbox.quoted_name(), &outbox.columns.id],
        )
        .await?
        .get(0);
    let id = escape_identifier(&outbox.columns.id);
    let sql = format!(
        "DELETE FROM {} WHERE {id} = ANY($1::text[]::{id_type}[]) RETURNING {id}::text",
        outbox.quoted_name(),
    );
    Ok(client
        .query(&sql, &[&ids])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}
