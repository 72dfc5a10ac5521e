//! Reads outbox rows from the table itself, inside one transaction's snapshot and in the order
//! polling relays them: the rows a new slot's snapshot publishes before streaming, and the rows
//! `replay` republishes.
//!
//! Order is the sequence column's, when the table has one (polling's argument holds: a service
//! serializes the writes of one aggregate, so its later event gets the larger `seq`); otherwise
//! `created_at`, then `id`, which keeps an aggregate's order only as far as its transactions' start
//! times do. Rows are fetched through a cursor, a thousand at a time, so memory stays bounded.
//!
//! Positions are row counts, not WAL: the source is done once the broker confirmed every row.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset};
use futures::future::BoxFuture;
use postgres_protocol::escape::escape_identifier;
use tokio_postgres::{Client, Row};

use crate::event::Origin;
use crate::lsn::Lsn;
use crate::outbox::{quote_literal, OutboxTable, RowLayout};
use crate::pg::catalog::CatalogError;
use crate::source::polling::{column_values, table_columns, TIMESTAMPS};
use crate::source::{Change, Source, SourceError};

/// Rows per FETCH from the cursor.
const FETCH_ROWS: usize = 1000;

const CURSOR: &str = "outbox_relay_rows";

/// Which rows to read; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// `created_at` at or after this.
    pub since: Option<DateTime<FixedOffset>>,
    /// `created_at` before this.
    pub until: Option<DateTime<FixedOffset>>,
    pub aggregate_types: Vec<String>,
    pub aggregate_ids: Vec<String>,
    pub ids: Vec<String>,
    /// Rows polling has not relayed: `published_at IS NULL`.
    pub unpublished: bool,
}

/// The SQL that reads one filter's rows from one outbox, built against the table's columns.
#[derive(Debug, Clone)]
pub struct TableReading {
    select: String,
    count: String,
    layout: RowLayout,
}

impl TableReading {
    /// Checks that the table has what the filter needs (a timestamp `created_at` for a time range,
    /// `published_at` for unpublished rows) and builds the statements.
    pub async fn prepare(
        client: &Client,
        outbox: &OutboxTable,
        filter: &RowFilter,
    ) -> Result<TableReading, SourceError> {
        crate::pg::catalog::check_outbox_table(client, outbox).await?;
        let table = table_columns(client, outbox).await?;
        let c = &outbox.columns;
        let has = |name: &String| table.names.contains(name);
        let selected = table.event_columns(outbox);
        let layout = outbox.layout(
            &selected
                .iter()
                .filter(|n| has(n))
                .cloned()
                .collect::<Vec<_>>(),
        )?;
        let created_is_time = table
            .type_of(&c.created_at)
            .is_some_and(|t| TIMESTAMPS.contains(&t));
        let name = outbox.quoted_name();
        let mut conditions = Vec::new();
        if filter.since.is_some() || filter.until.is_some() {
            if !created_is_time {
                return Err(CatalogError::misconfigured(
                    format!(
                        "rows are chosen by time, but {} has no timestamp column {}",
                        outbox.table, c.created_at
                    ),
                    "point outbox.columns.created_at at the column that holds each row's insertion time",
                )
                .into());
            }
            let created = escape_identifier(&c.created_at);
            if let Some(since) = filter.since {
                conditions.push(format!(
                    "{created} >= {}::timestamptz",
                    quote_literal(&since.to_rfc3339())
                ));
            }
            if let Some(until) = filter.until {
                conditions.push(format!(
                    "{created} < {}::timestamptz",
                    quote_literal(&until.to_rfc3339())
                ));
            }
        }
        if filter.unpublished {
            if !has(&c.published_at) {
                return Err(CatalogError::misconfigured(
                    format!(
                        "`unpublished` picks the rows whose {} is null, but {} has no such column (polling marks relayed rows in it)",
                        c.published_at, outbox.table
                    ),
                    "choose `all` or `since=<time>` instead, or point outbox.columns.published_at at the column polling marks",
                )
                .into());
            }
            conditions.push(format!("{} IS NULL", escape_identifier(&c.published_at)));
        }
        let any = |column: &str, values: &[String], cast: &str| {
            let list: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
            format!(
                "{} = ANY(ARRAY[{}]::text[]{cast})",
                escape_identifier(column),
                list.join(", ")
            )
        };
        if !filter.ids.is_empty() {
            conditions.push(any(&c.id, &filter.ids, &format!("::{}[]", table.id_type)));
        }
        if !filter.aggregate_types.is_empty() {
            conditions.push(any(&c.aggregate_type, &filter.aggregate_types, ""));
        }
        if !filter.aggregate_ids.is_empty() {
            conditions.push(any(&c.aggregate_id, &filter.aggregate_ids, ""));
        }
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let order = if has(&c.sequence) {
            escape_identifier(&c.sequence)
        } else if created_is_time {
            format!(
                "{}, {}",
                escape_identifier(&c.created_at),
                escape_identifier(&c.id)
            )
        } else {
            escape_identifier(&c.id)
        };
        let committed_at = if created_is_time {
            format!(
                "COALESCE({}::timestamptz, clock_timestamp())",
                escape_identifier(&c.created_at)
            )
        } else {
            "clock_timestamp()".to_owned()
        };
        let present: Vec<String> = selected.into_iter().filter(|n| has(n)).collect();
        let list = table.select_list(&present);
        Ok(TableReading {
            select: format!(
                "SELECT {list}, {committed_at} FROM {name}{condition} ORDER BY {order}"
            ),
            count: format!("SELECT count(*) FROM {name}{condition}"),
            layout,
        })
    }

