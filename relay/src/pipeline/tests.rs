//! The acknowledgement rule and the window, against a scripted source and a hand-confirmed sink:
//! a position is acknowledged only once the broker confirmed every event before it, whatever order
//! confirmations arrive in and however a session ends.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{run, PipelineError, PipelineSettings, Routing};
use crate::config::SinkKind;
use crate::dead_letters::DeadLetters;
use crate::dead_letters::Verdict;
use crate::encode::Native;
use crate::lsn::Lsn;
use crate::metrics::Metrics;
use crate::pg::catalog::CatalogError;
use crate::router::Router;
use crate::sink::SinkError;
use crate::source::{Change, SourceError};
use crate::test_doubles::{event, hand_sink, scripted_source, settle, Broker, Script};

/// How a session ended, and how far it said it got.
struct Outcome {
    result: Result<(), PipelineError>,
    acked: Lsn,
}

fn settings(batch_size: usize, max_in_flight: usize) -> PipelineSettings {
    PipelineSettings {
        batch_size,
        max_in_flight,
        max_in_flight_bytes: usize::MAX,
        // Only the reports the rule itself makes: confirmations, commits and requested replies.
        status_interval: Duration::from_secs(3600),
    }
}

/// Runs one pipeline session while `drive` feeds the source and settles the sink's batches; the
/// driver must end the session (shutdown or a failed batch).
async fn session<F, Fut>(
    settings: PipelineSettings,
    dead_letters: &DeadLetters,
    drive: F,
) -> Outcome
where
    F: FnOnce(Script, Broker, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let (mut source, script) = scripted_source();
    let (mut sink, broker) = hand_sink();
    let router = Router::new("outbox.{aggregatetype}").expect("a valid template");
    let encoder = Native::new(SinkKind::Kafka);
    let routing = Routing {
        router: &router,
        encoder: &encoder,
        dead_letter_destination: "dead-letters",
        dead_letters,
        cleaner: None,
    };
    let metrics = Metrics::new("hand");
    let shutdown = CancellationToken::new();
    let mut acked = Lsn::ZERO;
    let pipeline = run(
        &mut source,
        &mut sink,
        &routing,
        &settings,
        &mut acked,
        &metrics,
        &shutdown,
    );
    let both = async { tokio::join!(pipeline, drive(script, broker, shutdown.clone())) };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("the session ended");
    Outcome { result, acked }
}

fn rejected(id: &str) -> SinkError {
    SinkError::Rejected {
        sink: "hand",
        event_id: id.to_owned(),
        destination: "outbox.order".to_owned(),
        reason: "the test refused it".to_owned(),
    }
}

