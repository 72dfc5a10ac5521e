//! The logical replication source: a pgoutput slot on a publication limited to the outbox table.
//!
//! pgoutput (protocol 1, no streaming) sends a transaction only after it committed, so rolled-back
//! transactions never arrive and events can flow on before the Commit message: a huge transaction is
//! streamed through the bounded pipeline instead of being buffered, and its position is acknowledged
//! only at its Commit, after every one of its events was confirmed. A restart therefore re-sends
//! the whole unconfirmed transaction, never half of one.
//!
//! What the stream does not carry cannot be seen in it: a table swapped in under the outbox's name
//! and not yet in the publication, or a publication that stopped publishing inserts. So no position
//! is acknowledged past WAL the source received before it last read from the catalog that the
//! publication streams the outbox's inserts.
//!
//! With `messages.enabled`, pgoutput also sends what `pg_logical_emit_message` wrote, in each
//! transaction's order among its rows; those with the configured prefix become events too
//! ([`crate::source::message`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use tokio_postgres::{Client, Statement};

use crate::checkpoint::recorder::Recorder;
use crate::event::Origin;
use crate::gap_repair::{self, Prepared, SlotCreate};
use crate::lsn::Lsn;
use crate::outbox::{MissingColumns, OutboxTable, RowLayout};
use crate::pg::catalog;
use crate::pg::database::Database;
use crate::pg::failover;
use crate::pg::pgoutput::{self, LogicalMessage, Relation};
use crate::pg::publication::{self, Coverage};
use crate::pg::replication::{
    ReplicationConnection, ReplicationError, ReplicationMessage, ReplicationStream,
};
use crate::source::message::{self, MessageSettings};
use crate::source::{Change, Source, SourceError};

#[derive(Debug, Clone)]
pub struct LogicalSettings {
    pub database: Database,
    pub slot: String,
    pub publication: String,
    pub outbox: OutboxTable,
    /// `slot_failover`: `None` turns failover on where the server has it (see `pg::failover`).
    pub slot_failover: Option<bool>,
    /// Where acknowledged positions are recorded, for gap repair after the slot is lost.
    pub checkpoint_table: Option<String>,
    pub gap_repair_margin: Duration,
    pub slot_create: SlotCreate,
    pub messages: MessageSettings,
}

/// Fails when the outbox or the publication cannot feed the slot, and creates the publication
/// when it is missing (unless the slot exists: it would then have lost the rows in between).
pub(crate) async fn ensure_publication(
    client: &Client,
    coverage_query: &Statement,
    settings: &LogicalSettings,
) -> Result<Coverage, SourceError> {
    let LogicalSettings {
        slot,
        publication,
        outbox,
        ..
    } = settings;
    catalog::check_outbox_table(client, outbox).await?;
    let mut coverage = Coverage::read(client, coverage_query, publication, outbox).await?;
    coverage.table_problem(outbox)?;
    if !coverage.publication_exists() {
        if let Some(confirmed) = catalog::slot_confirmed(client, slot).await? {
            return Err(publication::dropped(publication, slot, confirmed).into());
        }
        catalog::create_publication(client, publication, outbox).await?;
        coverage = Coverage::read(client, coverage_query, publication, outbox).await?;
    }
    coverage.publication_problem(publication, outbox)?;
    Ok(coverage)
}

/// The outbox relation as the stream last described it, and where its configured columns are.
struct Mapped {
    layout: RowLayout,
    relation: Relation,
}

/// What one replication message means for the source.
enum Step {
    Change(Change),
    Nothing,
    /// An outbox Relation whose columns the configured names do not find: maybe a rename.
    Remap(Relation, MissingColumns),
}

pub struct LogicalSource {
    stream: ReplicationStream,
    /// An ordinary session for the catalog: the publication's coverage and renamed columns.
    catalog: Client,
    coverage_query: Statement,
    /// The server's flushed WAL position: one reading vouches for everything up to it.
    flushed_query: Statement,
    settings: LogicalSettings,
    /// Per relation id; `None` for relations that are not the outbox.
    layouts: HashMap<u32, Option<Mapped>>,
    /// A Relation message being resolved against the catalog; kept here so a cancelled `next`
    /// resumes it rather than losing the message.
    remapping: Option<(Relation, MissingColumns)>,
    /// Commit LSN and time of the transaction being received, between its Begin and Commit.
    open_transaction: Option<(Lsn, SystemTime)>,
    /// The xid of that transaction, for the events' `transaction_id`.
    open_xid: Option<u32>,
    last_position: Lsn,
    /// The outbox's oid when the publication was last found to stream it.
    oid: Option<u32>,
    /// Positions up to here were flushed before the catalog last showed the publication streaming
    /// the outbox's inserts: acknowledging them skips nothing unseen.
    verified_through: Lsn,
    /// The last position reported to the server.
    acknowledged: Lsn,
    /// End LSN and commit time of each transaction received and not yet acknowledged.
    commits: VecDeque<(Lsn, SystemTime)>,
    /// Gets each acknowledged position, when a checkpoint table is configured.
    recorder: Option<Recorder>,
}

