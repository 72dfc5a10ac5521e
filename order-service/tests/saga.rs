//! The invoicing saga against a real PostgreSQL: started in the transaction of `OrderConfirmed`,
//! replies and deadlines move it and the order with their commands and compensations in one
//! transaction, duplicates and late replies are recorded and change nothing, concurrent inputs are
//! serialized by optimistic locking, and `GET /orders/{id}` shows the saga and its history.

mod support;

use chrono::{Duration, Utc};
use order_service::saga::{Input, Outcome};
use order_service::service::{OrderService, ServiceError};
use reqwest::StatusCode;
use serde_json::Value;
use support::App;
use uuid::Uuid;

/// A confirmed order's id and the confirm response.
async fn confirmed(app: &App) -> (Uuid, Value) {
    let id = app.create_order().await["id"].as_str().unwrap().to_owned();
    let response = app.post(&format!("/orders/{id}/confirm")).await;
    assert_eq!(response.status(), StatusCode::OK);
    (id.parse().unwrap(), response.json().await.unwrap())
}

async fn fetch(app: &App, id: Uuid) -> Value {
    let response = app.get(&format!("/orders/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn event_types(app: &App, id: Uuid) -> Vec<String> {
    app.events_of(&id.to_string())
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// `(input, outcome, to)` of each history entry.
fn history(order: &Value) -> Vec<(String, String, String)> {
    order["saga"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["input"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entries(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

async fn reply(service: &OrderService, id: Uuid, input: Input) -> Outcome {
    service
        .take(id, input, Some(Uuid::new_v4()))
        .await
        .unwrap()
        .outcome
}

#[tokio::test]
async fn confirming_starts_one_saga_with_the_confirm_requests_correlation_id() {
    let app = App::start().await;
    let id = app.create_order().await["id"].as_str().unwrap().to_owned();
    let confirm = || {
        app.http
            .post(app.url(&format!("/orders/{id}/confirm")))
            .header("x-correlation-id", "saga-test-1")
            .send()
    };
    let first: Value = confirm().await.unwrap().json().await.unwrap();
    let saga = &first["saga"];
    assert_eq!(saga["step"], "INVOICING");
    assert_eq!(saga["status"], "RUNNING");
    assert_eq!(saga["version"], 1);
    assert!(saga["deadline"].is_string());
    assert_eq!(
        history(&first),
        entries(&[("Started", "applied", "INVOICING")])
    );

    let again: Value = confirm().await.unwrap().json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(fetch(&app, id.parse().unwrap()).await, first);
    assert_eq!(app.count("saga_instances").await, 1);
    let stored: String = app
        .db
        .query_one("SELECT correlation_id FROM saga_instances", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "saga-test-1");
    let events = app.events_of(&id).await;
    assert_eq!(events[1].event_type, "OrderConfirmed");
    assert_eq!(events[1].header("correlation_id"), Some("saga-test-1"));
}

#[tokio::test]
async fn an_issued_invoice_makes_the_order_invoiced_and_its_duplicate_is_recorded_only() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let (id, _) = confirmed(&app).await;
    assert_eq!(
        reply(&service, id, Input::InvoiceIssued).await,
        Outcome::Applied
    );
    assert_eq!(
        reply(&service, id, Input::InvoiceIssued).await,
        Outcome::Duplicate
    );

    let order = fetch(&app, id).await;
    assert_eq!(order["status"], "INVOICED");
    assert_eq!(order["saga"]["status"], "COMPLETED");
    assert_eq!(order["saga"]["version"], 3);
    assert!(order["saga"].get("deadline").is_none());
    assert_eq!(
        history(&order),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("InvoiceIssued", "applied", "INVOICED"),
            ("InvoiceIssued", "duplicate", "INVOICED"),
        ])
    );
    assert!(order["saga"]["history"][1]["eventId"].is_string());
    assert_eq!(
        event_types(&app, id).await,
        ["OrderCreated", "OrderConfirmed"]
    );
}

#[tokio::test]
async fn a_rejection_cancels_the_order_with_the_sagas_correlation_id() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let (id, _) = confirmed(&app).await;
    assert_eq!(
        reply(&service, id, Input::InvoiceRejected).await,
        Outcome::Applied
    );
    assert_eq!(
        reply(&service, id, Input::InvoiceRejected).await,
        Outcome::Late
    );

    let order = fetch(&app, id).await;
    assert_eq!(order["status"], "CANCELLED");
    assert!(order["confirmedAt"].is_string() && order["cancelledAt"].is_string());
    assert_eq!(order["saga"]["status"], "COMPENSATED");
    let events = app.events_of(&id.to_string()).await;
    assert_eq!(events.len(), 3);
    let cancelled =
        contracts::decode_order_cancelled(events[2].header("event_version"), &events[2].payload)
            .unwrap();
    assert_eq!(cancelled.reason, "invoice-rejected");
    assert_eq!(
        events[2].header("correlation_id"),
        events[1].header("correlation_id")
    );
}

#[tokio::test]
async fn cancelling_an_invoiced_order_voids_its_invoice_before_cancelling_it() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let (id, _) = confirmed(&app).await;
    reply(&service, id, Input::InvoiceIssued).await;

    for _ in 0..2 {
        let response = app.post(&format!("/orders/{id}/cancel")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["status"], "INVOICED");
        assert_eq!(order["saga"]["step"], "VOIDING");
        assert_eq!(order["saga"]["status"], "COMPENSATING");
    }
    assert_eq!(
        event_types(&app, id).await,
        [
            "OrderCreated",
            "OrderConfirmed",
            "OrderCancellationRequested"
        ]
    );
    assert_eq!(
        reply(&service, id, Input::InvoiceVoided).await,
        Outcome::Applied
    );
    assert_eq!(
        reply(&service, id, Input::InvoiceVoided).await,
        Outcome::Duplicate
    );

    let response = app.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(
        history(&order),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("InvoiceIssued", "applied", "INVOICED"),
            ("CancelRequested", "applied", "VOIDING"),
            ("CancelRequested", "duplicate", "VOIDING"),
            ("InvoiceVoided", "applied", "CANCELLED"),
            ("InvoiceVoided", "duplicate", "CANCELLED"),
            ("CancelRequested", "duplicate", "CANCELLED"),
        ])
    );
    assert_eq!(
        event_types(&app, id).await,
        [
            "OrderCreated",
            "OrderConfirmed",
            "OrderCancellationRequested",
            "OrderCancelled"
        ]
    );
}

