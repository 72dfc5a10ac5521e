//! Events without a table: a service calls `pg_logical_emit_message(true, '<prefix>', '<json>')`
//! and the logical source relays the message like an outbox row. This module holds the JSON
//! document's shape and turns one decoded message into an event, or into a dead letter saying why
//! the message is not one, so that no message can stop the stream.

use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::{Event, Origin};
use crate::lsn::Lsn;

/// `[messages]`: whether message events are read, and the prefix that marks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageSettings {
    /// Ask pgoutput for messages (PostgreSQL 14+, logical replication only).
    pub enabled: bool,
    /// Messages with this prefix are events; others are left to whoever emitted them.
    pub prefix: String,
}

impl Default for MessageSettings {
    fn default() -> Self {
        MessageSettings {
            enabled: false,
            prefix: "outbox".into(),
        }
    }
}

/// The first `server_version_num` whose pgoutput has the `messages` option.
pub const FIRST_VERSION: i32 = 140_000;

/// The message content: an outbox row's columns under their default names, `payload` any JSON
/// value. Unknown members are refused, so a misspelt one is a dead letter, not a silent omission.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document<'a> {
    id: String,
    aggregatetype: String,
    aggregateid: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default, borrow)]
    headers: Option<&'a RawValue>,
    #[serde(default)]
    created_at: Option<String>,
}

/// A message that is not an event, as the event its dead letter carries, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub event: Event,
    pub reason: String,
}

/// What a message with the configured prefix becomes. `transaction` is the commit LSN and time of
/// the transaction it arrived in; a non-transactional message arrives between transactions, with
/// `None`, and counts as written at its own LSN.
pub fn event(
    transactional: bool,
    lsn: Lsn,
    content: &Bytes,
    transaction: Option<(Lsn, SystemTime)>,
) -> Result<Event, Box<Rejected>> {
    let (origin, committed_at) = match transaction {
        Some((commit_lsn, committed_at)) => (Origin::Commit(commit_lsn), committed_at),
        None => (Origin::Commit(lsn), SystemTime::now()),
    };
    let reject = |reason: String| {
        Box::new(Rejected {
            event: unreadable(lsn, content, origin, committed_at),
            reason,
        })
    };
    if !transactional {
        return Err(reject(format!(
            "the message at {lsn} is not transactional: it is sent whether or not its transaction commits, so it is no event; emit it with pg_logical_emit_message(true, ...)"
        )));
    }
    let text = std::str::from_utf8(content)
        .map_err(|_| reject(format!("the message at {lsn} is not UTF-8 text")))?;
    // serde would take an array for the document too, member by member.
    if !text.trim_start().starts_with('{') {
        return Err(reject(format!("the message at {lsn} is not a JSON object")));
    }
    let document: Document = serde_json::from_str(text).map_err(|e| {
        reject(format!(
            "the message at {lsn} is not an outbox event document: {e}"
        ))
    })?;
    if document.id.is_empty() {
        return Err(reject(format!(
            "the message at {lsn} has an empty id; consumers deduplicate on it"
        )));
    }
    let headers = match document.headers {
        None => Vec::new(),
        Some(raw) => crate::json_text::object_members(raw.get()).ok_or_else(|| {
            reject(format!(
                "the message at {lsn} has headers that are not a JSON object"
            ))
        })?,
    };
    Ok(Event {
        id: document.id,
        aggregate_type: document.aggregatetype,
        aggregate_id: document.aggregateid,
        event_type: document.event_type,
        payload: document.payload.get().to_owned(),
        headers,
        // A document names no further columns: a template's `{column}` is empty for it.
        columns: Vec::new(),
        created_at: document.created_at,
        origin,
        transaction_id: None,
        committed_at,
    })
}

