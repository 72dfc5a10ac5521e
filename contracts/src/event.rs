//! What every typed event states about itself, so a producer can fill the outbox row's `type`,
//! `aggregatetype`, `aggregateid` and version header from the event alone.

use serde::Serialize;
use uuid::Uuid;

/// The outbox `aggregatetype` of order events.
pub const ORDER_AGGREGATE_TYPE: &str = "order";

/// Where the relay publishes order events: its destination template `outbox.event.{aggregatetype}`
/// applied to [`ORDER_AGGREGATE_TYPE`].
pub const ORDER_DESTINATION: &str = "outbox.event.order";

/// The outbox `aggregatetype` of the invoice-service's events, the saga's replies.
pub const INVOICE_AGGREGATE_TYPE: &str = "invoice";

/// Where the invoice-service's relay publishes invoice events, by the same destination template.
pub const INVOICE_DESTINATION: &str = "outbox.event.invoice";

pub trait Event: Serialize {
    /// The outbox `type` column and the key of the schema family, e.g. `"OrderConfirmed"`.
    const EVENT_TYPE: &'static str;
    /// The value of the [`crate::VERSION_HEADER`] this event is written with.
    const VERSION: &'static str;
    /// The outbox `aggregatetype` column.
    const AGGREGATE_TYPE: &'static str;

    /// The outbox `aggregateid` column, which the relay uses as the message key.
    fn aggregate_id(&self) -> Uuid;
}
