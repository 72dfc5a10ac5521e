//! The invoice-service's replies as the order-service receives them: the relay's headers (`type`, `id`,
//! `event_version`) and the payload, checked against the contracts and turned into the saga input they
//! are, or into a reason to dead-letter them.

use std::collections::BTreeMap;

use contracts::{
    ContractError, Event, InvoiceIssuedV1, InvoiceRejectedV1, InvoiceVoidedV1, VERSION_HEADER,
};
use uuid::Uuid;

use crate::saga::Input;

/// A reply for an order's saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The relay's event id: what `processed_events` deduplicates on.
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub input: Input,
}

/// Why a message on the invoice destination is not a usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the message has no `type` header")]
    MissingType,
    #[error("the `id` header is missing or not a UUID")]
    InvalidEventId,
    #[error(transparent)]
    Contract(#[from] ContractError),
}

impl ReplyError {
    /// A stable, machine-readable reason, e.g. for a dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            ReplyError::MissingType => "missing-type",
            ReplyError::InvalidEventId => "invalid-event-id",
            ReplyError::Contract(error) => error.reason(),
        }
    }
}

/// The reply a message carries; `Ok(None)` for another event type on the same destination, which the
/// saga does not take.
pub fn decode(
    headers: &BTreeMap<String, String>,
    payload: &str,
) -> Result<Option<Reply>, ReplyError> {
    let event_type = headers.get("type").ok_or(ReplyError::MissingType)?;
    let input = match event_type.as_str() {
        InvoiceIssuedV1::EVENT_TYPE => Input::InvoiceIssued,
        InvoiceRejectedV1::EVENT_TYPE => Input::InvoiceRejected,
        InvoiceVoidedV1::EVENT_TYPE => Input::InvoiceVoided,
        _ => return Ok(None),
    };
    let event_id = headers
        .get("id")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or(ReplyError::InvalidEventId)?;
    let version = headers.get(VERSION_HEADER).map(String::as_str);
    let order_id = match input {
        Input::InvoiceIssued => contracts::decode_invoice_issued(version, payload)?.order_id,
        Input::InvoiceRejected => contracts::decode_invoice_rejected(version, payload)?.order_id,
        _ => contracts::decode_invoice_voided(version, payload)?.order_id,
    };
    Ok(Some(Reply {
        event_id,
        order_id,
        input,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "6f1c1f8e-3b1a-4a53-9d0e-0c0b7f0b1a11";
    const ID: &str = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    const REJECTED: &str = r#"{"orderId":"6f1c1f8e-3b1a-4a53-9d0e-0c0b7f0b1a11",
        "customerId":"0d7c5a3e-2f1b-4f5e-8a6b-1c2d3e4f5a6b","reason":"credit-limit-exceeded",
        "rejectedAt":"2026-12-06T10:00:00Z"}"#;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_reply_becomes_its_saga_input() {
        let reply = decode(
            &headers(&[
                ("type", "InvoiceRejected"),
                ("id", ID),
                ("event_version", "1"),
            ]),
            REJECTED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            reply,
            Reply {
                event_id: ID.parse().unwrap(),
                order_id: ORDER.parse().unwrap(),
                input: Input::InvoiceRejected,
            }
        );
    }

    #[test]
    fn other_event_types_are_not_replies() {
        assert!(decode(&headers(&[("type", "InvoiceDrafted")]), "{}")
            .unwrap()
            .is_none());
    }

    #[test]
    fn unusable_messages_say_why() {
        let reason = |pairs: &[(&str, &str)], payload: &str| {
            decode(&headers(pairs), payload).unwrap_err().reason()
        };
        assert_eq!(reason(&[], REJECTED), "missing-type");
        assert_eq!(
            reason(&[("type", "InvoiceRejected")], REJECTED),
            "invalid-event-id"
        );
        assert_eq!(
            reason(&[("type", "InvoiceRejected"), ("id", "42")], REJECTED),
            "invalid-event-id"
        );
        assert_eq!(
            reason(
                &[
                    ("type", "InvoiceRejected"),
                    ("id", ID),
                    ("event_version", "2")
                ],
                REJECTED
            ),
            "unknown-version"
        );
        assert_eq!(
            reason(&[("type", "InvoiceIssued"), ("id", ID)], REJECTED),
            "invalid-payload"
        );
    }
}
