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
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::{Client, Row};

use crate::cleanup::CleanupMode;
use crate::event::Origin;
use crate::lsn::Lsn;
use crate::outbox::{quote_ident, OutboxTable, RowLayout};
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
    idle: Vec<Client>,
    held: VecDeque<Held>,
    ready: VecDeque<Change>,
    /// The claim under way; kept here so that a cancelled `next` never loses claimed rows.
    claiming: Option<Claiming>,
    /// Look for rows now rather than waiting for a notification or the interval.
    due: bool,
    next_poll: Instant,
    interval: Duration,
    wakeups: mpsc::Receiver<()>,
    tickets: u64,
    /// Ids the broker refused for good: their rows are marked, never deleted, as a dead letter may
    /// not carry the whole payload.
    dead_lettered: HashSet<String>,
    _listener: Client,
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
        if settings.install_trigger {
            install_trigger(&client, settings).await?;
        }
        drop(client);

        let (listener, wakeups) = database::connect_listening(&settings.database)
            .await
            .map_err(CatalogError::Connection)?;
        listener
            .batch_execute(&format!("LISTEN {}", quote_ident(&settings.channel)))
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
        tracing::info!(table = %settings.outbox.table, interval = ?settings.interval, channel = %settings.channel, "streaming the outbox by polling the table");
        Ok(PollingSource {
            statements: Arc::new(statements),
            claim_size: settings.claim_size,
            layout,
            idle,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            claiming: None,
            due: true,
            next_poll: Instant::now(),
            interval: settings.interval,
            wakeups,
            tickets: 0,
            dead_lettered,
            _listener: listener,
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

    /// Columns arrive as text in layout order, then the commit time (the row's `created_at`) and
    /// the sequence number.
    fn event(&self, row: &Row) -> (crate::event::Event, Vec<String>) {
        let texts = row.len() - 2;
        let values: Vec<Value> = (0..texts)
            .map(|i| match row.get::<_, Option<&str>>(i) {
                Some(text) => Value::Text(Bytes::copy_from_slice(text.as_bytes())),
                None => Value::Null,
            })
            .collect();
        let committed_at: SystemTime = row.get(texts);
        let sequence: i64 = row.get(texts + 1);
        self.layout
            .event(&values, Origin::Sequence(sequence), committed_at)
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
            if !self.leader.is_held() {
                return Err(SourceError::Closed("leader lock"));
            }
            if let Some(claiming) = self.claiming.as_mut() {
                let result = claiming.await;
                self.claiming = None;
                let (client, rows) = result.map_err(CatalogError::Query)?;
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

/// The table's columns, and the type of its id column (ids are compared in that type, so that the
/// primary key's index serves the delete).
struct TableColumns {
    names: Vec<String>,
    id_type: String,
}

async fn table_columns(client: &Client, outbox: &OutboxTable) -> Result<TableColumns, SourceError> {
    let rows = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&outbox.quoted_name()],
        )
        .await
        .map_err(CatalogError::Query)?;
    let names = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let id_type = rows
        .iter()
        .find(|r| r.get::<_, &str>(0) == outbox.columns.id)
        .map(|r| r.get::<_, String>(1))
        .unwrap_or_else(|| "text".into());
    Ok(TableColumns { names, id_type })
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
    let mut selected: Vec<String> = [
        &c.id,
        &c.aggregate_type,
        &c.aggregate_id,
        &c.event_type,
        &c.payload,
    ]
    .into_iter()
    .cloned()
    .collect();
    selected.extend(
        [&c.headers, &c.created_at]
            .into_iter()
            .filter(|n| has(n))
            .cloned(),
    );
    let missing: Vec<String> = selected.iter().filter(|n| !has(n)).cloned().collect();
    if !missing.is_empty() {
        return Err(crate::outbox::MissingColumns {
            table: outbox.table.clone(),
            missing,
        }
        .into());
    }
    let layout = outbox.layout(&selected)?;
    // Without created_at, lag counts from the claim.
    let committed_at = if has(&c.created_at) {
        format!("{}::timestamptz", quote_ident(&c.created_at))
    } else {
        "clock_timestamp()".to_owned()
    };
    let list: Vec<String> = selected
        .iter()
        .map(|n| format!("{}::text", quote_ident(n)))
        .collect();
    let (name, id, seq, published) = (
        outbox.quoted_name(),
        quote_ident(&c.id),
        quote_ident(&c.sequence),
        quote_ident(&c.published_at),
    );
    let ids = format!("{id} = ANY($1::text[]::{}[])", table.id_type);
    let mark = format!("UPDATE {name} SET {published} = now() WHERE {ids}");
    let statements = Statements {
        claim: format!(
            "SELECT {}, {committed_at}, {seq}::bigint FROM {name} WHERE {published} IS NULL ORDER BY {seq} LIMIT {claim_size} FOR UPDATE SKIP LOCKED",
            list.join(", ")
        ),
        settle: match cleanup {
            CleanupMode::Delete => format!("DELETE FROM {name} WHERE {ids}"),
            CleanupMode::Keep => mark.clone(),
        },
        mark,
    };
    Ok((statements, layout))
}

/// Installs the notify trigger unless present. Without the privilege, polling still works at the
/// interval; the warning carries the SQL for the table's owner.
async fn install_trigger(client: &Client, settings: &PollingSettings) -> Result<(), SourceError> {
    let present: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = 'outbox_relay_notify')",
            &[&settings.outbox.quoted_name()],
        )
        .await
        .map_err(CatalogError::Query)?
        .get(0);
    if present {
        return Ok(());
    }
    let ddl = settings.outbox.notify_trigger_ddl(&settings.channel);
    match client.batch_execute(&format!("BEGIN;\n{ddl}COMMIT;")).await {
        Ok(()) => {
            tracing::info!(table = %settings.outbox.table, channel = %settings.channel, "installed the trigger that wakes polling on inserts");
            Ok(())
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            let _ = client.batch_execute("ROLLBACK").await;
            tracing::warn!(
                table = %settings.outbox.table,
                interval = ?settings.interval,
                "cannot install the notify trigger ({}); polling at the interval instead. To wake on inserts, run as the table's owner:\n{ddl}",
                crate::pg::error_chain(&e)
            );
            Ok(())
        }
        Err(e) => Err(CatalogError::Query(e).into()),
    }
}
