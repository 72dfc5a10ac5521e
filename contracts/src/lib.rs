//! Versioned event contracts between the order-service and its consumers, and the invoice-service's
//! replies in the saga between them: the JSON Schemas in
//! `schemas/`, the typed events they describe, the outbox headers that carry the version and correlation
//! id, and the upcasting that lets a consumer read every supported version as the newest one.
//!
//! The compatibility rules are in `docs/EVENT_VERSIONING.md`; in short, objects are open (readers ignore
//! fields they do not know), additive changes keep the major version, anything else bumps it, consumers
//! accept the current and the previous major, and an unknown major is an error to dead-letter.

mod decode;
mod error;
mod event;
mod headers;
mod invoice_issued;
mod invoice_rejected;
mod invoice_voided;
mod order_cancellation_requested;
mod order_cancelled;
mod order_confirmed;
mod order_created;
mod payload;
mod schema;
mod version;

pub use error::{ContractError, Violation};
pub use event::{
    Event, INVOICE_AGGREGATE_TYPE, INVOICE_DESTINATION, ORDER_AGGREGATE_TYPE, ORDER_DESTINATION,
};
pub use headers::{CORRELATION_HEADER, VERSION_HEADER};
pub use invoice_issued::{decode_invoice_issued, InvoiceIssuedV1};
pub use invoice_rejected::{decode_invoice_rejected, InvoiceRejectedV1};
pub use invoice_voided::{decode_invoice_voided, InvoiceVoidedV1};
pub use order_cancellation_requested::{
    decode_order_cancellation_requested, OrderCancellationRequestedV1,
};
pub use order_cancelled::{
    decode_order_cancelled, OrderCancelled, OrderCancelledV1, OrderCancelledV2,
    UNKNOWN_CANCEL_REASON,
};
pub use order_confirmed::{
    decode_order_confirmed, OrderConfirmed, OrderConfirmedV1, OrderConfirmedV2,
    UNKNOWN_SALES_CHANNEL,
};
pub use order_created::{decode_order_created, OrderCreatedV1};
pub use payload::{Money, OrderLine, OrderStatus};
pub use schema::{schemas, validate, Schema};
