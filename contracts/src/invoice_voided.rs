//! `InvoiceVoided`: the invoice-service voided an order's invoice with a credit note, the reply to
//! `OrderCancellationRequested`. One major version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, Money};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceVoidedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Uuid,
    /// E.g. `"CN-2026-000001"`.
    pub credit_note_number: String,
    /// What the credit note gives back: the invoice's total.
    pub credited: Money,
    pub voided_at: DateTime<Utc>,
}

impl Event for InvoiceVoidedV1 {
    const EVENT_TYPE: &'static str = "InvoiceVoided";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::INVOICE_AGGREGATE_TYPE;

    /// The order, as for every invoice event: see [`crate::InvoiceIssuedV1`].
    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `InvoiceVoided` payload against the schema of its version and decodes it.
pub fn decode_invoice_voided(
    version: Option<&str>,
    payload: &str,
) -> Result<InvoiceVoidedV1, ContractError> {
    decode::check(InvoiceVoidedV1::EVENT_TYPE, version, payload)?.into_typed()
}
