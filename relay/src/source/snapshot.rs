//! The rows already in the outbox when the relay creates its slot (`snapshot = all`,
//! `since=<RFC 3339>` or `unpublished`): published first, then the slot streams everything
//! committed after them, with no gap and no overlap.
//!
//! How: on a replication connection, a TEMPORARY slot is created with an exported snapshot. That
//! snapshot sees exactly the transactions the slot will not stream, so an ordinary session imports
//! it (REPEATABLE READ, `SET TRANSACTION SNAPSHOT`) and reads the chosen rows through the ordinary
//! pipeline (batches, order, dead letters, the acknowledgement rule). Once the broker confirmed every
//! one of them, `pg_copy_logical_replication_slot` makes the permanent slot at the temporary one's
//! consistent point, and logical replication streams from it. Until that copy there is no permanent
//! slot: a relay that dies mid-snapshot drops the temporary slot with its connection, and the next
//! start takes the snapshot again (duplicates, never a loss). Creating the permanent slot with the
//! snapshot directly would not do: after a crash mid-snapshot, the slot would exist and the
//! unpublished rows would be skipped for good.
//!
//! The polling leader lock is held meanwhile, so a second relay waits instead of snapshotting too.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::lsn::Lsn;
use crate::outbox::quote_literal;
use crate::pg::catalog::{self, CatalogError};
use crate::pg::publication::Coverage;
use crate::pg::replication::ReplicationConnection;
use crate::source::leader_lock::LeaderLock;
use crate::source::logical::{ensure_publication, LogicalSettings};
use crate::source::table::{RowFilter, TableReading, TableSource};
use crate::source::{Change, Source, SourceError};

/// Which rows already in the outbox a newly created slot publishes before streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Snapshot {
    /// None: the slot streams what commits after its creation.
    #[default]
    Never,
    All,
    /// Rows whose `created_at` is at or after this time.
    Since(DateTime<FixedOffset>),
    /// Rows polling has not relayed (`published_at IS NULL`).
    Unpublished,
}

impl Snapshot {
    /// The rows to publish; `None` for [`Snapshot::Never`].
    pub fn filter(self) -> Option<RowFilter> {
        match self {
            Snapshot::Never => None,
            Snapshot::All => Some(RowFilter::default()),
            Snapshot::Since(since) => Some(RowFilter {
                since: Some(since),
                ..RowFilter::default()
            }),
            Snapshot::Unpublished => Some(RowFilter {
                unpublished: true,
                ..RowFilter::default()
            }),
        }
    }
}

impl FromStr for Snapshot {
    type Err = String;

    fn from_str(text: &str) -> Result<Snapshot, String> {
        match text {
            "never" => Ok(Snapshot::Never),
            "all" => Ok(Snapshot::All),
            "unpublished" => Ok(Snapshot::Unpublished),
            _ => {
                let Some(time) = text.strip_prefix("since=") else {
                    return Err(format!(
                        "{text:?} is not one of never, all, since=<RFC 3339 time>, unpublished"
                    ));
                };
                DateTime::parse_from_rfc3339(time)
                    .map(Snapshot::Since)
                    .map_err(|e| {
                        format!("since={time:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z ({e})")
                    })
            }
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Snapshot::Never => f.write_str("never"),
            Snapshot::All => f.write_str("all"),
            Snapshot::Since(since) => write!(f, "since={}", since.to_rfc3339()),
            Snapshot::Unpublished => f.write_str("unpublished"),
        }
    }
}

impl TryFrom<String> for Snapshot {
    type Error = String;

    fn try_from(text: String) -> Result<Snapshot, String> {
        text.parse()
    }
}

impl From<Snapshot> for String {
    fn from(snapshot: Snapshot) -> String {
        snapshot.to_string()
    }
}

/// The snapshot's rows, read while a temporary slot holds the point the permanent slot will
/// stream from.
pub struct SnapshotSource {
    table: TableSource,
    /// Holds the temporary slot; closing it drops that slot.
    replication: Option<ReplicationConnection>,
    catalog: Client,
    _lock: LeaderLock,
    temporary: String,
    slot: String,
    /// The temporary slot's consistent point: the permanent slot streams from here.
    point: Lsn,
    started: Instant,
    copied: bool,
}

