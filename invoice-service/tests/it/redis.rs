//! The scenarios against Redis Streams.

use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use crate::common::{redis_connection, Bus, Setup, WireEvent};
use crate::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_v1_and_v2_each_produce_one_invoice() {
    scenarios::v1_and_v2_each_produce_one_invoice(Setup::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_redelivered_event_produces_one_invoice() {
    scenarios::a_redelivered_event_produces_one_invoice(Setup::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_poison_events_are_dead_lettered_and_consumption_continues() {
    scenarios::poison_events_are_dead_lettered_and_consumption_continues(Setup::redis()).await;
}

/// Entries another consumer of the group read and never acknowledged (it crashed and did not come
/// back) are claimed once idle for `reclaim_idle`, and invoiced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_left_pending_by_a_dead_consumer_are_claimed() {
    let mut setup = Setup::redis();
    setup.config.messaging.redis.reclaim_idle = Duration::from_millis(500);
    let messaging = &setup.config.messaging;
    let Bus::Redis { url } = &setup.bus else {
        unreachable!("a Redis setup")
    };
    let mut connection = redis_connection(url).await;
    let _: () = connection
        .xgroup_create_mkstream(&messaging.destination, &messaging.redis.group, "0")
        .await
        .unwrap();
    let events = [
        WireEvent::order_confirmed("1"),
        WireEvent::order_confirmed("2"),
    ];
    for event in &events {
        setup.publish(event).await;
    }
    let read: StreamReadReply = connection
        .xread_options(
            &[&messaging.destination],
            &[">"],
            &StreamReadOptions::default().group(&messaging.redis.group, "crashed-instance"),
        )
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 2);

    setup.start().await;
    for event in &events {
        setup.wait_for_invoice(event.aggregate_id).await;
    }
    setup.stop().await;
}
