//! Poison events: one the broker refuses for good is parked in the dead-letter destination with the
//! reason, counted, and the events after it still arrive, in order. Many of them in one transaction
//! cost one dead letter each and a session or two, not a session each.

use crate::support;

use std::time::Duration;

use harness::{Reader, Received};
use support::scenarios::Target;
use support::{http_get, metric, metrics_addr};

const DEADLINE: Duration = Duration::from_secs(120);

/// Ten good events, the poison one (aggregate type `poison`, `poison_padding` bytes of payload),
/// ten more good ones, each in its own transaction.
async fn write_around_a_poison_event(pg: &harness::Postgres, poison_padding: usize) {
    let client = pg.client().await.unwrap();
    let insert = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), $1, 'a-1', 'Changed', jsonb_build_object('seq', $2::int, 'pad', $3::text))";
    for seq in 0..21 {
        let (aggregate_type, padding) = if seq == 10 {
            ("poison", poison_padding)
        } else {
            ("order", 0)
        };
        client
            .execute(insert, &[&aggregate_type, &seq, &"p".repeat(padding)])
            .await
            .unwrap();
    }
}

/// Sequence numbers of first deliveries: a restart may re-send what was confirmed but not yet
/// acknowledged, which consumers drop by id.
fn seqs(received: &[Received]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|m| seen.insert(m.headers["id"].clone()))
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.payload).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