impl LogicalSource {
    /// Checks prerequisites, creates the publication and slot when missing, and starts streaming
    /// from the slot's confirmed position, which is returned with the source.
    pub async fn connect(settings: &LogicalSettings) -> Result<(LogicalSource, Lsn), SourceError> {
        let LogicalSettings {
            database,
            slot,
            publication,
            outbox,
            slot_failover,
            checkpoint_table,
            gap_repair_margin,
            slot_create,
            messages,
        } = settings;
        let client = catalog::connect(database).await?;
        catalog::check_logical_replication(&client).await?;
        if messages.enabled {
            let version = failover::server_version(&client).await?;
            if version < message::FIRST_VERSION {
                return Err(catalog::CatalogError::Unsupported {
                    key: "messages.enabled",
                    reason: format!(
                        "true, but the pgoutput of PostgreSQL {} cannot send pg_logical_emit_message messages (14 and later can): \
                         set messages.enabled = false and write events to the outbox table, or upgrade the server",
                        version / 10_000
                    ),
                }
                .into());
            }
        }
        let coverage_query = Coverage::prepare(&client).await?;
        let flushed_query = client
            .prepare(
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                              ELSE pg_current_wal_flush_lsn() END)::text",
            )
            .await
            .map_err(catalog::CatalogError::from)?;
        let coverage = ensure_publication(&client, &coverage_query, settings).await?;
        let prepared = gap_repair::prepare(
            &client,
            slot,
            checkpoint_table.as_deref(),
            *gap_repair_margin,
            *slot_create,
        )
        .await?;
        if let Prepared::Repair(since) = prepared {
            return Err(SourceError::SlotLost(since));
        }
        let failover = failover::wanted(&client, *slot_failover).await?;
        let confirmed = catalog::ensure_slot(
            &client,
            slot,
            outbox,
            failover,
            prepared == Prepared::Create,
        )
        .await?;
        // A SQL_ASCII database stores bytes in no known encoding, and the server refuses to
        // convert ones that are not UTF-8: take them as they are.
        let encoding: String = client
            .query_one("SHOW server_encoding", &[])
            .await
            .map_err(catalog::CatalogError::from)?
            .get(0);
        let client_encoding = if encoding == "SQL_ASCII" {
            "SQL_ASCII"
        } else {
            "UTF8"
        };

