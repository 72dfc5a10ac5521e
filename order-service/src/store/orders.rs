//! The `orders` and `order_lines` tables: saving a placed order, loading one, and saving a state change
//! only if nobody else changed the order since it was loaded.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;
use crate::correlation::CorrelationId;
use crate::domain::{Currency, Order, OrderLine, OrderSnapshot, OrderStatus, Quantity, UnitPrice};

/// Saves a placed order with the correlation id it was placed under.
pub async fn insert(
    client: &impl GenericClient,
    order: &Order,
    correlation: &CorrelationId,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO orders (id, customer_id, status, currency, version, created_at, confirmed_at, \
             cancelled_at, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &order.id(),
                &order.customer_id(),
                &order.status().as_str(),
                &order.currency().code(),
                &order.version(),
                &order.created_at(),
                &order.confirmed_at(),
                &order.cancelled_at(),
                &correlation.as_str(),
            ],
        )
        .await?;
    let lines = order.lines();
    // Line numbers and quantities are bounded by the aggregate (≤ 100 lines, ≤ 10 000 units).
    let line_nos: Vec<i32> = (0..lines.len() as i32).collect();
    let products: Vec<Uuid> = lines.iter().map(OrderLine::product_id).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity().get() as i32).collect();
    let prices: Vec<Decimal> = lines.iter().map(|l| l.unit_price().amount()).collect();
    client
        .execute(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price) \
             SELECT $1::uuid, * FROM unnest($2::int4[], $3::uuid[], $4::int4[], $5::numeric[])",
            &[&order.id(), &line_nos, &products, &quantities, &prices],
        )
        .await?;
    Ok(())
}

/// The correlation id the order was placed under; `None` for an unknown order or one placed before
/// orders kept it.
pub async fn correlation(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<CorrelationId>, StoreError> {
    let row = client
        .query_opt("SELECT correlation_id FROM orders WHERE id = $1", &[&id])
        .await?;
    Ok(row
        .and_then(|row| row.get::<_, Option<String>>(0))
        .map(|id| CorrelationId::from_header(Some(id.as_bytes()))))
}

pub async fn load(client: &impl GenericClient, id: Uuid) -> Result<Option<Order>, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT customer_id, status, currency, version, created_at, confirmed_at, cancelled_at \
             FROM orders WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let status: &str = row.get("status");
    let status = OrderStatus::parse(status).ok_or_else(|| corrupt(format!("status {status:?}")))?;
    let currency = Currency::parse(row.get("currency")).map_err(|e| corrupt(e.to_string()))?;
    let lines = client
        .query(
            "SELECT product_id, quantity, unit_price FROM order_lines WHERE order_id = $1 \
             ORDER BY line_no",
            &[&id],
        )
        .await?
        .iter()
        .map(|line| {
            let quantity = Quantity::new(line.get::<_, i32>("quantity").into())?;
            // numeric(12, 2) gives every price two fraction digits; the domain counts significant ones.
            let price = line.get::<_, Decimal>("unit_price").normalize();
            let price = UnitPrice::new(price, currency)?;
            Ok(OrderLine::new(line.get("product_id"), quantity, price))
        })
        .collect::<Result<Vec<_>, crate::domain::DomainError>>()
        .map_err(|e| corrupt(e.to_string()))?;
    if lines.is_empty() {
        return Err(corrupt("no lines".to_owned()));
    }
    Ok(Some(Order::restore(OrderSnapshot {
        id,
        customer_id: row.get("customer_id"),
        status,
        lines,
        version: row.get("version"),
        created_at: row.get("created_at"),
        confirmed_at: row.get::<_, Option<DateTime<Utc>>>("confirmed_at"),
        cancelled_at: row.get::<_, Option<DateTime<Utc>>>("cancelled_at"),
    })))
}

/// Saves the status of `order` if the stored order is still at `expected_version`; `false` means another
/// transaction changed it first and nothing was written.
pub async fn update(
    client: &impl GenericClient,
    order: &Order,
    expected_version: i64,
) -> Result<bool, StoreError> {
    let updated = client
        .execute(
            "UPDATE orders SET status = $2, version = $3, confirmed_at = $4, cancelled_at = $5 \
             WHERE id = $1 AND version = $6",
            &[
                &order.id(),
                &order.status().as_str(),
                &order.version(),
                &order.confirmed_at(),
                &order.cancelled_at(),
                &expected_version,
            ],
        )
        .await?;
    Ok(updated == 1)
}
