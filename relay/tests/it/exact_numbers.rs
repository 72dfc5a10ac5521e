//! JSON numbers beyond f64 travel digit for digit: in header values (a number beyond f64's range
//! used to drop every header, the correlation id with them) and in the stdout sink's payload.

use crate::support;

use std::time::Duration;

use harness::Reader;
use support::scenarios::Target;

const BIG: &str = "123456789012345678901234567890.000000000000000000001";
/// Beyond f64's range: serde_json refused it, and with it the whole headers object.
const HUGE: &str = "1e400";

async fn insert_row(pg: &harness::Postgres) {
    // `json`, not `jsonb`: the text as the service wrote it, exponent included.
    pg.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "ALTER TABLE outbox ALTER COLUMN headers TYPE json, ALTER COLUMN payload TYPE json;
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES
               (gen_random_uuid(), 'order', 'a-1', 'Priced',
                '{{\"total\": {BIG}}}', '{{\"correlation_id\": \"c-1\", \"amount\": {BIG}, \"limit\": {HUGE}}}')"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_numbers_arrive_exactly_through_redis() {
    let pg = support::outbox_database().await;
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let mut reader = Reader::redis(&url, &target.destinations());
    let mut relay = target.relay(&pg, &[]);
    insert_row(&pg).await;
    let received = reader
        .collect_until(Duration::from_secs(60), |r| !r.is_empty())
        .await;
    let headers = &received[0].headers;
    assert_eq!(
        headers.get("correlation_id").map(String::as_str),
        Some("c-1"),
        "{headers:?}"
    );
    assert_eq!(headers.get("amount").map(String::as_str), Some(BIG));
    assert_eq!(headers.get("limit").map(String::as_str), Some(HUGE));
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_numbers_arrive_exactly_on_stdout() {
    let pg = support::outbox_database().await;
    let mut relay = support::start_relay(&pg, &["--sink", "stdout"]);
    support::scenarios::wait_streaming(&relay);
    insert_row(&pg).await;
    harness::wait_until(Duration::from_secs(60), "the event on stdout", || {
        relay.log().contains("\"type\":\"Priced\"")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let log = relay.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"type\":\"Priced\""))
        .unwrap();
    assert!(
        line.contains(&format!("\"payload\":{{\"total\":{BIG}}}")),
        "{line}"
    );
    assert!(line.contains(&format!("\"amount\":\"{BIG}\"")), "{line}");
    assert!(line.contains("\"correlation_id\":\"c-1\""), "{line}");
    support::stop_relay(&mut relay);
}
