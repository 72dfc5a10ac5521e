//! Keys of the outbox row's `headers` object that every order event carries; the relay turns each into
//! a message header of the same name.

/// The event's major contract version as a decimal string, e.g. `"1"`.
pub const VERSION_HEADER: &str = "event_version";

/// The id that ties the event to the request that caused it, for logs and traces across services.
pub const CORRELATION_HEADER: &str = "correlation_id";
