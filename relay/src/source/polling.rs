//! The polling source, for databases without logical replication: claims unpublished rows in
//! insertion order and marks or deletes them only once the broker confirmed their events.
//!
//! Each claim is a transaction on a connection of its own: `SELECT … ORDER BY seq LIMIT n FOR UPDATE
//! SKIP LOCKED`. Its row locks keep the next claims (on other connections) off those rows while their
//! events are in flight, and it commits its mark or delete only when acknowledged. A crash rolls
//! every open claim back, so unconfirmed rows are claimed again: at-least-once, as in logical mode.
//!
//! Order: there is no cursor. Every claim takes the oldest unpublished rows visible now, so a row
//! whose transaction commits late with a low sequence value is claimed by the next poll, never
//! skipped. A service serializes the writes of one aggregate (a row lock or version check on the
//! aggregate), so an aggregate's later event is inserted only after its earlier one committed and
//! can never be visible without it: per-aggregate order is the order of `seq`. docs/POLLING.md.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use postgres_protocol::escape::escape_identifier;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row};
use tokio_util::task::AbortOnDropHandle;

use crate::cleanup::CleanupMode;
use crate::event::Origin;
use crate::lsn::Lsn;
use crate::outbox::{OutboxTable, RowLayout};
use crate::pg::catalog::{self, CatalogError};
use crate::pg::database::{self, Database};
use crate::pg::pgoutput::Value;
use crate::source::leader_lock::LeaderLock;
use crate::source::{Change, Source, SourceError};

#[derive(Debug, Clone)]
pub struct PollingSettings {
    pub database: Database,
    pub outbox: OutboxTable,
    /// `delete` deletes relayed rows; `keep` sets their `published_at`.
    pub cleanup: CleanupMode,
    /// Most rows per claim.
    pub claim_size: usize,
    /// Claims open at once: each holds a connection until its events are confirmed.
    pub claims_in_flight: usize,
    /// How often to look for rows when no notification came.
    pub interval: Duration,
    /// The `LISTEN` channel the insert trigger notifies.
    pub channel: String,
    /// Install the notify trigger when missing (needs ownership of the table).
    pub install_trigger: bool,
    /// End the session with [`SourceError::Drained`] once a claim comes back short and every claim
    /// is settled: `auto` then moves on to logical replication.
    pub until_drained: bool,
}

/// A claim handed to the pipeline, awaiting acknowledgement.
struct Held {
    ticket: Lsn,
    client: Client,
    ids: Vec<String>,
}

type Claiming = BoxFuture<'static, Result<(Client, Vec<Row>), tokio_postgres::Error>>;

pub struct PollingSource {
    statements: Arc<Statements>,
    claim_size: usize,
    layout: RowLayout,
    sequence_column: String,
    idle: Vec<Client>,
    held: VecDeque<Held>,
    ready: VecDeque<Change>,
    /// The claim under way; kept here so that a cancelled `next` never loses claimed rows.
    claiming: Option<Claiming>,
    /// Look for rows now rather than waiting for a notification or the interval.
    due: bool,
    next_poll: Instant,
    interval: Duration,
    until_drained: bool,
    /// A claim came back short while draining: no more claims, the session ends once all settled.
    drained: bool,
    wakeups: mpsc::Receiver<()>,
    tickets: u64,
    /// Ids the broker refused for good: their rows are marked, never deleted, as a dead letter may
    /// not carry the whole payload.
    dead_lettered: HashSet<String>,
    _listener: Client,
    /// Keeps trying to install the notify trigger while the table is locked; stops with the source.
    _trigger_retry: Option<AbortOnDropHandle<()>>,
    leader: LeaderLock,
}

/// The SQL of one outbox layout, built once.
struct Statements {
    claim: String,
    /// Settles relayed rows: a delete, or a mark when rows are kept.
    settle: String,
    mark: String,
}

