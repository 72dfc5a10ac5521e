//! `OrderCancellationRequested`: the saga asks the invoice-service to void an invoiced order's invoice
//! before the order may be cancelled. One major version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancellationRequestedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// A kebab-case code, e.g. `"requested"`.
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

impl Event for OrderCancellationRequestedV1 {
    const EVENT_TYPE: &'static str = "OrderCancellationRequested";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::ORDER_AGGREGATE_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `OrderCancellationRequested` payload against the schema of its version and decodes it.
pub fn decode_order_cancellation_requested(
    version: Option<&str>,
    payload: &str,
) -> Result<OrderCancellationRequestedV1, ContractError> {
    decode::check(OrderCancellationRequestedV1::EVENT_TYPE, version, payload)?.into_typed()
}
