//! The service binary killed with SIGKILL between a database commit and the broker acknowledgement,
//! then restarted: every event is invoiced exactly once. Run against each broker.
//!
//! To land the kill in that window every time, the test makes PostgreSQL wait for a synchronous
//! standby that does not exist: the service's next commit is then written to the WAL but its reply
//! never comes, so the service cannot have acknowledged the message. The test kills the service
//! there, ends the backend's wait (which leaves the transaction committed, as a crash right after
//! the commit would), and restarts the service, which must receive that event again and change
//! nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use uuid::Uuid;

use crate::common::{eventually, Setup, WireEvent};

const EVENTS: usize = 60;

async fn killed_between_commit_and_ack_every_event_is_invoiced_once(mut setup: Setup) {
    let mut service = setup.start_binary().await;
    let events: Vec<WireEvent> = (0..EVENTS)
        .map(|_| WireEvent::order_confirmed("2"))
        .collect();
    let (before, after) = events.split_at(5);
    for event in before {
        setup.publish(event).await;
    }
    let db = setup.pg.client().await.unwrap();
    eventually("the service to invoice the first events", || async {
        (setup.count("processed_events").await == before.len() as i64).then_some(())
    })
    .await;

    // From now on a commit waits for a standby that never comes. ALTER SYSTEM refuses to run in a
    // transaction block, so one statement per call.
    db.batch_execute("alter system set synchronous_standby_names = 'nonexistent_standby'")
        .await
        .unwrap();
    db.batch_execute("select pg_reload_conf()").await.unwrap();
    for event in after {
        setup.publish(event).await;
    }
    let stuck_backend: i32 = eventually("a commit waiting for the standby", || async {
        db.query_opt(
            "select pid from pg_stat_activity where wait_event = 'SyncRep'",
            &[],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
    })
    .await;
    service.kill9().unwrap();
    db.execute("select pg_terminate_backend($1)", &[&stuck_backend])
        .await
        .unwrap();
    db.batch_execute("alter system reset synchronous_standby_names")
        .await
        .unwrap();
    db.batch_execute("select pg_reload_conf()").await.unwrap();
    // Events are handled one at a time, so the stuck transaction is the one that began last.
    let stuck_event: Uuid = db
        .query_one(
            "select event_id from processed_events order by processed_at desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        setup.count("processed_events").await,
        before.len() as i64 + 1,
        "exactly the stuck transaction committed after the first events"
    );

    let mut service = setup.start_binary().await;
    eventually("every event to be invoiced", || async {
        (setup.count("invoices").await == EVENTS as i64).then_some(())
    })
    .await;
    eventually("the redelivered event to be skipped", || async {
        service
            .log()
            .lines()
            .any(|line| {
                line.contains(&stuck_event.to_string()) && line.contains("redelivery ignored")
            })
            .then_some(())
    })
    .await;
    assert_eq!(setup.count("processed_events").await, EVENTS as i64);
    let invoiced: BTreeSet<Uuid> = db
        .query("select order_id from invoices", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let published: BTreeSet<Uuid> = events.iter().map(|e| e.aggregate_id).collect();
    assert_eq!(invoiced, published);
    // Gap-free numbering: no repeated or rolled-back transaction took a number.
    let highest: String = db
        .query_one("select max(number) from invoices", &[])
        .await
        .unwrap()
        .get(0);
    assert!(highest.ends_with(&format!("-{EVENTS:06}")), "{highest}");

    service.terminate().unwrap();
    let status = service.wait_timeout(Duration::from_secs(15)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_killed_between_commit_and_ack_every_event_is_invoiced_once() {
    killed_between_commit_and_ack_every_event_is_invoiced_once(Setup::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_killed_between_commit_and_ack_every_event_is_invoiced_once() {
    killed_between_commit_and_ack_every_event_is_invoiced_once(Setup::rabbitmq()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_between_commit_and_ack_every_event_is_invoiced_once() {
    killed_between_commit_and_ack_every_event_is_invoiced_once(Setup::redis()).await;
}
