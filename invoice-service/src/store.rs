//! PostgreSQL persistence: invoices, their lines, rejections under the credit limit, credit notes that
//! void invoices, the per-year number counters, the `processed_events` ledger that makes applying an
//! event idempotent, and the saga's replies in the service's own outbox, each written in the
//! transaction of the change it reports.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use pgconn::{Database, DatabaseUrlError};
use tokio_postgres::Row;
use uuid::Uuid;

use contracts::Money;
use rust_decimal::Decimal;

use crate::credit::{self, Refusal};
use crate::invoice::{
    credit_note_number, invoice_number, Invoice, InvoiceDraft, InvoiceLine, Total,
};
use crate::{migrations, outbox};

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
    #[error("cannot serialize an event: {0}")]
    Serialize(#[from] serde_json::Error),
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
    /// Refused under the credit limit, now or by an earlier event about the order; `InvoiceRejected`
    /// was written when it was refused.
    Rejected(Refusal),
}

/// What a request to void an order's invoice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voided {
    /// A credit note was issued and `InvoiceVoided` written.
    Voided { credit_note_number: String },
    /// The invoice was voided before; `InvoiceVoided` is written again, since the saga asks again only
    /// when it missed the first answer.
    AlreadyVoided { credit_note_number: String },
    /// The order has no invoice (rejected, or never confirmed here): nothing to void, no reply.
    NothingToVoid,
    /// The request was applied before: a redelivery.
    AlreadyProcessed,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    credit_limit: Option<Decimal>,
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
        Ok(Store {
            pool,
            credit_limit: None,
        })
    }

    /// Refuses invoices that would take a customer's open invoices beyond `limit` (`None`: no limit).
    pub fn with_credit_limit(self, limit: Option<Decimal>) -> Store {
        Store {
            credit_limit: limit,
            ..self
        }
    }

    /// Records `event` and, unless it was applied before or its order already has an answer, the
    /// invoice for `draft` with `InvoiceIssued`, or its refusal under the credit limit with
    /// `InvoiceRejected`, all in one transaction.
    ///
    /// The insert into `processed_events` decides: if the event's row exists, nothing is written.
    /// A concurrent delivery of the same event waits on that row's key until this transaction
    /// ends and then finds it. The customer's open invoices are summed under a lock on the customer,
    /// so two orders of one customer cannot both pass the limit.
    pub async fn record(
        &self,
        event: &SourceEvent,
        draft: &InvoiceDraft,
    ) -> Result<Recorded, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "select pg_advisory_xact_lock(hashtextextended($1::text, 0))",
            &[&draft.customer_id.to_string()],
        )
        .await?;
        let existing: Option<Uuid> = tx
            .query_opt(
                "select id from invoices where order_id = $1",
                &[&draft.order_id],
            )
            .await?
            .map(|row| row.get(0));
        let rejected: Option<Refusal> = tx
            .query_opt(
                "select reason, detail from rejections where order_id = $1",
                &[&draft.order_id],
            )
            .await?
            .map(|row| Refusal {
                reason: credit::CREDIT_LIMIT_EXCEEDED,
                detail: row.get::<_, Option<String>>("detail").unwrap_or_default(),
            });
        let open: Decimal = tx
            .query_one(
                "select coalesce(sum(i.total), 0) from invoices i
                 where i.customer_id = $1 and i.currency = $2
                   and not exists (select 1 from credit_notes c where c.invoice_id = i.id)",
                &[&draft.customer_id, &draft.currency],
            )
            .await?
            .get(0);
        let refusal = match (&existing, rejected) {
            (None, None) => {
                credit::check(self.credit_limit, open, draft.total, &draft.currency).err()
            }
            (_, earlier) => earlier,
        };
        let outcome = match (&existing, &refusal) {
            (Some(_), _) => "order-already-invoiced",
            (None, Some(_)) => "rejected",
            (None, None) => "invoiced",
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
        if let Some(refusal) = refusal {
            let rejected_at = Utc::now();
            let written = tx
                .execute(
                    "insert into rejections (order_id, customer_id, reason, detail, rejected_at,
                                             event_id, correlation_id)
                     values ($1, $2, $3, $4, $5, $6, $7) on conflict (order_id) do nothing",
                    &[
                        &draft.order_id,
                        &draft.customer_id,
                        &refusal.reason,
                        &refusal.detail,
                        &rejected_at,
                        &event.id,
                        &event.correlation_id,
                    ],
                )
                .await?;
            // Only the first refusal of an order is the saga's answer.
            if written == 1 {
                let reply = contracts::InvoiceRejectedV1 {
                    order_id: draft.order_id,
                    customer_id: draft.customer_id,
                    reason: refusal.reason.to_owned(),
                    detail: Some(refusal.detail.clone()),
                    rejected_at,
                };
                outbox::append(&*tx, &reply, event.correlation_id.as_deref()).await?;
            }
            tx.commit().await?;
            return Ok(Recorded::Rejected(refusal));
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
        let reply = contracts::InvoiceIssuedV1 {
            order_id: invoice.order_id,
            customer_id: invoice.customer_id,
            invoice_id: invoice.id,
            invoice_number: invoice.number.clone(),
            total: Money {
                amount: invoice.total.amount,
                currency: invoice.currency.clone(),
            },
            issued_at: invoice.issued_at,
        };
        outbox::append(&*tx, &reply, event.correlation_id.as_deref()).await?;
        tx.commit().await?;
        Ok(Recorded::Invoiced(invoice))
    }

    /// Voids the invoice of `order_id` with a credit note over its total and writes `InvoiceVoided`,
    /// in one transaction with `event`'s `processed_events` row; see [`Voided`] for the other cases.
    pub async fn void(&self, event: &SourceEvent, order_id: Uuid) -> Result<Voided, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Locks the invoice, so two requests for it issue one credit note.
        let invoice = tx
            .query_opt(
                "select i.id, i.customer_id, i.total, i.currency, c.number as credit_note
                 from invoices i left join credit_notes c on c.invoice_id = i.id
                 where i.order_id = $1 for update of i",
                &[&order_id],
            )
            .await?;
        let outcome = match &invoice {
            None => "nothing-to-void",
            Some(row) if row.get::<_, Option<String>>("credit_note").is_some() => "already-voided",
            Some(_) => "voided",
        };
        let inserted = tx
            .execute(
                "insert into processed_events (event_id, event_type, outcome) values ($1, $2, $3)
                 on conflict (event_id) do nothing",
                &[&event.id, &event.event_type, &outcome],
            )
            .await?;
        if inserted == 0 {
            return Ok(Voided::AlreadyProcessed);
        }
        let Some(invoice) = invoice else {
            tx.commit().await?;
            return Ok(Voided::NothingToVoid);
        };
        let invoice_id: Uuid = invoice.get("id");
        let total: Decimal = invoice.get("total");
        let voided_at = Utc::now();
        let (credit_note_number, voided) = match invoice.get::<_, Option<String>>("credit_note") {
            Some(number) => (
                number.clone(),
                Voided::AlreadyVoided {
                    credit_note_number: number,
                },
            ),
            None => {
                let year = voided_at.year();
                let sequence: i64 = tx
                    .query_one(
                        "insert into credit_note_number_counters (year, last_number) values ($1, 1)
                         on conflict (year) do update
                         set last_number = credit_note_number_counters.last_number + 1
                         returning last_number",
                        &[&year],
                    )
                    .await?
                    .get(0);
                let number = credit_note_number(year, sequence);
                tx.execute(
                    "insert into credit_notes (id, number, invoice_id, amount, issued_at, event_id)
                     values ($1, $2, $3, $4, $5, $6)",
                    &[
                        &Uuid::new_v4(),
                        &number,
                        &invoice_id,
                        &total,
                        &voided_at,
                        &event.id,
                    ],
                )
                .await?;
                (
                    number.clone(),
                    Voided::Voided {
                        credit_note_number: number,
                    },
                )
            }
        };
        let reply = contracts::InvoiceVoidedV1 {
            order_id,
            customer_id: invoice.get("customer_id"),
            invoice_id,
            credit_note_number,
            credited: Money {
                amount: total,
                currency: invoice.get("currency"),
            },
            voided_at,
        };
        outbox::append(&*tx, &reply, event.correlation_id.as_deref()).await?;
        tx.commit().await?;
        Ok(voided)
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
