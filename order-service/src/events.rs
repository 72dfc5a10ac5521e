//! The contract events the order-service publishes, built from the aggregate's state after a change.
//! This is the only place that knows both the domain model and the wire contracts. A state change's
//! event takes the time of the change, which the service used for the command too. Each event's
//! `status` is the constant of its type, whatever else the order went through.

use chrono::{DateTime, Utc};
use contracts::{Money as WireMoney, OrderLine as WireLine, OrderStatus as WireStatus};

use crate::domain::{Money, Order};

pub fn order_created(order: &Order) -> contracts::OrderCreatedV1 {
    contracts::OrderCreatedV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: WireStatus::Created,
        lines: lines(order),
        total: money(order.total()),
        created_at: order.created_at(),
    }
}

pub fn order_confirmed(order: &Order, at: DateTime<Utc>) -> contracts::OrderConfirmedV1 {
    contracts::OrderConfirmedV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: WireStatus::Confirmed,
        lines: lines(order),
        total: money(order.total()),
        confirmed_at: at,
    }
}

/// `OrderCancelled` v2: `reason` is a kebab-case code, e.g. `"requested"` or `"invoice-rejected"`.
pub fn order_cancelled(
    order: &Order,
    reason: &str,
    at: DateTime<Utc>,
) -> contracts::OrderCancelledV2 {
    contracts::OrderCancelledV2 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: WireStatus::Cancelled,
        cancelled_at: at,
        reason: reason.to_owned(),
    }
}

/// The invoicing saga's command to void the order's invoice.
pub fn order_cancellation_requested(
    order: &Order,
    reason: &str,
    at: DateTime<Utc>,
) -> contracts::OrderCancellationRequestedV1 {
    contracts::OrderCancellationRequestedV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        reason: reason.to_owned(),
        requested_at: at,
    }
}

fn lines(order: &Order) -> Vec<WireLine> {
    order
        .lines()
        .iter()
        .map(|line| WireLine {
            product_id: line.product_id(),
            quantity: line.quantity().get(),
            unit_price: line.unit_price().amount(),
            currency: line.currency().code().to_owned(),
        })
        .collect()
}

fn money(money: Money) -> WireMoney {
    WireMoney {
        amount: money.amount(),
        currency: money.currency().code().to_owned(),
    }
}
