//! `OrderCancelled`: an order was cancelled before it was confirmed. One major version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, OrderStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelledV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub cancelled_at: DateTime<Utc>,
}

impl Event for OrderCancelledV1 {
    const EVENT_TYPE: &'static str = "OrderCancelled";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `OrderCancelled` payload against the schema of its version and decodes it.
pub fn decode_order_cancelled(
    version: Option<&str>,
    payload: &str,
) -> Result<OrderCancelledV1, ContractError> {
    decode::check(OrderCancelledV1::EVENT_TYPE, version, payload)?.into_typed()
}
