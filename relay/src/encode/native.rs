//! The relay's own format, the default: the payload as the value, keyed by aggregate id, with the
//! event's identity, the row's `headers` and the relay's marks as headers (Kafka, RabbitMQ); as
//! stream fields with the row's headers in one JSON field (Redis); as one JSON line (stdout).

use serde::{Serialize, Serializer};

use super::marks::{self, is_reserved, POSITION_HEADER};
use super::{
    Carrier, Encoder, FormatConfig, HeaderValue, Message, Metadata, PayloadEncoding, Place,
    Placement,
};
use crate::config::SinkKind;
use crate::event::{Event, Routed};
use crate::router::RoutingConfig;
use crate::sink::Refusal;

const CONTENT_TYPE: &str = "application/json";

#[derive(Debug, Clone)]
pub struct Native {
    carrier: Carrier,
    routing: RoutingConfig,
    id_header: String,
    placements: Vec<Placement>,
    payload_encoding: PayloadEncoding,
    metadata: Vec<Metadata>,
    /// The payload column, read as a further column, when a NULL in it sends a tombstone.
    tombstone_column: Option<String>,
}

impl Native {
    /// The default format with the default settings.
    pub fn new(sink: SinkKind) -> Native {
        Native::configured(
            sink,
            &RoutingConfig::default(),
            &FormatConfig::default(),
            Vec::new(),
        )
    }

    /// The default format keyed by `routing`, named by `format`, with further columns placed by
    /// `placements` (parsed from `format.additional_columns`).
    pub fn configured(
        sink: SinkKind,
        routing: &RoutingConfig,
        format: &FormatConfig,
        placements: Vec<Placement>,
    ) -> Native {
        Native {
            carrier: Carrier::of(sink),
            routing: routing.clone(),
            id_header: format.id_header.clone(),
            placements,
            payload_encoding: format.payload_encoding,
            metadata: format.metadata_headers.clone(),
            tombstone_column: None,
        }
    }

    /// Sends a tombstone (Kafka) for a NULL in `payload_column`, which the layout reads as a
    /// further column.
    pub fn with_tombstones(mut self, payload_column: Option<String>) -> Native {
        self.tombstone_column = payload_column;
        self
    }

    /// Whether `event` is a tombstone: its payload column was read and is NULL, and tombstones
    /// are asked for. (An event from a message has no columns: never a tombstone.)
    fn is_tombstone(&self, event: &Event) -> bool {
        self.tombstone_column.as_ref().is_some_and(|column| {
            event
                .columns
                .iter()
                .any(|(name, value)| name == column && value.is_none())
        })
    }

