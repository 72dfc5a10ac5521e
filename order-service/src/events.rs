//! The contract events the order-service publishes, built from the aggregate's state after a change.
//! This is the only place that knows both the domain model and the wire contracts. A state change's
//! event takes the time of the change, which the service used for the command too.

use chrono::{DateTime, Utc};
use contracts::{Money as WireMoney, OrderLine as WireLine, OrderStatus as WireStatus};

use crate::domain::{Money, Order, OrderStatus};

pub fn order_created(order: &Order) -> contracts::OrderCreatedV1 {
    contracts::OrderCreatedV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: status(order.status()),
        lines: lines(order),
        total: money(order.total()),
        created_at: order.created_at(),
    }
}

pub fn order_confirmed(order: &Order, at: DateTime<Utc>) -> contracts::OrderConfirmedV1 {
    contracts::OrderConfirmedV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: status(order.status()),
        lines: lines(order),
        total: money(order.total()),
        confirmed_at: at,
    }
}

pub fn order_cancelled(order: &Order, at: DateTime<Utc>) -> contracts::OrderCancelledV1 {
    contracts::OrderCancelledV1 {
        order_id: order.id(),
        customer_id: order.customer_id(),
        status: status(order.status()),
        cancelled_at: at,
    }
}

fn status(status: OrderStatus) -> WireStatus {
    match status {
        OrderStatus::Created => WireStatus::Created,
        OrderStatus::Confirmed => WireStatus::Confirmed,
        OrderStatus::Cancelled => WireStatus::Cancelled,
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
