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
use outbox_relay::source::message;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Inputs per property; 10 properties, so about 100,000 inputs per run.
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

    /// Documents of any members, of any of these values: an event carrying the payload as written,
    /// or a dead letter carrying the content as written, with a reason.
    #[test]
    fn emitted_messages_become_events_or_dead_letters(
        members in proptest::collection::vec((
            prop::sample::select(vec!["id", "aggregatetype", "aggregateid", "type", "payload", "headers", "created_at", "other"]),
            prop::sample::select(vec!["\"s\"", "\"\"", "1", "null", "[1]", "{}", "{\"a\": 1.50}", "true", "\"\\u00e9\""]),
        ), 0..9),
        transactional in any::<bool>(),
        truncate in any::<prop::sample::Index>(),
    ) {
        let mut content = format!(
            "{{{}}}",
            members.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(", ")
        );
        if members.len() % 3 == 0 {
            content.truncate(truncate.index(content.len() + 1));
        }
        let commit = Some((Lsn(2), std::time::SystemTime::UNIX_EPOCH));
        match message::event(transactional, Lsn(1), &Bytes::from(content.clone()), commit) {
            Ok(event) => {
                prop_assert!(transactional && !event.id.is_empty());
                let payload = members.iter().rev().find(|(k, _)| *k == "payload").map(|(_, v)| *v);
                prop_assert_eq!(Some(event.payload.as_str()), payload);
            }
            Err(rejected) => {
                prop_assert!(!rejected.reason.is_empty());
                prop_assert_eq!(rejected.event.payload, content);
            }
        }
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

/// Configuration keys with their TOML section, for the loader's fuzzing.
const KEYS: &[(&str, &str)] = &[
    ("", "mode"),
    ("", "slot"),
    ("", "publication"),
    ("", "destination"),
    ("", "dead_letter_destination"),
    ("", "sink"),
    ("", "cleanup"),
    ("", "metrics_addr"),
    ("", "metrics_token"),
    ("", "metrics_max_destinations"),
    ("", "slot_lag_warning_bytes"),
    ("", "slot_failover"),
    ("", "shutdown_grace"),
    ("pipeline", "batch_size"),
    ("pipeline", "max_in_flight"),
    ("pipeline", "status_interval"),
    ("polling", "interval"),
    ("polling", "claims_in_flight"),
    ("polling", "channel"),
    ("polling", "install_trigger"),
    ("backoff", "initial"),
    ("backoff", "max"),
    ("backoff", "multiplier"),
    ("backoff", "max_attempts"),
    ("kafka", "brokers"),
    ("kafka", "topic_partitions"),
    ("kafka", "replication_factor"),
    ("kafka", "message_timeout"),
    ("rabbitmq", "url"),
    ("rabbitmq", "exchange"),
    ("rabbitmq", "management_url"),
    ("redis", "url"),
    ("redis", "maxlen"),
    ("outbox", "table"),
    ("outbox.columns", "sequence"),
    ("outbox.columns", "published_at"),
    ("outbox.columns", "created_at"),
    ("messages", "enabled"),
    ("messages", "prefix"),
];

/// Edge values, as TOML literals: zeros, negatives, huge numbers, odd floats, durations from
/// nothing to ages, URLs that do not parse, and plain good values.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "-2",
    "1",
    "2",
    "1000",
    "1000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "-2.0",
    "0.0",
    "nan",
    "inf",
    "-inf",
    "true",
    "\"\"",
    "\"0s\"",
    "\"1ns\"",
    "\"-1s\"",
    "\"10ms\"",
    "\"1h\"",
    "\"1000000000years\"",
    "\"x\"",
    "\"redis\"",
    "\"stdout\"",
    "\"rabbitmq\"",
    "\"kafka\"",
    "\"polling\"",
    "\"redis://[::1\"",
    "\"redis://h:notaport\"",
    "\"redis://127.0.0.1:6379\"",
    "\"amqp://\"",
    "\"amqp://h:99999/%2f\"",
    "\"{type}\"",
    "\"{\"",
    "\"a.b.c\"",
    "\"127.0.0.1:0\"",
    "\"\\u0000\"",
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
];

fn loader_config() -> ProptestConfig {
    ProptestConfig {
        cases: 3_000,
        ..ProptestConfig::default()
    }
}

/// `value` at `path` in `dict`, creating the tables on the way.
fn set_key(dict: &mut figment::value::Dict, path: &[&str], value: figment::value::Value) {
    use figment::value::Value;
    match path {
        [] => {}
        [key] => {
            dict.insert((*key).to_owned(), value);
        }
        [key, rest @ ..] => {
            let entry = dict
                .entry((*key).to_owned())
                .or_insert_with(|| Value::from(figment::value::Dict::new()));
            if let Value::Dict(_, nested) = entry {
                set_key(nested, rest, value);
            }
        }
    }
}