    /// The further columns placed as headers (Redis: fields), by alias; a NULL one is left out.
    fn placed_headers<'e>(&'e self, event: &'e Event) -> impl Iterator<Item = (&'e str, &'e str)> {
        self.placements
            .iter()
            .filter_map(move |placement| match &placement.place {
                Place::Header(alias) => Some((alias.as_str(), event.column(&placement.column)?)),
                Place::Envelope(_) | Place::Partition => None,
            })
    }

    /// The payload in an envelope `{"payload": …}` with the columns placed there (JSON strings,
    /// or null); the payload as it is when no column is.
    fn value(&self, event: Event) -> Vec<u8> {
        let members: Vec<(&str, Option<&str>)> = self
            .placements
            .iter()
            .filter_map(|placement| match &placement.place {
                Place::Envelope(alias) => Some((alias.as_str(), event.column(&placement.column))),
                Place::Header(_) | Place::Partition => None,
            })
            .collect();
        let as_string = || serde_json::Value::from(event.payload.as_str()).to_string();
        if members.is_empty() {
            return match self.payload_encoding {
                PayloadEncoding::Raw => event.payload.into_bytes(),
                PayloadEncoding::JsonString => as_string().into_bytes(),
            };
        }
        // The payload's JSON text as written, so numbers keep every digit; any other text as a string.
        let payload = match (
            self.payload_encoding,
            crate::json_text::embeddable(&event.payload),
        ) {
            (PayloadEncoding::Raw, Some(json)) => json.get().to_owned(),
            _ => as_string(),
        };
        let mut envelope = format!("{{\"payload\":{payload}");
        for (alias, value) in members {
            envelope.push(',');
            envelope.push_str(&serde_json::Value::from(alias).to_string());
            envelope.push(':');
            envelope.push_str(&serde_json::Value::from(value).to_string());
        }
        envelope.push('}');
        envelope.into_bytes()
    }

    /// The Kafka partition a partition column names; none for a dead letter, whose topic is
    /// another, nor for a NULL.
    fn partition(&self, routed: &Routed) -> Result<Option<i32>, Refusal> {
        let Some(placement) = self.placements.iter().find(|p| p.place == Place::Partition) else {
            return Ok(None);
        };
        if routed.dead_letter.is_some() {
            return Ok(None);
        }
        let Some(text) = routed.event.column(&placement.column) else {
            return Ok(None);
        };
        match text.trim().parse::<i32>() {
            Ok(partition) if partition >= 0 => Ok(Some(partition)),
            _ => Err(Refusal {
                event_id: routed.event.id.clone(),
                destination: routed.destination.clone(),
                reason: format!(
                    "column {} holds {text:?}, not a partition number",
                    placement.column
                ),
            }),
        }
    }

    /// The row's headers, less any named like a header the relay sets.
    fn row_headers<'e>(&'e self, event: &'e Event) -> impl Iterator<Item = (&'e str, &'e str)> {
        event
            .headers
            .iter()
            .filter(move |(k, _)| {
                !is_reserved(k)
                    && *k != self.id_header
                    && !self.metadata.iter().any(|m| m.name() == k)
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The metadata headers asked for, that the event has values of.
    fn metadata(&self, routed: &Routed) -> Vec<(String, HeaderValue)> {
        self.metadata
            .iter()
            .filter_map(|m| Some((m.name().to_owned(), HeaderValue::Text(m.value(routed)?))))
            .collect()
    }

    /// The event's identity, then the row's headers, then the relay's position and marks.
    fn headers(&self, routed: &Routed) -> Vec<(String, HeaderValue)> {
        let event = &routed.event;
        let mut headers = vec![
            (self.id_header.as_str(), event.id.as_str()),
            ("type", event.event_type.as_str()),
            ("aggregatetype", event.aggregate_type.as_str()),
            ("aggregateid", event.aggregate_id.as_str()),
        ];
        if let Some(created_at) = &event.created_at {
            headers.push(("created_at", created_at));
        }
        headers.extend(self.row_headers(event));
        headers.extend(self.placed_headers(event));
        headers.push((POSITION_HEADER, routed.position()));
        headers.extend(marks::marks(routed));
        let mut headers = owned(headers);
        headers.extend(self.metadata(routed));
        headers
    }

    /// Top-level fields are the relay's own: the row's headers stay inside one `headers` field.
    fn fields(&self, routed: &Routed) -> Vec<(String, HeaderValue)> {
        let event = &routed.event;
        let row_headers: serde_json::Map<String, serde_json::Value> = self
            .row_headers(event)
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        let row_headers = serde_json::Value::Object(row_headers).to_string();
        let mut fields = vec![
            (self.id_header.as_str(), event.id.as_str()),
            ("aggregatetype", &event.aggregate_type),
            ("aggregateid", &event.aggregate_id),
            ("type", &event.event_type),
            ("headers", &row_headers),
            (POSITION_HEADER, routed.position()),
        ];
        if let Some(created_at) = &event.created_at {
            fields.push(("created_at", created_at));
        }
        fields.extend(self.placed_headers(event));
        fields.extend(marks::marks(routed));
        let mut fields = owned(fields);
        fields.extend(self.metadata(routed));
        fields
    }
}

impl Encoder for Native {
    fn encode(&self, routed: Routed) -> Result<Message, Refusal> {
        let partition = self.partition(&routed)?;
        let headers = match self.carrier {
            Carrier::Headers => self.headers(&routed),
            Carrier::Fields => self.fields(&routed),
            Carrier::Document => Vec::new(),
        };
        let key = self.routing.key(&routed.event);
        let dead_letter = routed.dead_letter.is_some();
        let omitted = marks::payload_omitted(&routed);
        let document = (self.carrier == Carrier::Document).then(|| line(&routed));
        let Routed {
            destination,
            mut event,
            ..
        } = routed;
        let id = std::mem::take(&mut event.id);
        let message_type = std::mem::take(&mut event.event_type);
        let value = match document {
            Some(line) => Some(line),
            None if omitted => Some(Vec::new()),
            None if self.carrier == Carrier::Headers && self.is_tombstone(&event) => None,
            None => Some(self.value(event)),
        };
        Ok(Message {
            destination,
            key,
            value,
            partition,
            headers,
            id,
            message_type: Some(message_type),
            content_type: Some(CONTENT_TYPE.to_owned()),
            dead_letter,
        })
    }
}

fn owned(headers: Vec<(&str, &str)>) -> Vec<(String, HeaderValue)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), HeaderValue::from(value)))
        .collect()
}

