//! `OrderConfirmed`: an order was confirmed, in its two major versions, and the upcast from v1 to v2 that
//! lets consumers handle only the newest shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, Money, OrderLine, OrderStatus};

/// The sales channel given to v1 events, which predate the field.
pub const UNKNOWN_SALES_CHANNEL: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderConfirmedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub confirmed_at: DateTime<Utc>,
}

/// v1 plus where the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderConfirmedV2 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub confirmed_at: DateTime<Utc>,
    /// E.g. `"web"`; [`UNKNOWN_SALES_CHANNEL`] when upcast from v1.
    pub sales_channel: String,
}

impl Event for OrderConfirmedV1 {
    const EVENT_TYPE: &'static str = "OrderConfirmed";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

impl Event for OrderConfirmedV2 {
    const EVENT_TYPE: &'static str = "OrderConfirmed";
    const VERSION: &'static str = "2";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

impl From<OrderConfirmedV1> for OrderConfirmedV2 {
    fn from(v1: OrderConfirmedV1) -> Self {
        OrderConfirmedV2 {
            order_id: v1.order_id,
            customer_id: v1.customer_id,
            status: v1.status,
            lines: v1.lines,
            total: v1.total,
            confirmed_at: v1.confirmed_at,
            sales_channel: UNKNOWN_SALES_CHANNEL.to_owned(),
        }
    }
}

/// An `OrderConfirmed` of any supported major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderConfirmed {
    V1(OrderConfirmedV1),
    V2(OrderConfirmedV2),
}

impl OrderConfirmed {
    /// Validates `payload` against the schema of the major version named by the version header
    /// (missing means 1) and decodes it as that version.
    pub fn decode(version: Option<&str>, payload: &str) -> Result<OrderConfirmed, ContractError> {
        let checked = decode::check(OrderConfirmedV1::EVENT_TYPE, version, payload)?;
        match checked.major {
            1 => checked.into_typed().map(OrderConfirmed::V1),
            2 => checked.into_typed().map(OrderConfirmed::V2),
            // The schemas list exactly the versions matched above; a new schema file without a typed
            // event lands here and fails the tests.
            major => Err(ContractError::UnknownVersion {
                event_type: OrderConfirmedV1::EVENT_TYPE.to_owned(),
                version: major.to_string(),
            }),
        }
    }

    /// The event in the newest shape.
    pub fn upcast(self) -> OrderConfirmedV2 {
        match self {
            OrderConfirmed::V1(v1) => v1.into(),
            OrderConfirmed::V2(v2) => v2,
        }
    }
}

/// Validates and decodes an `OrderConfirmed` of any supported version, upcast to v2. The errors tell an
/// unknown major version ([`ContractError::UnknownVersion`]) from a payload that breaks its schema
/// ([`ContractError::InvalidPayload`]).
pub fn decode_order_confirmed(
    version: Option<&str>,
    payload: &str,
) -> Result<OrderConfirmedV2, ContractError> {
    OrderConfirmed::decode(version, payload).map(OrderConfirmed::upcast)
}
