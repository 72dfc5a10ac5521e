//! The embedded JSON Schemas, one per event type and major version, and validation of payloads against
//! them.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use crate::{decode, version, ContractError};

/// One contract: the schema of one major version of one event type.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub event_type: &'static str,
    pub version: u32,
    /// The schema document, as shipped in `schemas/`.
    pub source: &'static str,
}

const SCHEMAS: &[Schema] = &[
    Schema {
        event_type: "OrderCreated",
        version: 1,
        source: include_str!("../schemas/order_created.v1.json"),
    },
    Schema {
        event_type: "OrderConfirmed",
        version: 1,
        source: include_str!("../schemas/order_confirmed.v1.json"),
    },
    Schema {
        event_type: "OrderConfirmed",
        version: 2,
        source: include_str!("../schemas/order_confirmed.v2.json"),
    },
    Schema {
        event_type: "OrderCancelled",
        version: 1,
        source: include_str!("../schemas/order_cancelled.v1.json"),
    },
    Schema {
        event_type: "OrderCancelled",
        version: 2,
        source: include_str!("../schemas/order_cancelled.v2.json"),
    },
    Schema {
        event_type: "OrderCancellationRequested",
        version: 1,
        source: include_str!("../schemas/order_cancellation_requested.v1.json"),
    },
    Schema {
        event_type: "InvoiceIssued",
        version: 1,
        source: include_str!("../schemas/invoice_issued.v1.json"),
    },
    Schema {
        event_type: "InvoiceRejected",
        version: 1,
        source: include_str!("../schemas/invoice_rejected.v1.json"),
    },
    Schema {
        event_type: "InvoiceVoided",
        version: 1,
        source: include_str!("../schemas/invoice_voided.v1.json"),
    },
];

/// Every contract this crate knows.
pub fn schemas() -> &'static [Schema] {
    SCHEMAS
}

/// Checks `payload` against the schema of `event_type` at the major version named by the
/// [`crate::VERSION_HEADER`] value `version` (missing means 1).
pub fn validate(
    event_type: &str,
    version: Option<&str>,
    payload: &str,
) -> Result<(), ContractError> {
    decode::check(event_type, version, payload).map(drop)
}

/// The major version named by the version header `header` and the compiled schema of `event_type` at
/// that version.
pub(crate) fn validator(
    event_type: &str,
    header: Option<&str>,
) -> Result<(u32, &'static Validator), ContractError> {
    static VALIDATORS: OnceLock<Vec<Validator>> = OnceLock::new();
    if !SCHEMAS.iter().any(|s| s.event_type == event_type) {
        return Err(ContractError::UnknownEventType(event_type.to_owned()));
    }
    let major = version::major(event_type, header)?;
    let validators = VALIDATORS.get_or_init(|| SCHEMAS.iter().map(compile).collect());
    SCHEMAS
        .iter()
        .position(|s| s.event_type == event_type && s.version == major)
        .map(|i| (major, &validators[i]))
        .ok_or_else(|| ContractError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: header.map_or_else(|| major.to_string(), str::to_owned),
        })
}

/// The schemas are part of this crate and its tests compile every one of them, so a failure here is a
/// bug in the crate, not a condition a caller could handle.
fn compile(schema: &Schema) -> Validator {
    let document: Value = serde_json::from_str(schema.source).unwrap_or_else(|e| {
        panic!(
            "schema {} v{} is not JSON: {e}",
            schema.event_type, schema.version
        )
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&document)
        .unwrap_or_else(|e| {
            panic!(
                "schema {} v{} does not compile: {e}",
                schema.event_type, schema.version
            )
        })
}