async fn assert_parked(
    target: &Target,
    relay: &harness::Process,
    mut good: Reader,
    mut parked: Reader,
    reason: &str,
) {
    let received = good.collect_until(DEADLINE, |r| seqs(r).len() >= 20).await;
    let expected: Vec<i64> = (0..21).filter(|s| *s != 10).collect();
    assert_eq!(
        seqs(&received),
        expected,
        "the events around the poison one arrive in order"
    );
    let dead = parked.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let headers = &dead[0].headers;
    assert!(headers["dlq_reason"].contains(reason), "{headers:?}");
    assert_eq!(
        headers["dlq_destination"],
        format!("{}.poison", target.prefix)
    );
    assert_eq!(headers["type"], "Changed");
    let addr = metrics_addr(relay);
    harness::wait_until(DEADLINE, "the dead-letter counter", || {
        metric(
            &http_get(&addr, "/metrics").1,
            "outbox_relay_dead_lettered_total",
            &[],
        ) == Some(1.0)
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_parks_an_event_whose_stream_key_holds_another_type() {
    redis_parks_an_event_on_a_wrongtype_key(false).await;
}

/// Polling with `cleanup = delete`: relayed rows go, the poison row stays, marked, since its dead
/// letter may not carry the whole payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_parks_a_poison_event_and_keeps_its_row() {
    let pg = redis_parks_an_event_on_a_wrongtype_key(true).await;
    let rows = pg
        .client()
        .await
        .unwrap()
        .query(
            "SELECT aggregatetype, published_at IS NOT NULL FROM outbox",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, vec![("poison".to_owned(), true)]);
}

async fn redis_parks_an_event_on_a_wrongtype_key(polling: bool) -> harness::Postgres {
    let url = harness::Redis::shared().unwrap();
    let dead_letters = harness::unique("dlq");
    let mut target = Target::new(&[
        "--sink",
        "redis",
        "--redis-url",
        &url,
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let mut extra = Vec::new();
    if polling {
        target = target.polling();
        extra = vec!["--mode", "polling", "--cleanup", "delete"];
    }
    let pg = target.database().await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}.poison", target.prefix))
        .arg("not a stream")
        .query_async(&mut connection)
        .await
        .unwrap();
    let good = Reader::redis(&url, &[format!("{}.order", target.prefix)]);
    let parked = Reader::redis(&url, std::slice::from_ref(&dead_letters));
    let mut relay = target.relay(&pg, &extra);
    write_around_a_poison_event(&pg, 0).await;
    assert_parked(&target, &relay, good, parked, "WRONGTYPE").await;
    support::stop_relay(&mut relay);
    pg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_parks_an_unroutable_event() {
    let pg = support::outbox_database().await;
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = harness::unique("outbox");
    let dead_letters = harness::unique("dlq");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        &url,
        "--rabbitmq-exchange",
        &exchange,
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let good = Reader::rabbitmq(&url, &exchange, &[format!("{}.order", target.prefix)]).await;
    let parked = Reader::RabbitMq {
        url: url.clone(),
        queue: dead_letters.clone(),
    };
    let mut relay = target.relay(&pg, &[]);
    write_around_a_poison_event(&pg, 0).await;
    assert_parked(&target, &relay, good, parked, "NO_ROUTE").await;
    support::stop_relay(&mut relay);
    // The sink's own line says why; lapin's dump of the returned message's bytes stays out.
    assert!(
        !relay.log().contains("Server returned us a message"),
        "{}",
        relay.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_parks_an_oversize_event_without_its_payload() {
    let pg = support::outbox_database().await;
    let kafka = harness::Kafka::start().unwrap();
    let dead_letters = harness::unique("dlq");
    let config = support::kafka_properties(&[("message.max.bytes", "100000")]);
    let target = Target::new(&[
        "--config",
        config.path().to_str().unwrap(),
        "--sink",
        "kafka",
        "--kafka-brokers",
        &kafka.brokers(),
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let good = Reader::kafka(&kafka.brokers(), &[format!("{}.order", target.prefix)]);
    let mut parked = Reader::kafka(&kafka.brokers(), std::slice::from_ref(&dead_letters));
    let mut relay = target.relay(&pg, &[]);
    write_around_a_poison_event(&pg, 200_000).await;
    let dead = parked.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(
        dead[0]
            .headers
            .get("dlq_payload_omitted")
            .map(String::as_str),
        Some("true")
    );
    assert!(dead[0].payload.is_empty());
    let parked = Reader::kafka(&kafka.brokers(), std::slice::from_ref(&dead_letters));
    assert_parked(&target, &relay, good, parked, "too large").await;
    support::stop_relay(&mut relay);
}

/// Events in the one transaction of [`write_many_poison_events`].
const MANY: i32 = 200;

/// One transaction of `MANY` events, every other one poison (aggregate type `poison`).
async fn write_many_poison_events(pg: &harness::Postgres) {
    let mut client = pg.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let insert = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), $1, 'a-1', 'Changed', jsonb_build_object('seq', $2::int))";
    for seq in 0..MANY {
        let aggregate_type = if seq % 2 == 1 { "poison" } else { "order" };
        tx.execute(insert, &[&aggregate_type, &seq]).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Each of the `MANY / 2` poison events is dead-lettered once, in a session or two; the good ones
/// arrive in order, re-sent at most once.
async fn assert_each_parked_once(relay: &harness::Process, mut good: Reader, mut parked: Reader) {
    let poison = (MANY / 2) as usize;
    let received = good
        .collect_until(DEADLINE, |r| seqs(r).len() >= poison)
        .await;
    let expected: Vec<i64> = (0..i64::from(MANY)).filter(|s| s % 2 == 0).collect();
    assert_eq!(seqs(&received), expected, "the good events arrive in order");
    let dead = parked
        .collect_until(DEADLINE, |r| seqs(r).len() >= poison)
        .await;
    let addr = metrics_addr(relay);
    harness::wait_until(DEADLINE, "the dead-letter counter", || {
        metric(
            &http_get(&addr, "/metrics").1,
            "outbox_relay_dead_lettered_total",
            &[],
        ) >= Some(poison as f64)
    })
    .unwrap();
    // Anything still on its way would be counted by now: the counter follows confirmations.
    std::thread::sleep(Duration::from_secs(1));
    let dead = [dead, parked.collect_until(DEADLINE, |_| true).await].concat();
    let received = [received, good.collect_until(DEADLINE, |_| true).await].concat();
    let sessions = relay.log().matches("streaming the outbox").count();
    eprintln!(
        "{} dead letters, {} good messages, {sessions} sessions",
        dead.len(),
        received.len()
    );
    assert_eq!(dead.len(), poison, "one dead letter per poison event");
    assert!(
        received.len() <= 2 * poison,
        "{} copies of {poison} good events",
        received.len()
    );
    assert!(sessions <= 3, "{sessions} sessions:\n{}", relay.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_parks_many_poison_events_of_one_transaction_once_each() {
    let url = harness::Redis::shared().unwrap();
    let dead_letters = harness::unique("dlq");
    let target = Target::new(&[
        "--sink",
        "redis",
        "--redis-url",
        &url,
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let pg = target.database().await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}.poison", target.prefix))
        .arg("not a stream")
        .query_async(&mut connection)
        .await
        .unwrap();
    let good = Reader::redis(&url, &[format!("{}.order", target.prefix)]);
    let parked = Reader::redis(&url, std::slice::from_ref(&dead_letters));
    let mut relay = target.relay(&pg, &[]);
    write_many_poison_events(&pg).await;
    assert_each_parked_once(&relay, good, parked).await;
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_parks_many_unroutable_events_of_one_transaction_once_each() {
    let pg = support::outbox_database().await;
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = harness::unique("outbox");
    let dead_letters = harness::unique("dlq");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        &url,
        "--rabbitmq-exchange",
        &exchange,
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let good = Reader::rabbitmq(&url, &exchange, &[format!("{}.order", target.prefix)]).await;
    let parked = Reader::RabbitMq {
        url: url.clone(),
        queue: dead_letters.clone(),
    };
    let mut relay = target.relay(&pg, &[]);
    write_many_poison_events(&pg).await;
    assert_each_parked_once(&relay, good, parked).await;
    support::stop_relay(&mut relay);
}

/// RabbitMQ refuses an event whose type or a header name is over 255 bytes (AMQP short strings);
/// its dead letter carries the type cut to fit (whole in the `type` header) and leaves the header
/// out, naming it, so it is accepted and the relay goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_parks_an_event_with_overlong_names() {
    let pg = support::outbox_database().await;
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = harness::unique("outbox");
    let dead_letters = harness::unique("dlq");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        &url,
        "--rabbitmq-exchange",
        &exchange,
        "--dead-letter-destination",
        &dead_letters,
    ]);
    let mut good = Reader::rabbitmq(&url, &exchange, &[format!("{}.order", target.prefix)]).await;
    let mut parked = Reader::RabbitMq {
        url: url.clone(),
        queue: dead_letters.clone(),
    };
    let mut relay = target.relay(&pg, &[]);
    let (long_type, long_name) = ("T".repeat(300), "h".repeat(300));
    let client = pg.client().await.unwrap();
    let insert = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'order', 'a-1', $1, jsonb_build_object('seq', $2::int), $3::text::jsonb)";
    let headers = serde_json::json!({ long_name.clone(): "v", "keep": "k" }).to_string();
    client
        .execute(insert, &[&long_type, &0, &headers])
        .await
        .unwrap();
    client
        .execute(insert, &[&"Changed", &1, &"{}"])
        .await
        .unwrap();
    let received = good.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(seqs(&received), vec![1], "the relay goes on after it");
    let dead = parked.collect_until(DEADLINE, |r| !r.is_empty()).await;
    let headers = &dead[0].headers;
    assert_eq!(headers["type"], long_type, "{headers:?}");
    assert_eq!(headers["keep"], "k");
    assert!(!headers.contains_key(&long_name));
    assert_eq!(headers["dlq_omitted_headers"], long_name);
    assert!(headers["dlq_reason"].contains("header name"), "{headers:?}");
    support::stop_relay(&mut relay);
}

/// Headers named like the relay's own (`dlq_*`, `outbox_position`) are dropped from a row: an
/// ordinary event never looks like a dead letter, nor carries a position of the service's making.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_event_with_dead_letter_headers_is_no_dead_letter() {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let pg = target.database().await;
    let mut good = Reader::redis(&url, &[format!("{}.order", target.prefix)]);
    let mut relay = target.relay(&pg, &[]);
    let headers = serde_json::json!({
        "dlq_reason": "forged",
        "dlq_destination": "elsewhere",
        "outbox_position": "forged",
        "keep": "k",
    });
    pg.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'order', 'a-1', 'Changed', '{}', $1::text::jsonb)",
            &[&headers.to_string()],
        )
        .await
        .unwrap();
    let received = good.collect_until(DEADLINE, |r| !r.is_empty()).await;
    let headers = &received[0].headers;
    assert_eq!(headers["keep"], "k");
    assert!(!headers.contains_key("dlq_reason"), "{headers:?}");
    assert!(!headers.contains_key("dlq_destination"), "{headers:?}");
    assert_ne!(headers["outbox_position"], "forged", "{headers:?}");
    support::stop_relay(&mut relay);
}