impl PollingSource {
    /// Takes the leader lock (or fails with [`SourceError::LockHeld`]), checks the table, installs
    /// the notify trigger if asked and allowed, and opens the claim connections.
    pub async fn connect(
        settings: &PollingSettings,
        dead_lettered: HashSet<String>,
    ) -> Result<PollingSource, SourceError> {
        let leader = LeaderLock::acquire(&settings.database, &settings.outbox).await?;
        let client = catalog::connect(&settings.database).await?;
        catalog::check_outbox_table(&client, &settings.outbox).await?;
        let columns = table_columns(&client, &settings.outbox).await?;
        let (statements, layout) = statements(
            &settings.outbox,
            &columns,
            settings.claim_size,
            settings.cleanup,
        )?;
        let trigger_retry = if settings.install_trigger {
            install_trigger(&client, settings).await?
        } else {
            None
        };
        drop(client);

        let (listener, wakeups) = database::connect_listening(&settings.database)
            .await
            .map_err(CatalogError::Connection)?;
        listener
            .batch_execute(&format!("LISTEN {}", escape_identifier(&settings.channel)))
            .await
            .map_err(CatalogError::Query)?;
        let mut idle = Vec::with_capacity(settings.claims_in_flight);
        for _ in 0..settings.claims_in_flight.max(1) {
            let client = catalog::connect(&settings.database).await?;
            // Until the table has statistics (a new or bulk-loaded outbox, before autovacuum's
            // analyze), the planner expects a few hundred unpublished rows and turns the claim into
            // a bitmap scan of every unpublished row and a sort, so each claim reads the whole
            // backlog and a drain is quadratic. These connections run only the claim and its
            // settling, so forbidding the sort here keeps the claim on the partial index's order.
            client
                .batch_execute("SET enable_sort = off")
                .await
                .map_err(CatalogError::Query)?;
            idle.push(client);
        }
        tracing::debug!(table = %settings.outbox.table, interval = ?settings.interval, channel = %settings.channel, "polling the table");
        Ok(PollingSource {
            statements: Arc::new(statements),
            claim_size: settings.claim_size,
            layout,
            sequence_column: settings.outbox.columns.sequence.clone(),
            idle,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            claiming: None,
            due: true,
            next_poll: Instant::now(),
            interval: settings.interval,
            until_drained: settings.until_drained,
            drained: false,
            wakeups,
            tickets: 0,
            dead_lettered,
            _listener: listener,
            _trigger_retry: trigger_retry,
            leader,
        })
    }

    fn start_claim(&mut self, client: Client) {
        let statements = self.statements.clone();
        self.claiming = Some(Box::pin(async move {
            client.batch_execute("BEGIN").await?;
            let rows = client.query(&statements.claim, &[]).await?;
            if rows.is_empty() {
                client.batch_execute("ROLLBACK").await?;
            }
            Ok((client, rows))
        }));
    }

    fn claimed(&mut self, client: Client, rows: Vec<Row>) {
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let (event, warnings) = self.event(row);
            for warning in warnings {
                tracing::warn!(event_id = %event.id, "{warning}");
            }
            ids.push(event.id.clone());
            self.ready.push_back(Change::Event(event));
        }
        self.tickets += 1;
        let ticket = Lsn(self.tickets);
        self.ready.push_back(Change::Position(ticket));
        self.held.push_back(Held {
            ticket,
            client,
            ids,
        });
    }

    /// Columns arrive as text (or, from a SQL_ASCII database, as raw bytes) in layout order, then
    /// the commit time (the row's `created_at`, or the claim's time when that is null) and the
    /// sequence number. A null in a row is the row's data, not a reason to stop the stream: the row
    /// is relayed with a warning.
    fn event(&self, row: &Row) -> (crate::event::Event, Vec<String>) {
        let texts = row.len().saturating_sub(2);
        let values = column_values(row, texts);
        let committed_at = row
            .try_get::<_, SystemTime>(texts)
            .unwrap_or_else(|_| SystemTime::now());
        let sequence = row.try_get::<_, Option<i64>>(texts + 1).ok().flatten();
        let (event, mut warnings) = self.layout.event(
            &values,
            Origin::Sequence(sequence.unwrap_or_default()),
            committed_at,
        );
        if sequence.is_none() {
            warnings.push(format!(
                "column {} is null (logged as seq=0): such rows are claimed after every numbered one; make it an identity column",
                self.sequence_column
            ));
        }
        (event, warnings)
    }
}

impl Source for PollingSource {
    const POSITION_IS_LSN: bool = false;
    const MODE: &'static str = "polling";

