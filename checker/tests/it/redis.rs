//! Redis Streams: a run relayed by the real relay verifies, an entry deleted with `XDEL` is
//! reported lost, a reordered stream fails, duplicates alone pass, and `--expect` verifies a run
//! whose rows are gone.

use redis::AsyncCommands;

use crate::common::{self, Route};

async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Appends the run's events `(k, seq)` to `stream` in the given order, as the relay's sink would.
async fn xadd_all(url: &str, stream: &str, run: &str, events: &[(u64, u64)]) {
    let mut redis = connection(url).await;
    for (k, seq) in events {
        let payload = common::payload(run, *k, *seq);
        let _: String = redis
            .xadd(stream, "*", &[("payload", payload.as_str())])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_run_verifies_and_a_deleted_entry_is_reported_lost() {
    let url = harness::Redis::shared().unwrap();
    let pg = common::outbox_database().await;
    let route = Route::new();
    let mut relay = common::start_relay(&pg, &route, &["--sink", "redis", "--redis-url", &url]);
    let run = common::write(&pg, 4, 50);
    let broker = [
        "--broker",
        "redis",
        "--broker-url",
        &url,
        "--destination",
        &route.destination,
    ];

    let ok = common::verify(&pg, &run, &broker, "60s");
    assert_eq!(ok.code, 0, "{ok:?}");
    let totals = ok.totals();
    assert_eq!(
        (totals.expected, totals.received, totals.lost),
        (200, 200, 0)
    );
    assert!(ok.stdout.contains("OK: nothing lost"), "{ok:?}");

    let mut redis = connection(&url).await;
    let entries: redis::streams::StreamRangeReply =
        redis.xrange_all(&route.destination).await.unwrap();
    let _: usize = redis
        .xdel(&route.destination, &[&entries.ids[100].id])
        .await
        .unwrap();
    let lost = common::verify(&pg, &run, &broker, "1s");
    assert_eq!(lost.code, 1, "{lost:?}");
    assert_eq!((lost.totals().lost, lost.totals().received), (1, 199));
    assert!(
        lost.stdout.contains("FAILED: 1 lost, 0 out of order"),
        "{lost:?}"
    );
    common::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorder_fails_duplicates_pass_and_expect_needs_no_rows() {
    let url = harness::Redis::shared().unwrap();
    let pg = common::outbox_database().await;
    let run = common::write(&pg, 2, 3);
    let broker = |stream: &str| {
        [
            "--broker",
            "redis",
            "--broker-url",
            url.as_str(),
            "--destination",
            stream,
        ]
        .map(str::to_owned)
    };

    // Aggregate 0's events 1 and 2 swapped, and another stream's event among them.
    let reordered = harness::unique("reordered");
    xadd_all(
        &url,
        &reordered,
        &run,
        &[(0, 0), (1, 0), (0, 2), (1, 1), (0, 1), (1, 2)],
    )
    .await;
    xadd_all(&url, &reordered, "other-run", &[(0, 0)]).await;
    let args = broker(&reordered);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = common::verify(&pg, &run, &args, "1s");
    assert_eq!(outcome.code, 1, "{outcome:?}");
    let totals = outcome.totals();
    assert_eq!((totals.lost, totals.out_of_order), (0, 1));
    assert!(outcome.stdout.contains("1 other message(s)"), "{outcome:?}");

    // Everything in order, one event delivered again after newer ones: at-least-once allows it.
    let duplicated = harness::unique("duplicated");
    xadd_all(
        &url,
        &duplicated,
        &run,
        &[(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (0, 2), (0, 1)],
    )
    .await;
    let args = broker(&duplicated);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = common::verify(&pg, &run, &args, "1s");
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(outcome.totals().duplicated, 1);
    assert_eq!(outcome.totals().out_of_order, 0);

    // The rows deleted: without --expect the checker says what to do, with it the run verifies.
    pg.client()
        .await
        .unwrap()
        .execute("DELETE FROM outbox", &[])
        .await
        .unwrap();
    let outcome = common::verify(&pg, &run, &args, "1s");
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("--expect"), "{outcome:?}");
    let mut expect = vec![
        "verify",
        "--run-id",
        &run,
        "--expect",
        "2x3",
        "--timeout",
        "1s",
    ];
    expect.extend(&args);
    let outcome = common::relay_check(&expect);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(outcome.totals().expected, 6);
    // A shape that the stream does not match: aggregate 2 never arrived.
    expect[4] = "3x3";
    let outcome = common::relay_check(&expect);
    assert_eq!((outcome.code, outcome.totals().lost), (1, 3), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_with_a_clear_message() {
    let outcome = common::relay_check(&[
        "verify",
        "--run-id",
        "r",
        "--expect",
        "2x3",
        "--broker",
        "nats",
        "--broker-url",
        "x",
        "--destination",
        "d",
    ]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(
        outcome.stderr.contains("expected kafka, rabbitmq or redis"),
        "{outcome:?}"
    );
    let outcome = common::relay_check(&[
        "verify",
        "--run-id",
        "r",
        "--expect",
        "2by3",
        "--broker",
        "redis",
        "--broker-url",
        "redis://127.0.0.1:6379",
        "--destination",
        "d",
    ]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("expected K x N"), "{outcome:?}");
    let outcome = common::relay_check(&[
        "write",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--aggregates",
        "1",
        "--events",
        "1",
        "--table",
        "public.out;box",
    ]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("invalid table name"), "{outcome:?}");
}