#[derive(Serialize)]
struct Line<'a> {
    destination: &'a str,
    id: &'a str,
    aggregatetype: &'a str,
    aggregateid: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    payload: Payload<'a>,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<&'a str>,
    outbox_position: &'a str,
    /// Only on events `replay` republished.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// A JSON payload is embedded as JSON; anything else as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    /// Compacted but otherwise as written: numbers keep every digit.
    Json(Box<serde_json::value::RawValue>),
    Text(&'a str),
}

/// The row's headers as a JSON object, in the row's order.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

/// One JSON object; serde_json's compact output escapes newlines inside strings, so it stays on
/// one line.
fn line(routed: &Routed) -> Vec<u8> {
    let event = &routed.event;
    let payload = match crate::json_text::embeddable(&event.payload) {
        Some(json) => Payload::Json(json),
        None => Payload::Text(&event.payload),
    };
    serde_json::to_vec(&Line {
        destination: &routed.destination,
        id: &event.id,
        aggregatetype: &event.aggregate_type,
        aggregateid: &event.aggregate_id,
        event_type: &event.event_type,
        payload,
        headers: Headers(&event.headers),
        created_at: event.created_at.as_deref(),
        outbox_position: routed.position(),
        replayed: event.origin.is_replayed(),
    })
    .expect("strings and validated JSON text always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;
    use crate::lsn::Lsn;

    fn event(headers: &[(&str, &str)], payload: &str, created_at: Option<&str>) -> Event {
        Event {
            id: "e-1".to_owned(),
            aggregate_type: "order".to_owned(),
            aggregate_id: "o-1".to_owned(),
            event_type: "Changed".to_owned(),
            payload: payload.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: created_at.map(str::to_owned),
            columns: Vec::new(),
            origin: Origin::Sequence(1),
            transaction_id: None,
            committed_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    fn names(message: &Message) -> Vec<(&str, &str)> {
        message
            .headers
            .iter()
            .map(|(name, value)| match value {
                HeaderValue::Text(text) => (name.as_str(), text.as_str()),
                HeaderValue::Bytes(_) => panic!("{name} is bytes"),
            })
            .collect()
    }

    const FORGED: [(&str, &str); 5] = [
        ("dlq_reason", "forged"),
        ("outbox_position", "forged"),
        ("replayed", "forged"),
        ("id", "forged"),
        ("keep", "k"),
    ];

    #[test]
    fn headers_carry_identity_row_headers_and_position_and_no_row_can_pose_as_the_relay() {
        let routed = Routed::new("d".to_owned(), event(&FORGED, "{}", None));
        let message = Native::new(SinkKind::Kafka).encode(routed).unwrap();
        assert_eq!(
            names(&message),
            vec![
                ("id", "e-1"),
                ("type", "Changed"),
                ("aggregatetype", "order"),
                ("aggregateid", "o-1"),
                ("keep", "k"),
                ("outbox_position", "0000000000000000001"),
            ]
        );
        assert_eq!(message.key.as_deref(), Some(&b"o-1"[..]));
        assert_eq!(message.value.as_deref(), Some(&b"{}"[..]));
        assert_eq!(message.destination, "d");
        assert_eq!(message.id, "e-1");
        assert_eq!(message.message_type.as_deref(), Some("Changed"));
        assert!(!message.dead_letter);
    }

    #[test]
    fn redis_fields_keep_row_headers_in_one_json_field() {
        let routed = Routed::new(
            "d".to_owned(),
            event(&FORGED, "{}", Some("2026-11-25 12:00:00+00")),
        );
        let message = Native::new(SinkKind::Redis).encode(routed).unwrap();
        assert_eq!(
            names(&message),
            vec![
                ("id", "e-1"),
                ("aggregatetype", "order"),
                ("aggregateid", "o-1"),
                ("type", "Changed"),
                ("headers", r#"{"keep":"k"}"#),
                ("outbox_position", "0000000000000000001"),
                ("created_at", "2026-11-25 12:00:00+00"),
            ]
        );
        assert_eq!(message.value.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_dead_letter_is_encoded_for_its_destination_and_leaves_an_oversized_payload_out() {
        let large = format!("\"{}\"", "x".repeat(marks::DEAD_LETTER_MAX_PAYLOAD));
        for sink in [SinkKind::Kafka, SinkKind::Rabbitmq, SinkKind::Redis] {
            let routed = Routed::new("orders".to_owned(), event(&[], &large, None))
                .dead_lettered("outbox.dlq", "too large");
            let message = Native::new(sink).encode(routed).unwrap();
            assert_eq!(message.destination, "outbox.dlq");
            assert!(message.dead_letter);
            assert_eq!(message.value.as_deref(), Some(&b""[..]), "{sink:?}");
            let tail: Vec<_> = names(&message).into_iter().rev().take(3).collect();
            assert_eq!(
                tail,
                vec![
                    ("dlq_payload_omitted", "true"),
                    ("dlq_destination", "orders"),
                    ("dlq_reason", "too large"),
                ],
                "{sink:?}"
            );
        }
    }

    #[test]
    fn the_id_header_and_the_key_follow_the_settings() {
        let mut event = event(&[("eventId", "forged"), ("id", "forged")], "{}", None);
        event.columns = vec![("customer".into(), Some("c-7".into()))];
        let routing = RoutingConfig {
            key_column: Some("customer".into()),
            key_format: crate::router::KeyFormat::Json,
            ..RoutingConfig::default()
        };
        let format = FormatConfig {
            id_header: "eventId".into(),
            ..FormatConfig::default()
        };
        for sink in [SinkKind::Kafka, SinkKind::Redis] {
            let message = Native::configured(sink, &routing, &format, Vec::new())
                .encode(Routed::new("d".to_owned(), event.clone()))
                .unwrap();
            let headers = names(&message);
            assert_eq!(headers[0], ("eventId", "e-1"), "{sink:?}");
            assert!(!headers[1..]
                .iter()
                .any(|(n, _)| *n == "eventId" || *n == "id"));
            assert_eq!(message.key.as_deref(), Some(&br#""c-7""#[..]));
        }
    }

    fn placed(entries: &[&str]) -> Native {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        Native::configured(
            SinkKind::Kafka,
            &RoutingConfig::default(),
            &FormatConfig::default(),
            Placement::parse_all(&entries).unwrap(),
        )
    }

    fn with_columns(payload: &str, columns: &[(&str, Option<&str>)]) -> Routed {
        let mut event = event(&[], payload, None);
        event.columns = columns
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        Routed::new("d".to_owned(), event)
    }

    #[test]
    fn further_columns_go_to_headers_the_envelope_and_the_partition() {
        let native = placed(&[
            "tenant:header:x-tenant",
            "v:envelope:version",
            "p:partition",
        ]);
        let routed = with_columns(
            r#"{"n": 12345678901234567890}"#,
            &[("tenant", Some("acme")), ("v", Some("2")), ("p", Some("1"))],
        );
        let message = native.encode(routed.clone()).unwrap();
        assert!(names(&message).contains(&("x-tenant", "acme")));
        assert_eq!(
            String::from_utf8(message.value.unwrap()).unwrap(),
            r#"{"payload":{"n":12345678901234567890},"version":"2"}"#
        );
        assert_eq!(message.partition, Some(1));

        let dead = native.encode(routed.dead_lettered("dlq", "why")).unwrap();
        assert_eq!(dead.partition, None, "a dead letter goes to another topic");

        let nulls = with_columns("not json", &[("tenant", None), ("v", None), ("p", None)]);
        let message = native.encode(nulls).unwrap();
        assert!(!names(&message).iter().any(|(n, _)| *n == "x-tenant"));
        assert_eq!(
            String::from_utf8(message.value.unwrap()).unwrap(),
            r#"{"payload":"not json","version":null}"#
        );
        assert_eq!(message.partition, None);
    }

    #[test]
    fn a_partition_column_without_a_partition_number_refuses_the_event() {
        let native = placed(&["p:partition"]);
        for bad in ["one", "-1", "1.5"] {
            let refusal = native
                .encode(with_columns("{}", &[("p", Some(bad))]))
                .unwrap_err();
            assert_eq!(refusal.event_id, "e-1");
            assert!(
                refusal.reason.contains("not a partition number"),
                "{refusal}"
            );
        }
    }

    #[test]
    fn a_null_payload_is_a_tombstone_when_asked_and_payloads_may_be_json_strings() {
        let format = FormatConfig {
            payload_encoding: PayloadEncoding::JsonString,
            ..FormatConfig::default()
        };
        let native = |sink| {
            Native::configured(sink, &RoutingConfig::default(), &format, Vec::new())
                .with_tombstones(Some("payload".into()))
        };
        let null = with_columns("null", &[("payload", None)]);
        assert_eq!(
            native(SinkKind::Kafka).encode(null.clone()).unwrap().value,
            None
        );
        assert_eq!(
            native(SinkKind::Redis)
                .encode(null)
                .unwrap()
                .value
                .as_deref(),
            Some(&br#""null""#[..]),
            "Redis streams have no tombstones"
        );
        let json = with_columns(r#"{"a": 1}"#, &[("payload", Some(r#"{"a": 1}"#))]);
        assert_eq!(
            native(SinkKind::Kafka)
                .encode(json)
                .unwrap()
                .value
                .as_deref(),
            Some(&br#""{\"a\": 1}""#[..])
        );
    }

    #[test]
    fn metadata_headers_describe_the_transaction_in_logical_replication() {
        let format = FormatConfig {
            metadata_headers: vec![
                Metadata::CommitLsn,
                Metadata::TransactionId,
                Metadata::CommitTime,
                Metadata::TransactionIndex,
            ],
            ..FormatConfig::default()
        };
        let native = Native::configured(
            SinkKind::Kafka,
            &RoutingConfig::default(),
            &format,
            Vec::new(),
        );
        let mut streamed = event(&[("commit_lsn", "forged")], "{}", None);
        streamed.origin = Origin::Commit(Lsn(0x16_B374_D848));
        streamed.transaction_id = Some(755);
        streamed.committed_at = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_micros(1_765_000_000_123_456);
        let message = native
            .encode(Routed::new("d".to_owned(), streamed).with_index(3))
            .unwrap();
        let headers = names(&message);
        assert_eq!(
            headers[headers.len() - 4..],
            [
                ("commit_lsn", "16/B374D848"),
                ("transaction_id", "755"),
                ("commit_time", "2025-12-06T05:46:40.123456Z"),
                ("transaction_index", "3"),
            ]
        );
        assert_eq!(
            headers.iter().filter(|(n, _)| *n == "commit_lsn").count(),
            1
        );
        let polled = native
            .encode(Routed::new("d".to_owned(), event(&[], "{}", None)))
            .unwrap();
        assert!(!names(&polled)
            .iter()
            .any(|(n, _)| n.starts_with("commit_") || n.starts_with("transaction_")));
    }

    #[test]
    fn stdout_gets_one_json_object_per_line() {
        let routed = |id: &str, payload: &str, created_at: Option<&str>| {
            let mut event = event(
                &[("trace", "t-1"), ("a", "line\nbreak")],
                payload,
                created_at,
            );
            event.id = id.to_owned();
            event.origin = Origin::Commit(Lsn(1));
            let message = Native::new(SinkKind::Stdout)
                .encode(Routed::new("outbox.event.order".to_owned(), event))
                .unwrap();
            assert!(message.headers.is_empty());
            String::from_utf8(message.value.unwrap()).unwrap()
        };
        assert_eq!(
            routed("1", r#"{"total": 3}"#, Some("2026-11-25 12:00:00+00")),
            r#"{"destination":"outbox.event.order","id":"1","aggregatetype":"order","aggregateid":"o-1","type":"Changed","payload":{"total":3},"headers":{"trace":"t-1","a":"line\nbreak"},"created_at":"2026-11-25 12:00:00+00","outbox_position":"0000000000000001/00000000"}"#
        );
        assert_eq!(
            routed("2", "not json\nat all", None),
            r#"{"destination":"outbox.event.order","id":"2","aggregatetype":"order","aggregateid":"o-1","type":"Changed","payload":"not json\nat all","headers":{"trace":"t-1","a":"line\nbreak"},"outbox_position":"0000000000000001/00000000"}"#
        );
    }
}
