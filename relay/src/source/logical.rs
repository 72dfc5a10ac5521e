//! The logical replication source: a pgoutput slot on a publication limited to the outbox table.
//!
//! pgoutput (protocol 1, no streaming) sends a transaction only after it committed, so rolled-back
//! transactions never arrive and events can flow on before the Commit message: a huge transaction is
//! streamed through the bounded pipeline instead of being buffered, and its position is acknowledged
//! only at its Commit, after every one of its events was confirmed. A restart therefore re-sends
//! the whole unconfirmed transaction, never half of one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::event::Origin;
use crate::lsn::Lsn;
use crate::outbox::{OutboxTable, RowLayout};
use crate::pg::catalog;
use crate::pg::database::Database;
use crate::pg::pgoutput::{self, LogicalMessage};
use crate::pg::replication::{
    ReplicationConnection, ReplicationError, ReplicationMessage, ReplicationStream,
};
use crate::source::{Change, Source, SourceError};

#[derive(Debug, Clone)]
pub struct LogicalSettings {
    pub database: Database,
    pub slot: String,
    pub publication: String,
    pub outbox: OutboxTable,
}

pub struct LogicalSource {
    stream: ReplicationStream,
    outbox: OutboxTable,
    /// Column layout per relation id; `None` for relations that are not the outbox.
    layouts: HashMap<u32, Option<RowLayout>>,
    /// Commit LSN and time of the transaction being received, between its Begin and Commit.
    open_transaction: Option<(Lsn, SystemTime)>,
    last_position: Lsn,
}

impl LogicalSource {
    /// Checks prerequisites, creates the publication and slot when missing, and starts streaming
    /// from the slot's confirmed position, which is returned with the source.
    pub async fn connect(settings: &LogicalSettings) -> Result<(LogicalSource, Lsn), SourceError> {
        let client = catalog::connect(&settings.database).await?;
        catalog::check_logical_replication(&client).await?;
        catalog::check_outbox_table(&client, &settings.outbox).await?;
        catalog::ensure_publication(&client, &settings.publication, &settings.outbox).await?;
        let confirmed = catalog::ensure_slot(&client, &settings.slot, &settings.outbox).await?;
        drop(client);

        let connection = ReplicationConnection::connect(&settings.database).await?;
        let options = [
            ("proto_version", "1".to_owned()),
            (
                "publication_names",
                format!("\"{}\"", settings.publication.replace('"', "\"\"")),
            ),
        ];
        let stream = connection
            .start(&settings.slot, Lsn::ZERO, &options)
            .await?;
        tracing::info!(slot = %settings.slot, from = %confirmed, "streaming the outbox from the replication slot");
        let source = LogicalSource {
            stream,
            outbox: settings.outbox.clone(),
            layouts: HashMap::new(),
            open_transaction: None,
            last_position: confirmed,
        };
        Ok((source, confirmed))
    }

    fn apply(&mut self, message: ReplicationMessage) -> Result<Option<Change>, SourceError> {
        match message {
            ReplicationMessage::Keepalive {
                wal_end,
                reply_requested,
            } => {
                // Between transactions, everything before the server's WAL end has reached us, so an
                // idle outbox still lets the slot advance while other tables take writes.
                let position = (self.open_transaction.is_none() && wal_end > self.last_position)
                    .then_some(wal_end);
                if let Some(position) = position {
                    self.last_position = position;
                }
                Ok(Some(Change::Keepalive {
                    position,
                    reply_requested,
                }))
            }
            ReplicationMessage::XLogData { data, .. } => match pgoutput::decode(data)? {
                LogicalMessage::Begin {
                    final_lsn,
                    commit_time,
                    ..
                } => {
                    self.open_transaction =
                        Some((final_lsn, pgoutput::to_system_time(commit_time)));
                    Ok(None)
                }
                LogicalMessage::Commit { end_lsn, .. } => {
                    self.open_transaction = None;
                    self.last_position = self.last_position.max(end_lsn);
                    Ok(Some(Change::Position(end_lsn)))
                }
                LogicalMessage::Relation(relation) => {
                    let (schema, table) = self.outbox.qualified_name();
                    let layout = if relation.namespace == schema && relation.name == table {
                        Some(self.outbox.layout(&relation.columns)?)
                    } else {
                        None
                    };
                    self.layouts.insert(relation.id, layout);
                    Ok(None)
                }
                LogicalMessage::Insert {
                    relation_id,
                    values,
                } => {
                    let Some(Some(layout)) = self.layouts.get(&relation_id) else {
                        return Ok(None);
                    };
                    let (commit_lsn, committed_at) = self.open_transaction.ok_or_else(|| {
                        ReplicationError::Protocol("Insert outside a transaction".into())
                    })?;
                    let (event, warnings) =
                        layout.event(&values, Origin::Commit(commit_lsn), committed_at);
                    for warning in warnings {
                        tracing::warn!(event_id = %event.id, lsn = %commit_lsn, "{warning}");
                    }
                    Ok(Some(Change::Event(event)))
                }
                LogicalMessage::Ignored(_) => Ok(None),
            },
        }
    }
}

impl Source for LogicalSource {
    const POSITION_IS_LSN: bool = true;
    const MODE: &'static str = "logical";

    async fn next(&mut self) -> Result<Change, SourceError> {
        loop {
            let message = self.stream.next().await?.ok_or_else(|| {
                ReplicationError::Protocol("server ended the replication stream".into())
            })?;
            if let Some(change) = self.apply(message)? {
                return Ok(change);
            }
        }
    }

    async fn acknowledge(&mut self, flush: Lsn, reply_requested: bool) -> Result<(), SourceError> {
        Ok(self.stream.send_status(flush, reply_requested).await?)
    }

    async fn finish(self, flush: Lsn) -> Result<(), SourceError> {
        Ok(self.stream.finish(flush, Duration::from_secs(5)).await?)
    }
}
