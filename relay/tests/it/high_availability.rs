//! Two relays on one slot: PostgreSQL lets one stream at a time, the other stands by, and takes
//! over within seconds when the leader is killed, losing nothing and keeping order.

use crate::support;

use harness::Reader;
use support::scenarios::{self, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_within_seconds() {
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let reader = Reader::redis(&url, &target.destinations());
    scenarios::standby_takes_over_from_a_killed_leader(target, reader, &[]).await;
}
