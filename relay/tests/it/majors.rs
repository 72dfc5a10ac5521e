//! The relay's core behaviour on the other PostgreSQL majors the suite installs, 13 and 17 (every other
//! test runs on the system's 15): a stream of concurrent transactions delivered in order, a relay killed
//! mid-stream and restarted, and the server crashing under the relay. Redis is the broker: the sink is
//! not what differs between majors, and it is the quickest to run.

use crate::support;

use harness::Reader;
use support::scenarios::{self, Target};

fn redis_target(major: u32) -> (Target, Reader) {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]).on_major(major);
    let reader = Reader::redis(&url, &target.destinations());
    (target, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg13_delivers_everything_in_order() {
    let (target, reader) = redis_target(13);
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg13_survives_relay_kill() {
    let (target, reader) = redis_target(13);
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg13_resumes_after_postgres_crash() {
    let (target, reader) = redis_target(13);
    scenarios::resumes_after_postgres_crash(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg17_delivers_everything_in_order() {
    let (target, reader) = redis_target(17);
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg17_survives_relay_kill() {
    let (target, reader) = redis_target(17);
    scenarios::survives_relay_kill(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg17_resumes_after_postgres_crash() {
    let (target, reader) = redis_target(17);
    scenarios::resumes_after_postgres_crash(target, reader).await;
}