        let mut connection = ReplicationConnection::connect(database, client_encoding).await?;
        if failover
            && failover::slot_state(&client, slot)
                .await?
                .is_some_and(|state| !state.failover)
        {
            connection.execute(&failover::enable_command(slot)).await?;
            tracing::info!(slot = %slot, "turned on failover for the slot: standbys that sync slots now keep a copy of it");
        }
        let mut options = vec![
            ("proto_version", "1".to_owned()),
            (
                "publication_names",
                format!("\"{}\"", publication.replace('"', "\"\"")),
            ),
        ];
        // Only where asked: PostgreSQL 13 refuses the option, and every message of every prefix
        // would otherwise cross the network for nothing.
        if messages.enabled {
            options.push(("messages", "true".to_owned()));
        }
        let stream = connection.start(slot, Lsn::ZERO, &options).await?;
        tracing::debug!(slot = %slot, from = %confirmed, "replication started");
        let source = LogicalSource {
            stream,
            catalog: client,
            coverage_query,
            flushed_query,
            settings: settings.clone(),
            layouts: HashMap::new(),
            remapping: None,
            open_transaction: None,
            open_xid: None,
            last_position: confirmed,
            oid: coverage.oid,
            verified_through: confirmed,
            acknowledged: confirmed,
            commits: VecDeque::new(),
            recorder: None,
        };
        Ok((source, confirmed))
    }

    fn apply(&mut self, message: ReplicationMessage) -> Result<Step, SourceError> {
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
                Ok(Step::Change(Change::Keepalive {
                    position,
                    reply_requested,
                }))
            }
            ReplicationMessage::XLogData { data, .. } => match pgoutput::decode(data)? {
                LogicalMessage::Begin {
                    final_lsn,
                    commit_time,
                    xid,
                } => {
                    self.open_transaction =
                        Some((final_lsn, pgoutput::to_system_time(commit_time)));
                    self.open_xid = Some(xid);
                    Ok(Step::Nothing)
                }
                LogicalMessage::Commit { end_lsn, .. } => {
                    if let Some((_, committed_at)) = self.open_transaction.take() {
                        self.commits.push_back((end_lsn, committed_at));
                    }
                    self.last_position = self.last_position.max(end_lsn);
                    Ok(Step::Change(Change::Position(end_lsn)))
                }
                LogicalMessage::Relation(relation) => {
                    let (schema, table) = self.settings.outbox.qualified_name();
                    // By name, not by oid: a table re-created or swapped in under the outbox's name
                    // is the outbox from its first row on.
                    if relation.namespace != schema || relation.name != table {
                        self.layouts.insert(relation.id, None);
                        return Ok(Step::Nothing);
                    }
                    match self.settings.outbox.layout(&relation.columns) {
                        Ok(layout) => {
                            self.layouts
                                .insert(relation.id, Some(Mapped { layout, relation }));
                            Ok(Step::Nothing)
                        }
                        Err(missing) => Ok(Step::Remap(relation, missing)),
                    }
                }
                LogicalMessage::Insert {
                    relation_id,
                    values,
                } => {
                    let layout = match self.layouts.get(&relation_id) {
                        Some(Some(mapped)) => &mapped.layout,
                        Some(None) => return Ok(Step::Nothing),
                        None => {
                            return Err(ReplicationError::Protocol(format!(
                                "Insert into relation {relation_id} before its Relation message"
                            ))
                            .into())
                        }
                    };
                    let (commit_lsn, committed_at) = self.open_transaction.ok_or_else(|| {
                        ReplicationError::Protocol("Insert outside a transaction".into())
                    })?;
                    let (mut event, warnings) =
                        layout.event(&values, Origin::Commit(commit_lsn), committed_at);
                    event.transaction_id = self.open_xid;
                    for warning in warnings {
                        tracing::warn!(event_id = %event.id, lsn = %commit_lsn, "{warning}");
                    }
                    Ok(Step::Change(Change::Event(event)))
                }
                LogicalMessage::Message {
                    transactional,
                    lsn,
                    prefix,
                    content,
                } => {
                    if prefix != self.settings.messages.prefix {
                        return Ok(Step::Nothing);
                    }
                    if transactional && self.open_transaction.is_none() {
                        return Err(ReplicationError::Protocol(
                            "transactional message outside a transaction".into(),
                        )
                        .into());
                    }
                    Ok(Step::Change(
                        match message::event(transactional, lsn, &content, self.open_transaction) {
                            Ok(mut event) => Change::Message {
                                event: {
                                    event.transaction_id = self.open_xid.filter(|_| transactional);
                                    event
                                },
                                rejected: None,
                            },
                            Err(rejected) => Change::Message {
                                event: rejected.event,
                                rejected: Some(rejected.reason),
                            },
                        },
                    ))
                }
                LogicalMessage::Ignored(_) => Ok(Step::Nothing),
            },
        }
    }

    /// Maps an outbox relation the configured names do not find, when its columns were only
    /// renamed (same count, same types, same order): forward, from the version this session saw
    /// before; or backward, when the configuration names today's columns and the stream replays a
    /// version from before the rename. Anything else stops the relay before this transaction.
    async fn remap(
        &mut self,
        relation: Relation,
        missing: MissingColumns,
    ) -> Result<(), SourceError> {
        let outbox = &self.settings.outbox;
        if let Some(Some(known)) = self.layouts.get(&relation.id) {
            if known.relation.types == relation.types {
                tracing::warn!(
                    table = %outbox.table,
                    from = ?known.relation.columns,
                    to = ?relation.columns,
                    "outbox columns were renamed; following the rename by position. Set the new names in [outbox.columns] \
                     (or the column flags) before the relay next starts, or it stops at the renamed table"
                );
                let layout = known.layout.clone();
                self.layouts
                    .insert(relation.id, Some(Mapped { layout, relation }));
                return Ok(());
            }
        }
        let current = publication::columns(&self.catalog, relation.id).await?;
        let types: Vec<u32> = current.iter().map(|(_, t)| *t).collect();
        let names: Vec<String> = current.into_iter().map(|(n, _)| n).collect();
        if types == relation.types {
            if let Ok(layout) = outbox.layout(&names) {
                tracing::info!(
                    table = %outbox.table,
                    then = ?relation.columns,
                    now = ?names,
                    "the stream replays the outbox as it was before a column rename; mapping it by position to today's columns"
                );
                self.layouts
                    .insert(relation.id, Some(Mapped { layout, relation }));
                return Ok(());
            }
        }
        let at = self
            .open_transaction
            .map_or(self.last_position, |(lsn, _)| lsn);
        tracing::error!(
            table = %outbox.table,
            columns = ?relation.columns,
            transaction = %at,
            "the outbox's columns no longer match the configuration; stopping before this transaction"
        );
        Err(missing.into())
    }

    /// Reads the catalog again when `flush` passes WAL not yet covered by a reading.
    async fn verify(&mut self, flush: Lsn) -> Result<(), SourceError> {
        if flush <= self.verified_through {
            return Ok(());
        }
        // Read first, in a statement of its own, so that the coverage reading's snapshot sees every
        // commit up to here: any swap or ALTER PUBLICATION that rows up to here depend on.
        let flushed: String = self
            .catalog
            .query_one(&self.flushed_query, &[])
            .await
            .map_err(catalog::CatalogError::from)?
            .get(0);
        let through = catalog::parse_lsn(flushed)?.max(self.last_position);
        let LogicalSettings {
            slot,
            publication,
            outbox,
            ..
        } = &self.settings;
        let coverage =
            Coverage::read(&self.catalog, &self.coverage_query, publication, outbox).await?;
        coverage.problem(publication, slot, self.acknowledged, outbox)?;
        if let (Some(was), Some(now)) = (self.oid, coverage.oid) {
            if was != now && !coverage.follows_new_tables() {
                return Err(publication::replaced(publication, outbox, was, now).into());
            }
        }
        self.oid = coverage.oid;
        self.verified_through = through;
        tracing::debug!(%through, "the publication still streams the outbox's inserts");
        Ok(())
    }

    /// Records in the checkpoint a position the server has been sent, with the commit time of the
    /// last transaction it covers.
    fn record(&mut self, flush: Lsn) {
        let last_commit = self.last_commit_through(flush);
        if let Some(recorder) = &self.recorder {
            recorder.acknowledged(flush, last_commit);
        }
    }

    /// The commit time of the last transaction that ends at or before `flush`, if one was received
    /// since the last call; forgets those transactions.
    fn last_commit_through(&mut self, flush: Lsn) -> Option<SystemTime> {
        let mut last_commit = None;
        while let Some(&(end, committed_at)) = self.commits.front() {
            if end > flush {
                break;
            }
            last_commit = Some(committed_at);
            self.commits.pop_front();
        }
        last_commit
    }

    /// Records every acknowledged position to the checkpoint table.
    pub fn recording_to(mut self, recorder: Option<Recorder>) -> LogicalSource {
        self.recorder = recorder;
        self
    }

    /// Reports `flush`, or as much of it as the catalog vouches for, and why not all of it.
    async fn verified_flush(&mut self, flush: Lsn) -> (Lsn, Result<(), SourceError>) {
        match self.verify(flush).await {
            Ok(()) => (flush, Ok(())),
            Err(error) => (flush.min(self.verified_through), Err(error)),
        }
    }
}

