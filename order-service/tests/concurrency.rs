//! Optimistic concurrency: concurrent confirmations of one order produce exactly one event, and a save
//! based on a stale version writes nothing.

mod support;

use chrono::{SubsecRound, Utc};
use futures::future::join_all;
use order_service::domain::Transition;
use order_service::store::orders;
use reqwest::StatusCode;
use serde_json::Value;
use support::App;
use uuid::Uuid;

#[tokio::test]
async fn concurrent_confirms_write_exactly_one_event() {
    let app = App::start().await;
    for _ in 0..5 {
        let id = app.create_order().await["id"].as_str().unwrap().to_owned();
        let path = format!("/orders/{id}/confirm");
        let responses = join_all((0..12).map(|_| app.post(&path))).await;
        let mut bodies = Vec::new();
        for response in responses {
            assert_eq!(response.status(), StatusCode::OK);
            bodies.push(response.json::<Value>().await.unwrap());
        }
        assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
        assert_eq!(bodies[0]["status"], "CONFIRMED");
        assert_eq!(bodies[0]["version"], 2);
        let confirmed: Vec<_> = app
            .events_of(&id)
            .await
            .into_iter()
            .filter(|e| e.event_type == "OrderConfirmed")
            .collect();
        assert_eq!(confirmed.len(), 1, "order {id}");
    }
}

#[tokio::test]
async fn concurrent_confirm_and_cancel_leave_one_of_them() {
    let app = App::start().await;
    for _ in 0..5 {
        let id = app.create_order().await["id"].as_str().unwrap().to_owned();
        let confirm = format!("/orders/{id}/confirm");
        let cancel = format!("/orders/{id}/cancel");
        let responses =
            join_all((0..8).map(|i| app.post(if i % 2 == 0 { &confirm } else { &cancel }))).await;
        let ok = responses
            .iter()
            .filter(|r| r.status() == StatusCode::OK)
            .count();
        let conflicts = responses
            .iter()
            .filter(|r| r.status() == StatusCode::CONFLICT)
            .count();
        assert_eq!(ok + conflicts, 8);
        assert_eq!(
            (ok, conflicts),
            (4, 4),
            "one kind wins, the other conflicts"
        );
        let events = app.events_of(&id).await;
        assert_eq!(events.len(), 2, "{events:?}");
    }
}

#[tokio::test]
async fn a_save_from_a_stale_version_writes_nothing() {
    let app = App::start().await;
    let id: Uuid = app.create_order().await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut first = orders::load(&app.db, id).await.unwrap().unwrap();
    let mut second = orders::load(&app.db, id).await.unwrap().unwrap();

    assert_eq!(
        first.confirm(Utc::now().trunc_subsecs(6)).unwrap(),
        Transition::Changed
    );
    assert!(orders::update(&app.db, &first, 1).await.unwrap());
    assert_eq!(second.cancel(Utc::now()).unwrap(), Transition::Changed);
    assert!(!orders::update(&app.db, &second, 1).await.unwrap());

    let stored = orders::load(&app.db, id).await.unwrap().unwrap();
    assert_eq!(stored, first);
    assert_eq!(stored.version(), 2);
}