    /// How many rows the filter picks, as of the client's snapshot.
    pub async fn count(&self, client: &Client) -> Result<i64, SourceError> {
        Ok(client
            .query_one(&self.count, &[])
            .await
            .map_err(CatalogError::Query)?
            .get(0))
    }
}

type Fetching = BoxFuture<'static, Result<Vec<Row>, tokio_postgres::Error>>;

/// The rows of a [`TableReading`], as events; each fetch is followed by a position, and once every
/// row is read, a last one that stands for the end.
pub struct TableSource {
    client: Arc<Client>,
    layout: RowLayout,
    /// Every row read committed before this WAL position.
    before: Lsn,
    replayed: bool,
    fetching: Option<Fetching>,
    ready: VecDeque<Change>,
    rows: u64,
    /// Every row is read, and this position follows the last.
    end: Option<Lsn>,
    acknowledged: Lsn,
}

impl TableSource {
    /// Opens a cursor over the reading's rows on `client`, which must be inside the transaction
    /// whose snapshot is to be read. `before` is the WAL position that snapshot precedes.
    pub async fn open(
        client: Client,
        reading: &TableReading,
        before: Lsn,
        replayed: bool,
    ) -> Result<TableSource, SourceError> {
        client
            .batch_execute(&format!(
                "DECLARE {CURSOR} NO SCROLL CURSOR FOR {}",
                reading.select
            ))
            .await
            .map_err(CatalogError::Query)?;
        Ok(TableSource {
            client: Arc::new(client),
            layout: reading.layout.clone(),
            before,
            replayed,
            fetching: None,
            ready: VecDeque::new(),
            rows: 0,
            end: None,
            acknowledged: Lsn::ZERO,
        })
    }

    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Every row is read and the broker confirmed them all.
    pub fn is_done(&self) -> bool {
        self.end.is_some_and(|end| self.acknowledged >= end)
    }

    fn event(&mut self, row: &Row) -> crate::event::Event {
        let texts = row.len() - 1;
        let values = column_values(row, texts);
        let committed_at = row
            .try_get::<_, SystemTime>(texts)
            .unwrap_or_else(|_| SystemTime::now());
        let origin = Origin::Table {
            before: self.before,
            row: self.rows,
            replayed: self.replayed,
        };
        let (event, warnings) = self.layout.event(&values, origin, committed_at);
        for warning in warnings {
            tracing::warn!(event_id = %event.id, "{warning}");
        }
        self.rows += 1;
        event
    }
}

impl Source for TableSource {
    const MODE: &'static str = "table";
    const POSITION_IS_LSN: bool = false;

    async fn next(&mut self) -> Result<Change, SourceError> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(change);
            }
            if self.is_done() {
                return Err(SourceError::Drained);
            }
            if self.end.is_some() {
                // The pipeline acknowledges the end once everything is confirmed; then the check
                // above ends the session.
                std::future::pending::<()>().await;
            }
            let fetching = self.fetching.get_or_insert_with(|| {
                let client = self.client.clone();
                Box::pin(async move {
                    client
                        .query(&format!("FETCH {FETCH_ROWS} FROM {CURSOR}"), &[])
                        .await
                })
            });
            let rows = fetching.await;
            self.fetching = None;
            let rows = rows.map_err(CatalogError::Query)?;
            for row in &rows {
                let event = self.event(row);
                self.ready.push_back(Change::Event(event));
            }
            // Positions count from 1, so that even an empty reading has an end to acknowledge.
            let position = Lsn(self.rows + 1);
            if rows.len() < FETCH_ROWS {
                self.end = Some(position);
            }
            self.ready.push_back(Change::Position(position));
        }
    }

    async fn acknowledge(
        &mut self,
        position: Lsn,
        _reply_requested: bool,
    ) -> Result<(), SourceError> {
        self.acknowledged = self.acknowledged.max(position);
        Ok(())
    }

    async fn finish(mut self, position: Lsn) -> Result<(), SourceError> {
        self.acknowledge(position, false).await
    }
}