impl SnapshotSource {
    /// Takes the snapshot when the slot does not exist yet. Fails with [`SourceError::Drained`]
    /// when there is nothing to do: `never`, or a slot that exists (it streams from where it
    /// stands; the snapshot applies only when the relay creates the slot).
    pub async fn connect(
        settings: &LogicalSettings,
        snapshot: Snapshot,
    ) -> Result<(SnapshotSource, Lsn), SourceError> {
        let filter = snapshot.filter().ok_or(SourceError::Drained)?;
        let LogicalSettings {
            database,
            slot,
            outbox,
            ..
        } = settings;
        let lock = LeaderLock::acquire(database, outbox).await?;
        let client = catalog::connect(database).await?;
        catalog::check_logical_replication(&client).await?;
        if let Some(confirmed) = catalog::slot_confirmed(&client, slot).await? {
            tracing::info!(slot = %slot, %confirmed, %snapshot, "the slot exists, so no snapshot is taken: it streams from its confirmed position (a snapshot is taken only when the relay creates the slot)");
            return Err(SourceError::Drained);
        }
        let coverage_query = Coverage::prepare(&client).await?;
        ensure_publication(&client, &coverage_query, settings).await?;
        let reading = TableReading::prepare(&client, outbox, &filter).await?;

        let mut replication = ReplicationConnection::connect(database, "UTF8").await?;
        let temporary = format!("outbox_relay_snapshot_{:016x}", rand::random::<u64>());
        let (point, exported) = replication
            .create_exported_temporary_slot(&temporary)
            .await?;
        let reader = catalog::connect(database).await?;
        reader
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&exported)
            ))
            .await
            .map_err(CatalogError::Query)?;
        let table = TableSource::open(reader, &reading, point, false).await?;
        tracing::info!(slot = %slot, %snapshot, consistent_point = %point, "publishing the rows already in the outbox from a snapshot; the new slot then streams everything committed after it");
        let source = SnapshotSource {
            table,
            replication: Some(replication),
            catalog: client,
            _lock: lock,
            temporary,
            slot: slot.clone(),
            point,
            started: Instant::now(),
            copied: false,
        };
        Ok((source, Lsn::ZERO))
    }

    /// Makes the permanent slot at the snapshot's point, once every row was confirmed.
    async fn create_slot(&mut self) -> Result<(), SourceError> {
        let copied = self
            .catalog
            .query_one(
                "SELECT lsn::text FROM pg_copy_logical_replication_slot($1, $2, false)",
                &[&self.temporary, &self.slot],
            )
            .await;
        match copied {
            Ok(_) => tracing::info!(
                slot = %self.slot,
                rows = self.table.rows(),
                elapsed = ?self.started.elapsed(),
                from = %self.point,
                "snapshot relayed and confirmed; created the slot at its consistent point"
            ),
            // Another relay (started without this one's lock) created the slot meanwhile: it
            // streams from its own point, and the rows published here are duplicates at worst.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => tracing::warn!(
                slot = %self.slot,
                rows = self.table.rows(),
                "snapshot relayed, but the slot was created meanwhile by someone else; streaming from it"
            ),
            Err(e) => return Err(CatalogError::Query(e).into()),
        }
        self.copied = true;
        // Closing the connection drops the temporary slot.
        self.replication = None;
        Ok(())
    }
}

impl Source for SnapshotSource {
    const MODE: &'static str = "snapshot";
    const POSITION_IS_LSN: bool = false;

    async fn next(&mut self) -> Result<Change, SourceError> {
        match self.table.next().await {
            // Ends the session only once the slot exists.
            Err(SourceError::Drained) if !self.copied => std::future::pending().await,
            change => change,
        }
    }

    async fn acknowledge(
        &mut self,
        position: Lsn,
        reply_requested: bool,
    ) -> Result<(), SourceError> {
        self.table.acknowledge(position, reply_requested).await?;
        if self.table.is_done() && !self.copied {
            self.create_slot().await?;
        }
        Ok(())
    }

    async fn finish(mut self, position: Lsn) -> Result<(), SourceError> {
        self.acknowledge(position, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print_back() {
        for text in [
            "never",
            "all",
            "unpublished",
            "since=2026-12-01T00:00:00+00:00",
            "since=2026-12-01T08:30:00+02:00",
        ] {
            assert_eq!(text.parse::<Snapshot>().unwrap().to_string(), text);
        }
        assert_eq!(
            "since=2026-12-01T00:00:00Z".parse::<Snapshot>().unwrap(),
            "since=2026-12-01T00:00:00+00:00".parse().unwrap()
        );
        for bad in ["", "ALL", "since=", "since=yesterday", "since=2026-12-01"] {
            assert!(bad.parse::<Snapshot>().is_err(), "{bad}");
        }
        assert_eq!(Snapshot::Never.filter(), None);
        assert!(Snapshot::Unpublished.filter().unwrap().unpublished);
    }
}
