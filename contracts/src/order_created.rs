//! `OrderCreated`: an order was placed. One major version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, Money, OrderLine, OrderStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreatedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub created_at: DateTime<Utc>,
}

impl Event for OrderCreatedV1 {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `OrderCreated` payload against the schema of its version and decodes it.
pub fn decode_order_created(
    version: Option<&str>,
    payload: &str,
) -> Result<OrderCreatedV1, ContractError> {
    decode::check(OrderCreatedV1::EVENT_TYPE, version, payload)?.into_typed()
}