/// The dead letter's event: the identity the content gives, where it gives one, and the content
/// as the payload, so that the service's mistake can be read and fixed from the dead letter.
fn unreadable(lsn: Lsn, content: &Bytes, origin: Origin, committed_at: SystemTime) -> Event {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Identity {
        id: Option<String>,
        aggregatetype: Option<String>,
        aggregateid: Option<String>,
        #[serde(rename = "type")]
        event_type: Option<String>,
    }
    let identity: Identity = serde_json::from_slice(content).unwrap_or_default();
    Event {
        id: identity
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("message-{lsn}")),
        aggregate_type: identity.aggregatetype.unwrap_or_default(),
        aggregate_id: identity.aggregateid.unwrap_or_default(),
        event_type: identity.event_type.unwrap_or_default(),
        payload: content.iter().map(|&b| char::from(b)).collect::<String>(),
        headers: Vec::new(),
        columns: Vec::new(),
        created_at: None,
        origin,
        transaction_id: None,
        committed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Lsn = Lsn(0x16B3748);
    const COMMIT: Lsn = Lsn(0x16B3800);

    fn map(transactional: bool, content: &str) -> Result<Event, Box<Rejected>> {
        event(
            transactional,
            AT,
            &Bytes::copy_from_slice(content.as_bytes()),
            transactional.then_some((COMMIT, SystemTime::UNIX_EPOCH)),
        )
    }

    #[test]
    fn maps_a_document_like_a_row() {
        let event = map(
            true,
            r#"{"id":"e-1","aggregatetype":"order","aggregateid":"42","type":"OrderPlaced",
                "payload":{"total": 12345678901234567890},"headers":{"correlation_id":"c-1","n":2}}"#,
        )
        .unwrap();
        assert_eq!(
            event,
            Event {
                id: "e-1".into(),
                aggregate_type: "order".into(),
                aggregate_id: "42".into(),
                event_type: "OrderPlaced".into(),
                payload: r#"{"total": 12345678901234567890}"#.into(),
                headers: vec![
                    ("correlation_id".into(), "c-1".into()),
                    ("n".into(), "2".into())
                ],
                columns: Vec::new(),
                created_at: None,
                origin: Origin::Commit(COMMIT),
                transaction_id: None,
                committed_at: SystemTime::UNIX_EPOCH,
            }
        );
    }

    #[test]
    fn headers_and_created_at_are_optional_and_payload_any_json() {
        let event = map(
            true,
            r#"{"id":"e","aggregatetype":"a","aggregateid":"1","type":"T","payload":"text","headers":null,"created_at":"2026-12-06T05:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(event.payload, r#""text""#);
        assert!(event.headers.is_empty());
        assert_eq!(event.created_at.as_deref(), Some("2026-12-06T05:00:00Z"));
    }

    #[test]
    fn a_non_transactional_message_is_rejected_with_its_identity() {
        let rejected = map(
            false,
            r#"{"id":"e-9","aggregatetype":"order","aggregateid":"7","type":"T","payload":{}}"#,
        )
        .unwrap_err();
        assert!(
            rejected.reason.contains("not transactional"),
            "{}",
            rejected.reason
        );
        assert_eq!(
            (
                rejected.event.id.as_str(),
                rejected.event.aggregate_id.as_str()
            ),
            ("e-9", "7")
        );
        assert_eq!(rejected.event.origin, Origin::Commit(AT));
    }

    #[test]
    fn content_that_is_no_event_is_rejected_saying_why() {
        for (content, why) in [
            ("not json", "not a JSON object"),
            ("[1,2]", "not a JSON object"),
            ("{\"id\":", "EOF while parsing"),
            (
                r#"{"id":"e","aggregatetype":"a","type":"T","payload":{}}"#,
                "missing field `aggregateid`",
            ),
            (
                r#"{"id":"e","aggregatetype":"a","aggregate_id":"1","type":"T","payload":{}}"#,
                "unknown field `aggregate_id`",
            ),
            (
                r#"{"id":"e","aggregatetype":"a","aggregateid":1,"type":"T","payload":{}}"#,
                "invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"id":"","aggregatetype":"a","aggregateid":"1","type":"T","payload":{}}"#,
                "empty id",
            ),
            (
                r#"{"id":"e","aggregatetype":"a","aggregateid":"1","type":"T","payload":{},"headers":[1]}"#,
                "headers that are not a JSON object",
            ),
        ] {
            let rejected = map(true, content).unwrap_err();
            assert!(
                rejected.reason.contains(why),
                "{content}: {}",
                rejected.reason
            );
            assert_eq!(rejected.event.payload, content);
            assert_eq!(rejected.event.origin, Origin::Commit(COMMIT));
        }
        assert_eq!(
            map(true, "not json").unwrap_err().event.id,
            "message-0/16B3748"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_rejected_and_kept_byte_for_byte() {
        let content = Bytes::from_static(b"{\"id\":\"caf\xe9\"}");
        let rejected =
            event(true, AT, &content, Some((COMMIT, SystemTime::UNIX_EPOCH))).unwrap_err();
        assert!(rejected.reason.contains("not UTF-8"), "{}", rejected.reason);
        let bytes: Vec<u8> = rejected.event.payload.chars().map(|c| c as u8).collect();
        assert_eq!(bytes, content);
    }
}