#[tokio::test]
async fn cancelling_while_the_invoice_is_decided_is_a_409_problem_recorded_in_the_history() {
    let app = App::start().await;
    let (id, _) = confirmed(&app).await;
    let response = app.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://outbox-relay.example/problems/invalid-state"
    );
    let order = fetch(&app, id).await;
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(
        history(&order)[1],
        entries(&[("CancelRequested", "refused", "INVOICING")])[0]
    );
}

#[tokio::test]
async fn a_deadline_cancels_the_order_and_a_late_invoice_is_voided_not_applied() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone()).with_saga_timeout(Duration::seconds(30));
    let (id, _) = confirmed(&app).await;
    let (other, _) = confirmed(&app).await;
    reply(&service, other, Input::InvoiceIssued).await;

    assert_eq!(service.sweep_overdue(Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + Duration::seconds(31);
    assert_eq!(service.sweep_overdue(later).await.unwrap(), 1);
    assert_eq!(service.sweep_overdue(later).await.unwrap(), 0);
    let order = fetch(&app, id).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(fetch(&app, other).await["status"], "INVOICED");

    assert_eq!(
        reply(&service, id, Input::InvoiceIssued).await,
        Outcome::Late
    );
    let order = fetch(&app, id).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["saga"]["step"], "VOIDING_LATE_INVOICE");
    assert_eq!(
        reply(&service, id, Input::InvoiceVoided).await,
        Outcome::Applied
    );
    let order = fetch(&app, id).await;
    assert_eq!(
        history(&order),
        entries(&[
            ("Started", "applied", "INVOICING"),
            ("DeadlinePassed", "applied", "CANCELLED"),
            ("InvoiceIssued", "late", "VOIDING_LATE_INVOICE"),
            ("InvoiceVoided", "applied", "CANCELLED"),
        ])
    );
    let events = app.events_of(&id.to_string()).await;
    let reasons: Vec<(String, Value)> = events[2..]
        .iter()
        .map(|e| {
            let payload: Value = serde_json::from_str(&e.payload).unwrap();
            (e.event_type.clone(), payload["reason"].clone())
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("OrderCancelled".to_owned(), Value::from("invoice-timeout")),
            (
                "OrderCancellationRequested".to_owned(),
                Value::from("late-invoice")
            ),
        ]
    );
}

/// Replies that race on one saga: each is recorded exactly once, only the first applies, and the
/// order is invoiced or cancelled, never both.
#[tokio::test]
async fn concurrent_replies_are_serialized_by_the_sagas_version() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let (id, _) = confirmed(&app).await;
    let inputs = [
        Input::InvoiceIssued,
        Input::InvoiceRejected,
        Input::InvoiceIssued,
        Input::InvoiceRejected,
    ];
    let results = futures::future::join_all(
        inputs
            .iter()
            .map(|input| service.take(id, *input, Some(Uuid::new_v4()))),
    )
    .await;
    let mut taken = Vec::new();
    for (input, result) in inputs.iter().zip(results) {
        match result {
            Ok(t) => taken.push((*input, t.outcome)),
            Err(ServiceError::Contended(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    let applied: Vec<Input> = taken
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Applied)
        .map(|(input, _)| *input)
        .collect();
    assert_eq!(applied.len(), 1, "{taken:?}");
    let order = fetch(&app, id).await;
    assert_eq!(order["saga"]["version"], 1 + taken.len());
    assert_eq!(history(&order).len(), 1 + taken.len());
    let expected_status = match applied[0] {
        Input::InvoiceIssued => "INVOICED",
        _ => "CANCELLED",
    };
    assert_eq!(order["status"], expected_status);
    let cancellations = event_types(&app, id)
        .await
        .iter()
        .filter(|t| *t == "OrderCancelled")
        .count();
    assert_eq!(cancellations, usize::from(expected_status == "CANCELLED"));
}

#[tokio::test]
async fn a_reply_for_an_order_without_a_saga_is_an_error() {
    let app = App::start().await;
    let service = OrderService::new(app.pool.clone());
    let id: Uuid = app.create_order().await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(matches!(
        service.take(id, Input::InvoiceIssued, None).await,
        Err(ServiceError::NoSaga(got)) if got == id
    ));
    assert!(matches!(
        service
            .take(Uuid::new_v4(), Input::InvoiceIssued, None)
            .await,
        Err(ServiceError::NotFound(_))
    ));
}
