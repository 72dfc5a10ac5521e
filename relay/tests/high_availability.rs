//! Two relays on one slot: PostgreSQL lets one stream at a time, the other stands by, and takes
//! over within seconds when the leader is killed, losing nothing and keeping order.

mod support;

use std::time::{Duration, Instant};

use harness::Reader;
use support::check::check;
use support::scenarios::{self, Target, FAULT};
use support::{http_get, metric, metrics_addr, workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_within_seconds() {
    let pg = support::outbox_database().await;
    let url = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &url]);
    let mut reader = Reader::redis(&url, &target.destinations());
    let window = ["--batch-size", "50", "--max-in-flight", "300"];
    let mut leader = target.relay(&pg, &window);
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut args: Vec<&str> = target.sink_args.iter().map(String::as_str).collect();
    args.extend(["--destination", &destination]);
    args.extend(window);
    let mut standby = support::start_relay(&pg, &args);
    harness::wait_until(
        Duration::from_secs(60),
        "the second relay to stand by",
        || standby.log().contains("standing by to take over"),
    )
    .unwrap();
    let leader_gauge = |relay: &harness::Process| {
        metric(
            &http_get(&metrics_addr(relay), "/metrics").1,
            "outbox_relay_leader",
            &[],
        )
        .unwrap()
    };
    assert_eq!((leader_gauge(&leader), leader_gauge(&standby)), (1.0, 0.0));

    let pg_url = pg.url();
    let writers = tokio::spawn(async move { workload::write(&pg_url, &FAULT).await });
    scenarios::wait_confirmed_batches(&leader, 10);
    assert!(!writers.is_finished(), "the leader dies mid-stream");
    leader.kill9().unwrap();
    let killed = Instant::now();
    harness::wait_until(Duration::from_secs(30), "the standby to take over", || {
        standby.log().contains("streaming the outbox")
    })
    .unwrap();
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?}");
    assert!(takeover < Duration::from_secs(5), "took {takeover:?}");
    assert_eq!(leader_gauge(&standby), 1.0);

    let written = writers.await.unwrap();
    let received = reader
        .collect_until(Duration::from_secs(120), |r| check(&written, r).lost == 0)
        .await;
    let report = check(&written, &received);
    eprintln!("after failover: {report:?}");
    report.assert_lossless();
    support::stop_relay(&mut standby);
}