    async fn next(&mut self) -> Result<Change, SourceError> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(change);
            }
            if self.drained && self.held.is_empty() {
                return Err(SourceError::Drained);
            }
            if !self.leader.is_held() {
                return Err(SourceError::Closed("leader lock"));
            }
            if let Some(claiming) = self.claiming.as_mut() {
                let result = claiming.await;
                self.claiming = None;
                let (client, rows) = result.map_err(CatalogError::Query)?;
                // Rows committed before this claim's snapshot were all in it, held by an earlier
                // claim, or settled: a short claim leaves nothing older behind.
                self.drained = self.until_drained && rows.len() < self.claim_size;
                if rows.is_empty() {
                    self.idle.push(client);
                    self.next_poll = Instant::now() + self.interval;
                } else {
                    // A full claim suggests more rows wait; a short one that the table is drained.
                    self.due = rows.len() == self.claim_size;
                    self.claimed(client, rows);
                }
                continue;
            }
            if self.drained {
                // Acknowledgements settle the last claims; the check above then ends the session.
                std::future::pending::<()>().await;
            }
            if !self.due {
                tokio::select! {
                    woken = self.wakeups.recv() => {
                        woken.ok_or(SourceError::Closed("listening"))?;
                    }
                    _ = tokio::time::sleep_until(self.next_poll) => {}
                }
                self.due = true;
            }
            match self.idle.pop() {
                Some(client) => {
                    // Notifications that arrive from here on are for rows this claim may not see.
                    while self.wakeups.try_recv().is_ok() {}
                    self.due = false;
                    self.start_claim(client);
                }
                // Every connection holds a claim in flight; acknowledgements free them.
                None => std::future::pending::<()>().await,
            }
        }
    }

    async fn acknowledge(
        &mut self,
        position: Lsn,
        _reply_requested: bool,
    ) -> Result<(), SourceError> {
        while self.held.front().is_some_and(|h| h.ticket <= position) {
            let held = self.held.pop_front().expect("checked above");
            let client = settle(&self.statements, &self.dead_lettered, held)
                .await
                .map_err(CatalogError::Query)?;
            self.idle.push(client);
        }
        Ok(())
    }

    async fn finish(mut self, position: Lsn) -> Result<(), SourceError> {
        self.acknowledge(position, false).await
    }
}

/// Marks or deletes a confirmed claim's rows and commits, which releases them for good.
async fn settle(
    statements: &Statements,
    dead_lettered: &HashSet<String>,
    held: Held,
) -> Result<Client, tokio_postgres::Error> {
    let (dead, relayed): (Vec<String>, Vec<String>) = held
        .ids
        .into_iter()
        .partition(|id| dead_lettered.contains(id));
    if !relayed.is_empty() {
        held.client.execute(&statements.settle, &[&relayed]).await?;
    }
    if !dead.is_empty() {
        held.client.execute(&statements.mark, &[&dead]).await?;
    }
    held.client.batch_execute("COMMIT").await?;
    Ok(held.client)
}

/// The table's columns with their types (without modifiers), and the full type of its id column
/// (ids are compared in that type, so that the primary key's index serves the delete).
pub(super) struct TableColumns {
    pub(super) names: Vec<String>,
    types: Vec<String>,
    pub(super) id_type: String,
    /// A SQL_ASCII database stores bytes in no known encoding, and the server refuses to send ones
    /// that are not UTF-8 as text: such columns are claimed as their raw bytes.
    pub(super) raw_bytes: bool,
}

impl TableColumns {
    /// The columns an event is read from: the required ones, the optional ones the table has, and
    /// the further ones the configuration reads (required too).
    pub(super) fn event_columns(&self, outbox: &OutboxTable) -> Vec<String> {
        let c = &outbox.columns;
        let optional = [&c.headers, &c.created_at, &c.tracing_span_context]
            .into_iter()
            .filter(|n| self.names.contains(n));
        [
            &c.id,
            &c.aggregate_type,
            &c.aggregate_id,
            &c.event_type,
            &c.payload,
        ]
        .into_iter()
        .chain(optional)
        .chain(&outbox.extra_columns)
        .cloned()
        .collect()
    }

    /// `columns` as a select list, each as text, or in a SQL_ASCII database as its stored bytes:
    /// converting to the server's own encoding converts nothing. [`column_values`] reads them back.
    pub(super) fn select_list(&self, columns: &[String]) -> String {
        let list: Vec<String> = columns
            .iter()
            .map(|n| {
                if self.raw_bytes {
                    format!("convert_to({}::text, 'SQL_ASCII')", escape_identifier(n))
                } else {
                    format!("{}::text", escape_identifier(n))
                }
            })
            .collect();
        list.join(", ")
    }

    pub(super) fn type_of(&self, column: &str) -> Option<&str> {
        self.names
            .iter()
            .position(|n| n == column)
            .map(|i| self.types[i].as_str())
    }
}

