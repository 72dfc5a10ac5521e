//! PostgreSQL persistence: invoices, their lines, the per-year number counters and the
//! `processed_events` ledger that makes applying an event idempotent.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use pgconn::{Database, DatabaseUrlError};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::invoice::{invoice_number, Invoice, InvoiceDraft, InvoiceLine, Total};
use crate::migrations;

/// Bounds waiting for a pooled connection and opening a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("invalid database URL: {0}")]
    Url(#[from] DatabaseUrlError),
    #[error("cannot set up the connection pool: {0}")]
    Setup(String),
    #[error("invoice {invoice}: {reason}")]
    Corrupt { invoice: Uuid, reason: String },
}

/// The event an invoice is recorded for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    pub id: Uuid,
    pub event_type: String,
    pub correlation_id: Option<String>,
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Invoiced(Invoice),
    /// The event was applied before: a redelivery.
    AlreadyProcessed,
    /// Another event already invoiced this order; this one is recorded as processed and ignored.
    OrderAlreadyInvoiced {
        invoice_id: Uuid,
    },
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Opens the pool and brings the schema up to date. `database_url` takes libpq's `sslmode`,
    /// `sslrootcert`, `sslcert` and `sslkey`.
    pub async fn connect(database_url: &str, pool_size: usize) -> Result<Store, StoreError> {
        let database =
            Database::parse(database_url)?.with_default_application_name("invoice-service");
        let manager = database.deadpool_manager(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Setup(e.to_string()))?;
        let mut client = pool.get().await?;
        let applied = migrations::migrate(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, "applied schema migrations");
        }
        Ok(Store { pool })
    }

    /// Records `event` and, unless it was applied before or its order is already invoiced, the
    /// invoice for `draft`, all in one transaction.
    ///
    /// The insert into `processed_events` decides: if the event's row exists, nothing is written.
    /// A concurrent delivery of the same event waits on that row's key until this transaction
    /// ends and then finds it.
    pub async fn record(
        &self,
        event: &SourceEvent,
        draft: &InvoiceDraft,
    ) -> Result<Recorded, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let existing: Option<Uuid> = tx
            .query_opt(
                "select id from invoices where order_id = $1",
                &[&draft.order_id],
            )
            .await?
            .map(|row| row.get(0));
        let outcome = if existing.is_some() {
            "order-already-invoiced"
        } else {
            "invoiced"
        };
        let inserted = tx
            .execute(
                "insert into processed_events (event_id, event_type, outcome) values ($1, $2, $3)
                 on conflict (event_id) do nothing",
                &[&event.id, &event.event_type, &outcome],
            )
            .await?;
        if inserted == 0 {
            return Ok(Recorded::AlreadyProcessed);
        }
        if let Some(invoice_id) = existing {
            tx.commit().await?;
            return Ok(Recorded::OrderAlreadyInvoiced { invoice_id });
        }

        let issued_at = Utc::now();
        let year = issued_at.year();
        let sequence: i64 = tx
            .query_one(
                "insert into invoice_number_counters (year, last_number) values ($1, 1)
                 on conflict (year) do update
                 set last_number = invoice_number_counters.last_number + 1
                 returning last_number",
                &[&year],
            )
            .await?
            .get(0);
        let invoice = Invoice {
            id: Uuid::new_v4(),
            number: invoice_number(year, sequence),
            order_id: draft.order_id,
            customer_id: draft.customer_id,
            currency: draft.currency.clone(),
            lines: draft.lines.clone(),
            total: Total {
                amount: draft.total,
                currency: draft.currency.clone(),
            },
            sales_channel: draft.sales_channel.clone(),
            issued_at,
        };
        tx.execute(
            "insert into invoices (id, number, order_id, customer_id, currency, total, sales_channel,
                                   order_confirmed_at, issued_at, event_id, correlation_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &invoice.id,
                &invoice.number,
                &invoice.order_id,
                &invoice.customer_id,
                &invoice.currency,
                &invoice.total.amount,
                &invoice.sales_channel,
                &draft.order_confirmed_at,
                &invoice.issued_at,
                &event.id,
                &event.correlation_id,
            ],
        )
        .await?;
        let insert_line = tx
            .prepare(
                "insert into invoice_lines (invoice_id, line_no, product_id, quantity, unit_price,
                                            line_total)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        for (line_no, line) in (1_i32..).zip(&invoice.lines) {
            tx.execute(
                &insert_line,
                &[
                    &invoice.id,
                    &line_no,
                    &line.product_id,
                    &i64::from(line.quantity),
                    &line.unit_price,
                    &line.line_total,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Recorded::Invoiced(invoice))
    }

    pub async fn invoice(&self, id: Uuid) -> Result<Option<Invoice>, StoreError> {
        let rows = self
            .load(
                &format!("select {INVOICE_COLUMNS} from invoices where id = $1"),
                id,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// At most one, since an order is invoiced once; a list so that "none" is simply empty.
    pub async fn invoices_for_order(&self, order_id: Uuid) -> Result<Vec<Invoice>, StoreError> {
        self.load(
            &format!(
                "select {INVOICE_COLUMNS} from invoices where order_id = $1 order by issued_at"
            ),
            order_id,
        )
        .await
    }

    /// Whether the database answers, for the health check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.simple_query("select 1").await?;
        Ok(())
    }

    /// Invoices selected by `query` (one uuid parameter) with their lines.
    async fn load(&self, query: &str, parameter: Uuid) -> Result<Vec<Invoice>, StoreError> {
        let client = self.pool.get().await?;
        let heads = client.query(query, &[&parameter]).await?;
        let ids: Vec<Uuid> = heads.iter().map(|row| row.get("id")).collect();
        let lines = client
            .query(
                "select invoice_id, product_id, quantity, unit_price, line_total from invoice_lines
                 where invoice_id = any($1) order by invoice_id, line_no",
                &[&ids],
            )
            .await?;
        heads
            .iter()
            .map(|head| {
                let id: Uuid = head.get("id");
                let lines = lines
                    .iter()
                    .filter(|line| line.get::<_, Uuid>("invoice_id") == id)
                    .map(|line| invoice_line(id, line))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(invoice(head, lines))
            })
            .collect()
    }
}

const INVOICE_COLUMNS: &str =
    "id, number, order_id, customer_id, currency, total, sales_channel, issued_at";

fn invoice(row: &Row, lines: Vec<InvoiceLine>) -> Invoice {
    let currency: String = row.get("currency");
    Invoice {
        id: row.get("id"),
        number: row.get("number"),
        order_id: row.get("order_id"),
        customer_id: row.get("customer_id"),
        lines,
        total: Total {
            amount: row.get("total"),
            currency: currency.clone(),
        },
        currency,
        sales_channel: row.get("sales_channel"),
        issued_at: row.get::<_, DateTime<Utc>>("issued_at"),
    }
}

fn invoice_line(invoice: Uuid, row: &Row) -> Result<InvoiceLine, StoreError> {
    let quantity: i64 = row.get("quantity");
    Ok(InvoiceLine {
        product_id: row.get("product_id"),
        quantity: u32::try_from(quantity).map_err(|_| StoreError::Corrupt {
            invoice,
            reason: format!("line quantity {quantity} is out of range"),
        })?,
        unit_price: row.get("unit_price"),
        line_total: row.get("line_total"),
    })
}