#[tokio::test]
async fn a_position_waits_for_the_confirmation_of_the_events_before_it() {
    let outcome = session(
        settings(100, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            script.event(event("e1", "a", 100));
            script.event(event("e2", "a", 100));
            script.commit(100);
            broker.until_batches(1).await;
            settle().await;
            assert_eq!(
                script.acked(),
                Lsn::ZERO,
                "acknowledged before the broker confirmed"
            );
            broker.confirm(0);
            script.until_acked(100).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
    assert_eq!(outcome.acked, Lsn(100));
}

#[tokio::test]
async fn confirmations_out_of_order_acknowledge_nothing_past_an_unconfirmed_batch() {
    let outcome = session(
        settings(2, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            for (n, lsn) in [(1, 100), (3, 200), (5, 300)] {
                script.event(event(&format!("e{n}"), "a", lsn));
                script.event(event(&format!("e{}", n + 1), "a", lsn));
                script.commit(lsn);
            }
            broker.until_batches(3).await;
            broker.confirm(2);
            broker.confirm(1);
            settle().await;
            assert_eq!(
                script.acked(),
                Lsn::ZERO,
                "later batches' positions acknowledged while the first is unconfirmed"
            );
            broker.confirm(0);
            script.until_acked(300).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
    assert_eq!(outcome.acked, Lsn(300));
}

#[tokio::test]
async fn a_failed_batch_ends_the_session_at_the_last_position_before_it() {
    let outcome = session(
        settings(1, 1000),
        &DeadLetters::default(),
        |script, broker, _stop| async move {
            for (id, lsn) in [("e1", 100), ("e2", 200), ("e3", 300)] {
                script.event(event(id, "a", lsn));
                script.commit(lsn);
            }
            broker.until_batches(3).await;
            broker.confirm(0);
            script.until_acked(100).await;
            broker.confirm(2);
            broker.fail(1, rejected("e2"));
        },
    )
    .await;
    assert!(
        matches!(
            outcome.result,
            Err(PipelineError::Sink(SinkError::Rejected { .. }))
        ),
        "the broker's refusal ends the session"
    );
    assert_eq!(
        outcome.acked,
        Lsn(100),
        "a confirmed later batch does not move the position past the refused one"
    );
}

#[tokio::test]
async fn acknowledged_positions_never_pass_an_unconfirmed_event_or_go_back() {
    let outcome = session(
        settings(3, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            for tx in 1..=12u64 {
                for n in 0..tx % 4 + 1 {
                    script.event(event(&format!("t{tx}e{n}"), "a", tx * 100));
                }
                script.commit(tx * 100);
            }
            settle().await;
            // Confirm from the newest batch back to the oldest: only the oldest frees anything.
            for n in (0..broker.batches()).rev() {
                broker.confirm(n);
                settle().await;
                if n > 0 {
                    assert_eq!(script.acked(), Lsn::ZERO, "acknowledged past batch 0");
                }
            }
            script.until_acked(1200).await;
            let acknowledged = script.acknowledged();
            assert!(
                acknowledged.windows(2).all(|w| w[0] <= w[1]),
                "positions went back: {acknowledged:?}"
            );
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
    assert_eq!(outcome.acked, Lsn(1200));
}

#[tokio::test]
async fn a_transaction_is_not_sent_in_pieces_while_it_is_still_arriving() {
    let outcome = session(
        settings(100, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            script.event(event("e1", "a", 100));
            script.event(event("e2", "a", 100));
            settle().await;
            assert_eq!(broker.batches(), 0, "sent before the transaction's end");
            script.commit(100);
            broker.until_batches(1).await;
            assert_eq!(broker.ids(), ["e1", "e2"]);
            broker.confirm(0);
            script.until_acked(100).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
}

#[tokio::test]
async fn reading_pauses_while_the_window_is_full() {
    let outcome = session(
        settings(2, 4),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            for n in 1..=10u64 {
                script.event(event(&format!("e{n}"), "a", n * 100));
                script.commit(n * 100);
            }
            broker.until_batches(2).await;
            settle().await;
            assert_eq!(
                broker.ids().len(),
                4,
                "more than max_in_flight events handed to the sink"
            );
            let mut confirmed = 0;
            while confirmed < 5 {
                broker.until_batches(confirmed + 1).await;
                broker.confirm(confirmed);
                confirmed += 1;
                settle().await;
                assert!(
                    broker.ids().len() - 2 * confirmed <= 4,
                    "more than max_in_flight events unconfirmed"
                );
            }
            script.until_acked(1000).await;
            let expected: Vec<String> = (1..=10).map(|n| format!("e{n}")).collect();
            assert_eq!(
                broker.ids(),
                expected,
                "published out of the source's order"
            );
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
}

#[tokio::test]
async fn reading_pauses_while_the_window_holds_its_bytes() {
    let one = event("e1", "a", 100).size();
    let settings = PipelineSettings {
        max_in_flight_bytes: 4 * one,
        ..settings(2, 1000)
    };
    let outcome = session(
        settings,
        &DeadLetters::default(),
        |script, broker, stop| async move {
            for n in 1..=9u64 {
                script.event(event(&format!("e{n}"), "a", n * 100));
                script.commit(n * 100);
            }
            broker.until_batches(2).await;
            settle().await;
            assert_eq!(
                broker.ids().len(),
                4,
                "more than max_in_flight_bytes handed to the sink"
            );
            for batch in 0..4 {
                broker.until_batches(batch + 1).await;
                broker.confirm(batch);
                settle().await;
                assert!(
                    broker.ids().len() - 2 * (batch + 1) <= 4,
                    "more than max_in_flight_bytes unconfirmed"
                );
            }
            broker.until_batches(5).await;
            broker.confirm(4);
            script.until_acked(900).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
}

#[tokio::test]
async fn shutdown_drains_the_window_before_returning() {
    let outcome = session(
        settings(100, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            script.event(event("e1", "a", 100));
            script.commit(100);
            broker.until_batches(1).await;
            stop.cancel();
            settle().await;
            assert_eq!(script.acked(), Lsn::ZERO);
            // Changes after the stop signal are left for the next relay.
            script.event(event("e2", "a", 200));
            script.commit(200);
            broker.confirm(0);
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
    assert_eq!(outcome.acked, Lsn(100));
}

#[tokio::test]
async fn a_keepalive_position_waits_for_the_events_before_it() {
    let outcome = session(
        settings(100, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            script.event(event("e1", "a", 100));
            script.commit(100);
            script.send(Change::Keepalive {
                position: Some(Lsn(150)),
                reply_requested: true,
            });
            broker.until_batches(1).await;
            settle().await;
            assert!(
                script.acknowledged().iter().all(|&lsn| lsn == Lsn::ZERO),
                "the requested reply must repeat the old position, not the keepalive's: {:?}",
                script.acknowledged()
            );
            broker.confirm(0);
            script.until_acked(150).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
    assert_eq!(outcome.acked, Lsn(150));
}

#[tokio::test]
async fn events_refused_for_good_earlier_go_to_the_dead_letter_destination() {
    let dead = DeadLetters::default();
    dead.refused("e2", "too large");
    let outcome = session(
        settings(100, 1000),
        &dead,
        |script, broker, stop| async move {
            for id in ["e1", "e2", "e3"] {
                script.event(event(id, "a", 100));
            }
            script.commit(100);
            broker.until_batches(1).await;
            let routed: Vec<(String, String)> = ["e1", "e2", "e3"]
                .iter()
                .zip(["outbox.order", "dead-letters", "outbox.order"])
                .map(|(id, to)| (id.to_string(), to.to_string()))
                .collect();
            assert_eq!(broker.batch(0), routed);
            broker.confirm(0);
            script.until_acked(100).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
}

/// Emitted messages keep their place among the transaction's rows; one the source rejected goes to
/// the dead letters, and the transaction is acknowledged once all of them are confirmed.
#[tokio::test]
async fn messages_go_in_order_with_rows_and_rejected_ones_to_the_dead_letters() {
    let outcome = session(
        settings(100, 1000),
        &DeadLetters::default(),
        |script, broker, stop| async move {
            script.event(event("row-1", "a", 100));
            script.send(Change::Message {
                event: event("message-1", "a", 100),
                rejected: None,
            });
            script.send(Change::Message {
                event: event("message-2", "a", 100),
                rejected: Some("not transactional".into()),
            });
            script.event(event("row-2", "a", 100));
            script.commit(100);
            broker.until_batches(1).await;
            let routed: Vec<(String, String)> = [
                ("row-1", "outbox.order"),
                ("message-1", "outbox.order"),
                ("message-2", "dead-letters"),
                ("row-2", "outbox.order"),
            ]
            .iter()
            .map(|(id, to)| (id.to_string(), to.to_string()))
            .collect();
            assert_eq!(broker.batch(0), routed);
            broker.confirm(0);
            script.until_acked(100).await;
            stop.cancel();
        },
    )
    .await;
    outcome.result.expect("a clean shutdown");
}

fn unacceptable(id: &str) -> SinkError {
    SinkError::unacceptable(
        "hand",
        id.to_owned(),
        "outbox.order".to_owned(),
        "the test refuses it for good".to_owned(),
    )
}

#[tokio::test]
async fn refusals_of_every_batch_in_flight_end_the_session_together() {
    let outcome = session(
        settings(1, 1000),
        &DeadLetters::default(),
        |script, broker, _stop| async move {
            for (id, lsn) in [("e1", 100), ("e2", 200), ("e3", 300)] {
                script.event(event(id, "a", lsn));
                script.commit(lsn);
            }
            broker.until_batches(3).await;
            broker.fail(0, unacceptable("e1"));
            settle().await;
            broker.confirm(1);
            broker.fail(2, unacceptable("e3"));
        },
    )
    .await;
    match outcome.result {
        Err(PipelineError::Sink(SinkError::Unacceptable { refusals, .. })) => {
            let ids: Vec<&str> = refusals.iter().map(|r| r.event_id.as_str()).collect();
            assert_eq!(ids, ["e1", "e3"]);
        }
        other => panic!("expected both refusals, got {other:?}"),
    }
    assert_eq!(outcome.acked, Lsn::ZERO, "nothing past the first refusal");
}

#[tokio::test]
async fn a_dead_letter_confirmed_once_is_not_sent_again() {
    let dead = DeadLetters::default();
    dead.refused("e2", "too large");
    for session_number in 0..2 {
        let outcome = session(
            settings(100, 1000),
            &dead,
            |script, broker, stop| async move {
                for id in ["e1", "e2", "e3"] {
                    script.event(event(id, "a", 100));
                }
                script.commit(100);
                broker.until_batches(1).await;
                let expected: &[&str] = if session_number == 0 {
                    &["e1", "e2", "e3"]
                } else {
                    &["e1", "e3"]
                };
                assert_eq!(broker.ids(), expected);
                broker.confirm(0);
                script.until_acked(100).await;
                stop.cancel();
            },
        )
        .await;
        outcome.result.expect("a clean shutdown");
        assert_eq!(dead.verdict("e2"), Verdict::Skip);
    }
}

#[tokio::test]
async fn a_source_that_cannot_go_on_first_delivers_and_acknowledges_what_it_yielded() {
    let outcome = session(
        settings(1, 1000),
        &DeadLetters::default(),
        |script, broker, _| async move {
            for (id, lsn) in [("e1", 100), ("e2", 200)] {
                script.event(event(id, "a", lsn));
                script.commit(lsn);
            }
            script.fail(SourceError::Catalog(CatalogError::Misconfigured {
                problem: "the outbox was swapped".to_owned(),
                fix: "re-publish".to_owned(),
            }));
            broker.until_batches(2).await;
            settle().await;
            assert_eq!(
                script.acked(),
                Lsn::ZERO,
                "acknowledged before the broker confirmed"
            );
            broker.confirm(1);
            broker.confirm(0);
            script.until_acked(200).await;
        },
    )
    .await;
    assert!(
        matches!(
            outcome.result,
            Err(PipelineError::Source(SourceError::Catalog(_)))
        ),
        "the fatal error ends the session once the window is delivered"
    );
    assert_eq!(outcome.acked, Lsn(200));
}

#[tokio::test]
async fn a_passing_source_failure_ends_the_session_at_once() {
    let outcome = session(
        settings(1, 1000),
        &DeadLetters::default(),
        |script, broker, _| async move {
            script.event(event("e1", "a", 100));
            script.commit(100);
            broker.until_batches(1).await;
            script.fail(SourceError::Closed("replication"));
        },
    )
    .await;
    assert!(matches!(
        outcome.result,
        Err(PipelineError::Source(SourceError::Closed(_)))
    ));
    assert_eq!(outcome.acked, Lsn::ZERO, "nothing was confirmed");
}