proptest! {
    #![proptest_config(loader_config())]

    /// Any mix of edge values, in the file or as `OUTBOX_RELAY_*` variables, loads or fails naming
    /// one of the keys set: never a panic, never a configuration that fails later. Variables are
    /// parsed as figment parses the environment, then given as the layer above the file: setting
    /// the process's environment would leak into the relays other tests start meanwhile.
    #[test]
    fn the_configuration_loads_or_names_a_key(
        entries in proptest::collection::btree_map(0..KEYS.len(), (0..VALUES.len(), any::<bool>()), 1..6),
    ) {
        let mut sections: std::collections::BTreeMap<&str, String> = Default::default();
        let mut variables = figment::value::Dict::new();
        set_key(&mut variables, &["database_url"], "postgres://u@h/db".into());
        for (&key, &(value, as_variable)) in &entries {
            let (section, name) = KEYS[key];
            if as_variable {
                let mut path: Vec<&str> = section.split('.').filter(|s| !s.is_empty()).collect();
                path.push(name);
                let text = VALUES[value].trim_matches('"');
                set_key(&mut variables, &path, text.parse().expect("infallible"));
            } else {
                sections.entry(section).or_default().push_str(&format!("{name} = {}\n", VALUES[value]));
            }
        }
        let mut toml = sections.remove("").unwrap_or_default();
        for (section, lines) in sections {
            toml.push_str(&format!("[{section}]\n{lines}"));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &toml).unwrap();
        let loaded = outbox_relay::config::Config::load(Some(file.path()), &variables);
        if let Ok(config) = &loaded {
            // What the relay builds from these values must not panic or abort later either.
            let mut backoff = outbox_relay::backoff::Backoff::new(config.backoff.clone());
            for _ in 0..70 {
                backoff.next_delay();
            }
            prop_assert!(!config.pipeline.status_interval.is_zero(), "{toml}");
            prop_assert!(config.pipeline.max_in_flight <= 1_000_000, "{toml}");
            prop_assert!(config.polling.claims_in_flight <= 64, "{toml}");
            if config.sink == outbox_relay::config::SinkKind::Redis {
                prop_assert!(redis::Client::open(config.redis.url.as_str()).is_ok(), "{toml}");
            }
        }
        if let Err(error) = loaded {
            let error = error.to_string();
            let named = entries.keys().any(|&k| error.contains(KEYS[k].1));
            prop_assert!(named, "{error}\nfrom:\n{toml}\nand variables {variables:?}");
        }
    }
}

/// Values that used to panic, abort on a huge allocation or fail only after the slot existed: each
/// now exits 2 naming its key before the relay connects anywhere, so no slot is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_exit_2_naming_the_key_before_any_side_effect() {
    let pg = harness::Postgres::start().unwrap();
    let client = pg.client().await.unwrap();
    client
        .batch_execute(&OutboxTable::default().ddl())
        .await
        .unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "[pipeline]\nstatus_interval = \"0s\"\n",
            &["--sink", "stdout"],
            "pipeline.status_interval",
        ),
        (
            "[backoff]\nmultiplier = -2.0\n",
            &["--sink", "stdout"],
            "backoff.multiplier",
        ),
        (
            "[pipeline]\nbatch_size = 1000000000\nmax_in_flight = 1000000000\n",
            &["--sink", "stdout"],
            "pipeline.batch_size",
        ),
        (
            "[polling]\nclaims_in_flight = 1000000000\n",
            &["--sink", "stdout", "--mode", "polling"],
            "polling.claims_in_flight",
        ),
        (
            "[redis]\nurl = \"redis://127.0.0.1:notaport\"\n",
            &["--sink", "redis"],
            "redis.url",
        ),
        (
            "[kafka.properties]\n\"acks\" = \"sometimes\"\n",
            &["--sink", "kafka"],
            "kafka.properties",
        ),
    ];
    for (toml, flags, key) in cases {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), toml).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
        command
            .env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
            .args([
                "--config",
                file.path().to_str().unwrap(),
                "run",
                "--database-url",
                &pg.url(),
            ]);
        command.args(*flags);
        let mut relay = harness::Process::start(command).unwrap();
        let status = relay
            .wait_timeout(std::time::Duration::from_secs(30))
            .unwrap()
            .unwrap_or_else(|| panic!("still running with {toml}:\n{}", relay.log()));
        assert_eq!(status.code(), Some(2), "{toml}:\n{}", relay.log());
        assert!(
            relay.log().contains(&format!("`{key}`")),
            "{toml}:\n{}",
            relay.log()
        );
    }
    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
}
