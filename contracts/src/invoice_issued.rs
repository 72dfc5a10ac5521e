//! `InvoiceIssued`: the invoice-service invoiced a confirmed order, the saga's success reply. One major
//! version so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, ContractError, Event, Money};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceIssuedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Uuid,
    /// E.g. `"INV-2026-000001"`.
    pub invoice_number: String,
    pub total: Money,
    pub issued_at: DateTime<Utc>,
}

impl Event for InvoiceIssuedV1 {
    const EVENT_TYPE: &'static str = "InvoiceIssued";
    const VERSION: &'static str = "1";
    const AGGREGATE_TYPE: &'static str = crate::INVOICE_AGGREGATE_TYPE;

    /// The order, not the invoice: every reply about one order shares a key, so Kafka keeps them in
    /// order on one partition.
    fn aggregate_id(&self) -> Uuid {
        self.order_id
    }
}

/// Validates an `InvoiceIssued` payload against the schema of its version and decodes it.
pub fn decode_invoice_issued(
    version: Option<&str>,
    payload: &str,
) -> Result<InvoiceIssuedV1, ContractError> {
    decode::check(InvoiceIssuedV1::EVENT_TYPE, version, payload)?.into_typed()
}