pub(super) async fn table_columns(
    client: &Client,
    outbox: &OutboxTable,
) -> Result<TableColumns, SourceError> {
    let rows = client
        .query(
            "SELECT attname::text, format_type(atttypid, NULL), format_type(atttypid, atttypmod)
             FROM pg_attribute
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&outbox.quoted_name()],
        )
        .await
        .map_err(CatalogError::Query)?;
    let names = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let types = rows.iter().map(|r| r.get::<_, String>(1)).collect();
    let id_type = rows
        .iter()
        .find(|r| r.get::<_, &str>(0) == outbox.columns.id)
        .map(|r| r.get::<_, String>(2))
        .unwrap_or_else(|| "text".into());
    let raw_bytes = client
        .query_one(
            "SELECT current_setting('server_encoding') = 'SQL_ASCII'",
            &[],
        )
        .await
        .map_err(CatalogError::Query)?
        .get(0);
    Ok(TableColumns {
        names,
        types,
        id_type,
        raw_bytes,
    })
}

pub(super) const TIMESTAMPS: [&str; 2] =
    ["timestamp with time zone", "timestamp without time zone"];
const INTEGERS: [&str; 3] = ["smallint", "integer", "bigint"];

/// Polling orders rows by the sequence column and sets the published column itself: a column of
/// another type would fail every claim, or every mark after the broker confirmed (and so re-publish
/// the same rows every session). Found at session start instead, with the fix.
fn check_column_types(outbox: &OutboxTable, table: &TableColumns) -> Result<(), SourceError> {
    let c = &outbox.columns;
    for (column, allowed, role, wanted) in [
        (
            &c.sequence,
            &INTEGERS[..],
            "orders rows by insertion",
            "bigint GENERATED ALWAYS AS IDENTITY",
        ),
        (
            &c.published_at,
            &TIMESTAMPS[..],
            "marks relayed rows with the time",
            "timestamptz",
        ),
    ] {
        let Some(found) = table.type_of(column) else {
            continue;
        };
        if !allowed.contains(&found) {
            return Err(CatalogError::Misconfigured {
                problem: format!(
                    "column {column} of {} is {found}, but polling {role} in it: it must be one of {allowed:?}",
                    outbox.table
                ),
                fix: format!(
                    "point the outbox.columns setting at a column of that type, or add one as the table's owner: ALTER TABLE {} ADD COLUMN ... {wanted}",
                    outbox.quoted_name()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Builds the claim and settle statements, and the layout of the claimed rows' text columns.
fn statements(
    outbox: &OutboxTable,
    table: &TableColumns,
    claim_size: usize,
    cleanup: CleanupMode,
) -> Result<(Statements, RowLayout), SourceError> {
    let c = &outbox.columns;
    let has = |name: &String| table.names.contains(name);
    check_column_types(outbox, table)?;
    let missing: Vec<&str> = [&c.sequence, &c.published_at]
        .into_iter()
        .filter(|n| !has(n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(CatalogError::Misconfigured {
            problem: format!(
                "polling needs the column(s) {missing:?} on {}: one orders rows by insertion, one marks them relayed",
                outbox.table
            ),
            fix: format!("run as the table's owner: {}", outbox.polling_columns_ddl()),
        }
        .into());
    }
    let selected = table.event_columns(outbox);
    let missing: Vec<String> = selected.iter().filter(|n| !has(n)).cloned().collect();
    if !missing.is_empty() {
        return Err(crate::outbox::MissingColumns {
            table: outbox.table.clone(),
            missing,
        }
        .into());
    }
    let layout = outbox.layout(&selected)?;
    // Without a created_at timestamp (no column, a null, or a column of another type such as
    // epoch milliseconds, still relayed as the `created_at` header), lag counts from the claim.
    let committed_at = match table.type_of(&c.created_at) {
        Some(found) if TIMESTAMPS.contains(&found) => format!(
            "COALESCE({}::timestamptz, clock_timestamp())",
            escape_identifier(&c.created_at)
        ),
        Some(found) => {
            tracing::warn!(
                column = %c.created_at,
                r#type = found,
                "the created_at column is not a timestamp: relay lag counts from each row's claim instead"
            );
            "clock_timestamp()".to_owned()
        }
        None => "clock_timestamp()".to_owned(),
    };
    let list = table.select_list(&selected);
    let (name, id, seq, published) = (
        outbox.quoted_name(),
        escape_identifier(&c.id),
        escape_identifier(&c.sequence),
        escape_identifier(&c.published_at),
    );
    let ids = format!("{id} = ANY($1::text[]::{}[])", table.id_type);
    let mark = format!("UPDATE {name} SET {published} = now() WHERE {ids}");
    let statements = Statements {
        claim: format!(
            "SELECT {list}, {committed_at}, {seq}::bigint FROM {name} WHERE {published} IS NULL ORDER BY {seq} LIMIT {claim_size} FOR UPDATE SKIP LOCKED"
        ),
        settle: match cleanup {
            CleanupMode::Delete => format!("DELETE FROM {name} WHERE {ids}"),
            CleanupMode::Keep => mark.clone(),
        },
        mark,
    };
    Ok((statements, layout))
}

/// The first `count` columns of a row selected by [`TableColumns::select_list`]: text, or raw bytes.
pub(super) fn column_values(row: &Row, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let bytes = match row.try_get::<_, Option<&str>>(i) {
                Ok(text) => text.map(str::as_bytes),
                Err(_) => row.try_get::<_, Option<&[u8]>>(i).ok().flatten(),
            };
            bytes.map_or(Value::Null, |b| Value::Text(Bytes::copy_from_slice(b)))
        })
        .collect()
}

/// How long the trigger's DDL may wait for its lock on the table. The lock it takes conflicts with
/// INSERTs, and PostgreSQL queues every later INSERT behind a waiting lock request: without this
/// bound, one service transaction left open would block all writers until it ended.
const TRIGGER_LOCK_TIMEOUT: &str = "100ms";

/// Pauses between installation attempts while the table stays locked.
const TRIGGER_RETRY_FIRST: Duration = Duration::from_millis(500);
const TRIGGER_RETRY_MAX: Duration = Duration::from_secs(30);

/// Installs the notify trigger unless present. Without the privilege, polling still works at the
/// interval; the warning carries the SQL for the table's owner. While another transaction holds a
/// lock on the table, polling starts at the interval and a background task keeps trying (returned,
/// to be dropped with the source).
async fn install_trigger(
    client: &Client,
    settings: &PollingSettings,
) -> Result<Option<AbortOnDropHandle<()>>, SourceError> {
    let present: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = 'outbox_relay_notify')",
            &[&settings.outbox.quoted_name()],
        )
        .await
        .map_err(CatalogError::Query)?
        .get(0);
    if present {
        return Ok(None);
    }
    match try_install_trigger(client, settings).await {
        Ok(()) => Ok(None),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::warn!(
                table = %settings.outbox.table,
                interval = ?settings.interval,
                "cannot install the notify trigger now: another transaction holds a lock on the table, and waiting for it would block the services' inserts. Polling at the interval meanwhile, and retrying in the background"
            );
            let settings = settings.clone();
            Ok(Some(AbortOnDropHandle::new(tokio::spawn(async move {
                retry_install_trigger(&settings).await
            }))))
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            tracing::warn!(
                table = %settings.outbox.table,
                interval = ?settings.interval,
                "cannot install the notify trigger ({}); polling at the interval instead. To wake on inserts, run as the table's owner:\n{}",
                crate::pg::error_chain(&e),
                settings.outbox.notify_trigger_ddl(&settings.channel)
            );
            Ok(None)
        }
        Err(e) => Err(CatalogError::Query(e).into()),
    }
}

async fn try_install_trigger(
    client: &Client,
    settings: &PollingSettings,
) -> Result<(), tokio_postgres::Error> {
    let ddl = settings.outbox.notify_trigger_ddl(&settings.channel);
    let sql = format!("BEGIN;\nSET LOCAL lock_timeout = '{TRIGGER_LOCK_TIMEOUT}';\n{ddl}COMMIT;");
    match client.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(table = %settings.outbox.table, channel = %settings.channel, "installed the trigger that wakes polling on inserts");
            Ok(())
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Tries again, with growing pauses, until the lock is had or something else goes wrong.
async fn retry_install_trigger(settings: &PollingSettings) {
    let mut pause = TRIGGER_RETRY_FIRST;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(TRIGGER_RETRY_MAX);
        let client = match catalog::connect(&settings.database).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "cannot connect to retry installing the notify trigger");
                continue;
            }
        };
        match try_install_trigger(&client, settings).await {
            Ok(()) => return,
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                tracing::debug!(retry_in = ?pause, "the outbox table is still locked; the notify trigger waits");
            }
            Err(e) => {
                tracing::warn!(
                    error = %crate::pg::error_chain(&e),
                    "cannot install the notify trigger; polling at the interval until the next session"
                );
                return;
            }
        }
    }
}
