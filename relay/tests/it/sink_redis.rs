//! The Redis Streams sink against the machine's Redis: one stream per destination, in order per key.

use crate::sink_common;

use outbox_relay::config::SinkKind;
use outbox_relay::sink::redis::{connect, RedisConfig};
use outbox_relay::sink::SinkError;
use sink_common::{assert_delivered_in_order, events, publish_all, unique, Received};

/// Everything in `streams`, read with the harness's reader.
async fn read_streams(url: &str, streams: &[String]) -> Vec<Received> {
    harness::Reader::redis(url, streams)
        .collect_until(std::time::Duration::from_secs(10), |_| true)
        .await
}

async fn delete(url: &str, keys: &[String]) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(keys)
        .exec_async(&mut connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_delivers_overlapping_batches_in_order_per_key() {
    let url = harness::Redis::shared().unwrap();
    let streams = [unique("test.redis.a"), unique("test.redis.b")];
    let mut sink = connect(&RedisConfig {
        url: url.clone(),
        maxlen: None,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let sent = events(&streams, 6, 50);

    publish_all(&mut sink, SinkKind::Redis, sent.clone(), 25, 4)
        .await
        .unwrap();

    let received = read_streams(&url, &streams).await;
    delete(&url, &streams).await;
    // Order is checked per key, and each key lives in one stream, so concatenating streams is fine.
    assert_delivered_in_order(&sent, &received);
}

#[tokio::test]
async fn redis_trims_streams_to_about_maxlen() {
    let url = harness::Redis::shared().unwrap();
    let stream = unique("test.redis.trim");
    let mut sink = connect(&RedisConfig {
        url: url.clone(),
        maxlen: Some(100),
        ..RedisConfig::default()
    })
    .await
    .unwrap();

    publish_all(
        &mut sink,
        SinkKind::Redis,
        events(std::slice::from_ref(&stream), 1, 2000),
        500,
        2,
    )
    .await
    .unwrap();

    let length = read_streams(&url, std::slice::from_ref(&stream))
        .await
        .len();
    delete(&url, std::slice::from_ref(&stream)).await;
    // `MAXLEN ~` trims whole radix-tree nodes (100 entries by default), so it may keep a few more.
    assert!(
        (100..=300).contains(&length),
        "stream holds {length} entries"
    );
}

#[tokio::test]
async fn redis_refuses_event_for_key_of_another_type_for_good() {
    let url = harness::Redis::shared().unwrap();
    let key = unique("test.redis.string");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg("not a stream")
        .exec_async(&mut connection)
        .await
        .unwrap();
    let mut sink = connect(&RedisConfig {
        url: url.clone(),
        maxlen: None,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let sent = events(std::slice::from_ref(&key), 1, 1);

    let error = publish_all(&mut sink, SinkKind::Redis, sent.clone(), 10, 1)
        .await
        .unwrap_err();

    delete(&url, std::slice::from_ref(&key)).await;
    match error {
        SinkError::Unacceptable { refusals, .. } => {
            assert_eq!(refusals.len(), 1, "{refusals:?}");
            assert_eq!(refusals[0].event_id, sent[0].event.id);
            assert_eq!(refusals[0].destination, key);
            assert!(refusals[0].reason.contains("WRONGTYPE"), "{refusals:?}");
        }
        other => panic!("expected Unacceptable, got {other:?}"),
    }
}

#[tokio::test]
async fn redis_connect_to_closed_port_fails() {
    let port = harness::free_port().unwrap();
    let result = connect(&RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        maxlen: None,
        ..RedisConfig::default()
    })
    .await;
    assert!(
        matches!(result, Err(SinkError::Connect { .. })),
        "{:?}",
        result.err()
    );
}

/// `cargo test --release -p outbox-relay --test it sink_redis:: -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measures throughput; run on demand"]
async fn redis_throughput() {
    let url = harness::Redis::shared().unwrap();
    let stream = unique("test.redis.throughput");
    let mut sink = connect(&RedisConfig {
        url: url.clone(),
        maxlen: None,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let sent = events(std::slice::from_ref(&stream), 100, 500);

    let elapsed = publish_all(&mut sink, SinkKind::Redis, sent, 500, 8)
        .await
        .unwrap();

    delete(&url, std::slice::from_ref(&stream)).await;
    println!(
        "redis: 50000 events in {elapsed:?}: {:.0} events/s",
        50_000.0 / elapsed.as_secs_f64()
    );
}
