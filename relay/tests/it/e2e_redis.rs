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
