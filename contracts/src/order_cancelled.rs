//! `OrderCancelled`: an order was cancelled, in its two major versions, and the upcast from v1 to v2
//! that lets consumers handle only the newest shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, OrderStatus};

/// The reason given to v1 events, which predate the field.
pub const UNKNOWN_CANCEL_REASON: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelledV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub cancelled_at: DateTime<Utc>,
}

/// v1 plus why the order was cancelled, since the saga cancels orders as well as their customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelledV2 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub cancelled_at: DateTime<Utc>,
    /// A kebab-case code, e.g. `"invoice-rejected"`; [`UNKNOWN_CANCEL_REASON`] when upcast from v1.
    pub reason: String,
}

impl Event for OrderCancelledV1 {
    const EVENT_TYPE: &'static str = "OrderCancelled";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

impl Event for OrderCancelledV2 {
    const EVENT_TYPE: &'static str = "OrderCancelled";
    const VERSION: &'static str = "2";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

impl From<OrderCancelledV1> for OrderCancelledV2 {
    fn from(v1: OrderCancelledV1) -> Self {
        OrderCancelledV2 {
            order_id: v1.order_id,
            customer_id: v1.customer_id,
            status: v1.status,
            cancelled_at: v1.cancelled_at,
            reason: UNKNOWN_CANCEL_REASON.to_owned(),
        }
    }
}

/// An `OrderCancelled` of any supported major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCancelled {
    V1(OrderCancelledV1),
    V2(OrderCancelledV2),
}

impl OrderCancelled {
    /// Validates `payload` against the schema of the major version named by the version header
    /// (missing means 1) and decodes it as that version.
    pub fn decode(version: Option<&str>, payload: &str) -> Result<OrderCancelled, ContractError> {
        let checked = decode::check(OrderCancelledV1::EVENT_TYPE, version, payload)?;
        match checked.major {
            1 => checked.into_typed().map(OrderCancelled::V1),
            2 => checked.into_typed().map(OrderCancelled::V2),
            // The schemas list exactly the versions matched above; a new schema file without a typed
            // event lands here and fails the tests.
            major => Err(ContractError::UnknownVersion {
                event_type: OrderCancelledV1::EVENT_TYPE.to_owned(),
                version: major.to_string(),
            }),
        }
    }

    /// The event in the newest shape.
    pub fn upcast(self) -> OrderCancelledV2 {
        match self {
            OrderCancelled::V1(v1) => v1.into(),
            OrderCancelled::V2(v2) => v2,
        }
    }
}

/// Validates and decodes an `OrderCancelled` of any supported version, upcast to v2.
pub fn decode_order_cancelled(
    version: Option<&str>,
    payload: &str,
) -> Result<OrderCancelledV2, ContractError> {
    OrderCancelled::decode(version, payload).map(OrderCancelled::upcast)
}
