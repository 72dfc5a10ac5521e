//! RabbitMQ: with a queue bound before the run is written, a relayed run verifies, and verifies
//! again (reading puts the messages back); a run missing one message fails.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::common::{self, Route};

/// Publishes the run's events `(k, seq)` to `exchange` with `routing_key`, as the relay's sink would.
async fn publish_all(
    url: &str,
    exchange: &str,
    routing_key: &str,
    run: &str,
    events: &[(u64, u64)],
) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for (k, seq) in events {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                common::payload(run, *k, *seq).as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
    }
    let _ = connection.close(200, "published".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_run_verifies_repeatably_and_a_missing_message_fails() {
    let url = harness::RabbitMq::shared().unwrap();
    let pg = common::outbox_database().await;
    let route = Route::new();
    let exchange = harness::unique("outbox");
    let queue = harness::unique("relay-check");
    let bind = common::relay_check(&[
        "bind",
        "--broker-url",
        &url,
        "--exchange",
        &exchange,
        "--destination",
        &route.destination,
        "--queue",
        &queue,
    ]);
    assert_eq!(
        (bind.code, bind.stdout.trim()),
        (0, queue.as_str()),
        "{bind:?}"
    );
    let mut relay = common::start_relay(
        &pg,
        &route,
        &[
            "--sink",
            "rabbitmq",
            "--rabbitmq-url",
            &url,
            "--rabbitmq-exchange",
            &exchange,
        ],
    );
    let run = common::write(&pg, 3, 40);
    let broker = [
        "--broker",
        "rabbitmq",
        "--broker-url",
        &url,
        "--queue",
        &queue,
        "--destination",
        &route.destination,
    ];
    for attempt in 0..2 {
        let ok = common::verify(&pg, &run, &broker, "60s");
        assert_eq!(ok.code, 0, "attempt {attempt}: {ok:?}");
        let totals = ok.totals();
        assert_eq!(
            (totals.expected, totals.received),
            (120, 120),
            "attempt {attempt}"
        );
    }
    common::stop_relay(&mut relay);

    // A second run in the database of which the broker got all but aggregate 1's last event.
    let run = common::write(&pg, 2, 3);
    let gap_queue = harness::unique("relay-check");
    let gap_key = harness::unique("gap");
    let bind = common::relay_check(&[
        "bind",
        "--broker-url",
        &url,
        "--exchange",
        &exchange,
        "--destination",
        &gap_key,
        "--queue",
        &gap_queue,
    ]);
    assert_eq!(bind.code, 0, "{bind:?}");
    publish_all(
        &url,
        &exchange,
        &gap_key,
        &run,
        &[(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)],
    )
    .await;
    let broker = [
        "--broker",
        "rabbitmq",
        "--broker-url",
        &url,
        "--queue",
        &gap_queue,
        "--destination",
        &gap_key,
    ];
    let lost = common::verify(&pg, &run, &broker, "1s");
    assert_eq!((lost.code, lost.totals().lost), (1, 1), "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_a_queue_that_was_never_bound_says_to_bind_it() {
    let url = harness::RabbitMq::shared().unwrap();
    let outcome = common::relay_check(&[
        "verify",
        "--run-id",
        "r",
        "--expect",
        "1x1",
        "--broker",
        "rabbitmq",
        "--broker-url",
        &url,
        "--destination",
        &harness::unique("unbound"),
    ]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("relay-check bind"), "{outcome:?}");
}
