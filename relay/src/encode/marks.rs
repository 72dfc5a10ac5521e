//! What the relay itself says on a message, whatever the format: the event's position, that it was
//! replayed, a dead letter's reason; the header names no row may set; and the payload a dead
//! letter keeps.

use crate::event::Routed;

/// The header carrying [`Routed::position`].
pub const POSITION_HEADER: &str = "outbox_position";

/// The header, set to `true`, of events `outbox-relay replay` republished.
pub const REPLAYED_HEADER: &str = "replayed";

/// Headers of dead letters start with this.
pub const DEAD_LETTER_PREFIX: &str = "dlq_";

/// A dead-lettered copy keeps payloads up to this size; larger ones may be why the broker refused
/// the event, and the row itself still holds them.
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 64 * 1024;

/// Header names only the relay sets; a row header of one of these names is dropped: consumers
/// dedup on `id` and order by `outbox_position`, and take a message with `dlq_` headers for a dead
/// letter, so a service must not be able to set any of them by accident.
pub fn is_reserved(name: &str) -> bool {
    const RESERVED: [&str; 7] = [
        "id",
        "type",
        "aggregatetype",
        "aggregateid",
        "created_at",
        POSITION_HEADER,
        REPLAYED_HEADER,
    ];
    RESERVED.contains(&name) || name.starts_with(DEAD_LETTER_PREFIX)
}

/// What the relay says about this delivery: `replayed` for a republished event, and a dead
/// letter's reason and original destination; none for an ordinary event.
pub fn marks(routed: &Routed) -> Vec<(&'static str, &str)> {
    let mut marks = Vec::new();
    if routed.event.origin.is_replayed() {
        marks.push((REPLAYED_HEADER, "true"));
    }
    let Some(dead_letter) = &routed.dead_letter else {
        return marks;
    };
    marks.extend([
        ("dlq_reason", dead_letter.reason.as_str()),
        ("dlq_destination", dead_letter.destination.as_str()),
    ]);
    if payload_omitted(routed) {
        marks.push(("dlq_payload_omitted", "true"));
    }
    marks
}

/// Whether the payload is left out: an oversized one in a dead letter.
pub fn payload_omitted(routed: &Routed) -> bool {
    routed.dead_letter.is_some() && routed.event.payload.len() > DEAD_LETTER_MAX_PAYLOAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin};
    use crate::lsn::Lsn;

    fn routed(origin: Origin, payload: &str) -> Routed {
        Routed::new(
            "d".to_owned(),
            Event {
                id: "e-1".to_owned(),
                aggregate_type: "order".to_owned(),
                aggregate_id: "o-1".to_owned(),
                event_type: "Changed".to_owned(),
                payload: payload.to_owned(),
                headers: Vec::new(),
                columns: Vec::new(),
                created_at: None,
                origin,
                transaction_id: None,
                committed_at: std::time::SystemTime::UNIX_EPOCH,
            },
        )
    }

    #[test]
    fn replayed_rows_and_dead_letters_say_so() {
        let table = |replayed| Origin::Table {
            before: Lsn(0x16B3748),
            row: 5,
            replayed,
        };
        assert!(marks(&routed(table(false), "{}")).is_empty());
        assert_eq!(
            marks(&routed(table(true), "{}")),
            vec![("replayed", "true")]
        );
        let dead = routed(Origin::Sequence(1), "{}").dead_lettered("dlq", "too large");
        assert_eq!(
            marks(&dead),
            vec![("dlq_reason", "too large"), ("dlq_destination", "d")]
        );
        assert!(!payload_omitted(&dead));
    }

    #[test]
    fn only_a_dead_letter_leaves_an_oversized_payload_out() {
        let large = "x".repeat(DEAD_LETTER_MAX_PAYLOAD + 1);
        let event = routed(Origin::Sequence(1), &large);
        assert!(!payload_omitted(&event));
        let dead = event.dead_lettered("dlq", "too large");
        assert!(payload_omitted(&dead));
        assert_eq!(marks(&dead).last(), Some(&("dlq_payload_omitted", "true")));
    }

    #[test]
    fn reserved_names_are_the_relays_own() {
        for name in ["id", "outbox_position", "replayed", "dlq_reason", "dlq_x"] {
            assert!(is_reserved(name), "{name}");
        }
        assert!(!is_reserved("traceparent"));
    }
}
