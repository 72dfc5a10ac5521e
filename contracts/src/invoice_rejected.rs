//! `InvoiceRejected`: the invoice-service refused to invoice a confirmed order, the saga's failure
//! reply. One major version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceRejectedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// A kebab-case code, e.g. `"credit-limit-exceeded"`.
    pub reason: String,
    /// The reason for people; optional on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub rejected_at: DateTime<Utc>,
}

impl Event for InvoiceRejectedV1 {
    const EVENT_TYPE: &'static str = "InvoiceRejected";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::INVOICE_AGGREGATE_TYPE;

    /// The order, as for every invoice event: see [`crate::InvoiceIssuedV1`].
    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `InvoiceRejected` payload against the schema of its version and decodes it.
pub fn decode_invoice_rejected(
    version: Option<&str>,
    payload: &str,
) -> Result<InvoiceRejectedV1, ContractError> {
    decode::check(InvoiceRejectedV1::EVENT_TYPE, version, payload)?.into_typed()
}
