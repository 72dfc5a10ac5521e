//! The relay end to end into Redis Streams: real PostgreSQL, real Redis, the relay binary.

use crate::support;

use harness::Reader;
use support::scenarios::{self, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_delivers_everything_in_order() {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_survives_relay_kill() {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_survives_broker_restart() {
    let mut redis = harness::Redis::start().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis.url()]);
    let reader = Reader::redis(&redis.url(), &target.destinations());
    scenarios::survives_broker_restart(target, reader, || {
        redis.stop().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        redis.start_again().unwrap();
    })
    .await;
}

/// Redis at its `maxmemory` with `noeviction` refuses XADDs (OOM) until a consumer trims the
/// stream: a refused batch lands none of its events, so nothing overtakes a refused event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_order_when_out_of_memory() {
    let redis = harness::Redis::start_with_maxmemory(3 * 1024 * 1024).unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis.url()]);
    let reader = Reader::redis_trimming(&redis.url(), &target.destinations(), 20);
    let (report, received) =
        scenarios::keeps_order_while_the_broker_refuses(target, reader, "OOM").await;
    report.assert_lossless();
    scenarios::assert_positions_increase(&received);
}
