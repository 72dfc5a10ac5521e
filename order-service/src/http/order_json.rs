//! The order as the HTTP API shows it, with its invoicing saga once it has one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::saga_json::SagaJson;
use crate::domain::{Money, Order};
use crate::service::OrderView;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderJson {
    id: Uuid,
    customer_id: Uuid,
    status: &'static str,
    lines: Vec<LineJson>,
    /// One entry per currency; an order has one currency, the list keeps room for more.
    totals: Vec<MoneyJson>,
    version: i64,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saga: Option<SagaJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LineJson {
    product_id: Uuid,
    quantity: u32,
    unit_price: String,
    currency: &'static str,
    line_total: String,
}

/// Amounts are decimal strings, like in the request and the events.
#[derive(Debug, Serialize)]
struct MoneyJson {
    amount: String,
    currency: &'static str,
}

impl From<Money> for MoneyJson {
    fn from(money: Money) -> MoneyJson {
        MoneyJson {
            amount: money.amount().to_string(),
            currency: money.currency().code(),
        }
    }
}

impl From<&Order> for OrderJson {
    fn from(order: &Order) -> OrderJson {
        OrderJson {
            id: order.id(),
            customer_id: order.customer_id(),
            status: order.status().as_str(),
            lines: order
                .lines()
                .iter()
                .map(|line| LineJson {
                    product_id: line.product_id(),
                    quantity: line.quantity().get(),
                    unit_price: line.unit_price().amount().to_string(),
                    currency: line.currency().code(),
                    line_total: line.total().amount().to_string(),
                })
                .collect(),
            totals: vec![order.total().into()],
            version: order.version(),
            created_at: order.created_at(),
            confirmed_at: order.confirmed_at(),
            cancelled_at: order.cancelled_at(),
            saga: None,
        }
    }
}

impl From<&OrderView> for OrderJson {
    fn from(view: &OrderView) -> OrderJson {
        OrderJson {
            saga: view.saga.as_ref().map(SagaJson::from),
            ..OrderJson::from(&view.order)
        }
    }
}
