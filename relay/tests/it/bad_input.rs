//! Property tests over everything the relay parses from outside: the replication stream's framing,
//! pgoutput messages, outbox rows, destination templates, LSNs and database URLs. Arbitrary input
//! must give an error or a value, never a panic; well-formed input must decode to what was encoded.

use bytes::{BufMut, Bytes, BytesMut};
use outbox_relay::event::Origin;
use outbox_relay::lsn::Lsn;
use outbox_relay::outbox::OutboxTable;
use outbox_relay::pg::database::Database;
use outbox_relay::pg::pgoutput::{decode, LogicalMessage, Value};
use outbox_relay::pg::redact_url;
use outbox_relay::pg::wire::Codec;
use outbox_relay::router::Router;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Inputs per property; 9 properties, so about 90,000 inputs per run.
const CASES: u32 = 10_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// An Insert message as pgoutput writes it, for the given column values.
fn insert(relation: u32, values: &[Option<Vec<u8>>]) -> Bytes {
    let mut m = BytesMut::new();
    m.put_u8(b'I');
    m.put_u32(relation);
    m.put_u8(b'N');
    m.put_u16(values.len() as u16);
    for value in values {
        match value {
            None => m.put_u8(b'n'),
            Some(bytes) => {
                m.put_u8(b't');
                m.put_u32(bytes.len() as u32);
                m.put_slice(bytes);
            }
        }
    }
    m.freeze()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pgoutput_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(Bytes::from(data));
    }

    #[test]
    fn pgoutput_never_panics_on_mangled_messages(
        tag in prop::sample::select(vec![b'B', b'C', b'R', b'I', b'U', b'D', b'T', b'O', b'Y', b'M']),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut data = vec![tag];
        data.extend(body);
        let _ = decode(Bytes::from(data));
    }

    #[test]
    fn inserts_round_trip(
        relation in any::<u32>(),
        values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), 0..12),
    ) {
        let decoded = decode(insert(relation, &values)).unwrap();
        let expected: Vec<Value> = values
            .iter()
            .map(|v| v.as_ref().map_or(Value::Null, |b| Value::Text(Bytes::copy_from_slice(b))))
            .collect();
        prop_assert_eq!(decoded, LogicalMessage::Insert { relation_id: relation, values: expected });
    }

    #[test]
    fn truncated_inserts_are_errors(
        values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let full = insert(7, &values);
        let len = cut.index(full.len());
        prop_assert!(decode(full.slice(..len)).is_err());
    }

    #[test]
    fn wire_framing_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        let mut codec = Codec;
        // Stops at the first error or incomplete frame, as the stream would.
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    #[test]
    fn outbox_rows_of_any_content_become_events(
        values in proptest::collection::vec(proptest::option::of(".{0,40}"), 7),
    ) {
        let columns: Vec<String> = ["id", "aggregatetype", "aggregateid", "type", "payload", "headers", "created_at"]
            .iter().map(|s| s.to_string()).collect();
        let layout = OutboxTable::default().layout(&columns).unwrap();
        let values: Vec<Value> = values
            .iter()
            .map(|v| v.as_ref().map_or(Value::Null, |s| Value::Text(Bytes::copy_from_slice(s.as_bytes()))))
            .collect();
        let (event, _) = layout.event(&values, Origin::Commit(Lsn(1)), std::time::SystemTime::UNIX_EPOCH);
        prop_assert_eq!(event.origin, Origin::Commit(Lsn(1)));
    }

    #[test]
    fn templates_parse_or_fail_cleanly(template in ".{0,40}") {
        let _ = Router::new(&template);
    }

    #[test]
    fn lsns_round_trip(value in any::<u64>(), junk in ".{0,20}") {
        let lsn = Lsn(value);
        prop_assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        let _ = junk.parse::<Lsn>();
    }

    #[test]
    fn database_urls_parse_or_fail_without_leaking_passwords(
        host in "[a-z0-9.]{0,12}",
        password in "[A-Za-z0-9/@]{8,16}",
        query in "[a-z=&%0-9-]{0,30}",
        form in 0..3u8,
    ) {
        let url = match form {
            0 => format!("postgres://relay:{password}@{host}/db?{query}"),
            1 => format!("postgres://relay@{host}/db?{query}&password={password}"),
            _ => format!("host={host} user=relay password={password} {query}"),
        };
        if let Err(error) = Database::parse(&url) {
            prop_assert!(!error.to_string().contains(&password), "{}", error);
        }
        prop_assert!(!redact_url(&url).contains(&password), "{}", redact_url(&url));
    }
}