impl Source for LogicalSource {
    const POSITION_IS_LSN: bool = true;
    const MODE: &'static str = "logical";

    async fn next(&mut self) -> Result<Change, SourceError> {
        loop {
            if let Some((relation, missing)) = self.remapping.clone() {
                self.remap(relation, missing).await?;
                self.remapping = None;
            }
            let message = match self.stream.next().await {
                // pgoutput looks the publication up as of the WAL it decodes; past its drop it
                // fails every session, whether or not the publication was created again.
                Err(ReplicationError::Server(e))
                    if e.code == "42704" && e.message.contains("publication") =>
                {
                    let LogicalSettings {
                        slot, publication, ..
                    } = &self.settings;
                    return Err(publication::dropped(publication, slot, self.acknowledged).into());
                }
                message => message?,
            }
            .ok_or_else(|| {
                ReplicationError::Protocol("server ended the replication stream".into())
            })?;
            match self.apply(message)? {
                Step::Change(change) => return Ok(change),
                Step::Nothing => {}
                Step::Remap(relation, missing) => self.remapping = Some((relation, missing)),
            }
        }
    }

    async fn acknowledge(&mut self, flush: Lsn, reply_requested: bool) -> Result<(), SourceError> {
        let (flush, verified) = self.verified_flush(flush).await;
        self.stream.send_status(flush, reply_requested).await?;
        self.acknowledged = flush;
        self.record(flush);
        verified
    }

    async fn finish(mut self, flush: Lsn) -> Result<(), SourceError> {
        let (flush, verified) = self.verified_flush(flush).await;
        let last_commit = self.last_commit_through(flush);
        let recorder = self.recorder.take();
        self.stream.finish(flush, Duration::from_secs(5)).await?;
        if let Some(recorder) = recorder {
            recorder.acknowledged(flush, last_commit);
        }
        verified
    }
}
