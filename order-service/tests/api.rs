//! The HTTP API on a real server and database: each endpoint's success and error responses, and what
//! each call writes to the orders and the outbox.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{order_request, App};
use uuid::Uuid;

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}

#[tokio::test]
async fn create_answers_201_with_location_and_the_order() {
    let app = App::start().await;
    let request = order_request();
    let response = app.post_json("/orders", &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    let id = order["id"].as_str().unwrap();
    assert_eq!(location, format!("/orders/{id}"));
    assert_eq!(order["customerId"], request["customerId"]);
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["version"], 1);
    assert_eq!(
        order["lines"][0]["productId"],
        request["lines"][0]["productId"]
    );
    assert_eq!(order["lines"][0]["unitPrice"], "10.00");
    assert_eq!(order["lines"][0]["lineTotal"], "30.00");
    assert_eq!(order["lines"][1]["quantity"], 1);
    assert_eq!(
        order["totals"],
        json!([{"amount": "30.99", "currency": "USD"}])
    );
    assert!(order.get("confirmedAt").is_none());

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, order);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("order_lines").await, 2);
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "OrderCreated");
}

#[tokio::test]
async fn amounts_keep_the_fraction_digits_of_their_currency() {
    let app = App::start().await;
    let request = json!({
        "customerId": Uuid::new_v4(),
        "lines": [
            {"productId": Uuid::new_v4(), "quantity": 3, "unitPrice": "0.1", "currency": "EUR"},
            {"productId": Uuid::new_v4(), "quantity": 1, "unitPrice": "0.2", "currency": "EUR"}
        ]
    });
    let order: Value = app
        .post_json("/orders", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["lines"][0]["unitPrice"], "0.10");
    assert_eq!(
        order["totals"],
        json!([{"amount": "0.50", "currency": "EUR"}])
    );

    let yen = json!({
        "customerId": Uuid::new_v4(),
        "lines": [{"productId": Uuid::new_v4(), "quantity": 2, "unitPrice": "1500", "currency": "JPY"}]
    });
    let response = app.post_json("/orders", &yen).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        order["totals"],
        json!([{"amount": "3000", "currency": "JPY"}])
    );
    // Stored as numeric(12, 2), read back with the currency's digits.
    let fetched: Value = app
        .get(&format!("/orders/{}", order["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, order);
}

#[tokio::test]
async fn get_of_an_unknown_order_is_404() {
    let app = App::start().await;
    let body = problem(
        app.get(&format!("/orders/{}", Uuid::new_v4())).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://outbox-relay.example/problems/not-found"
    );
}

#[tokio::test]
async fn a_malformed_order_id_is_400_naming_the_parameter() {
    let app = App::start().await;
    for path in [
        "/orders/not-a-uuid",
        "/orders/1234/confirm",
        "/orders/5e8bd2ec8a1c4e4fb4a1f1c5c1d7e9d0/cancel",
    ] {
        let response = if path.ends_with("/confirm") || path.ends_with("/cancel") {
            app.post(path).await
        } else {
            app.get(path).await
        };
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["errors"][0]["parameter"], "orderId", "{path}");
    }
}

#[tokio::test]
async fn confirm_moves_to_confirmed_and_writes_one_event() {
    let app = App::start().await;
    let order = app.create_order().await;
    let id = order["id"].as_str().unwrap();

    let response = app.post(&format!("/orders/{id}/confirm")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let confirmed: Value = response.json().await.unwrap();
    assert_eq!(confirmed["status"], "CONFIRMED");
    assert_eq!(confirmed["version"], 2);
    assert!(confirmed["confirmedAt"].is_string());
    assert_eq!(confirmed["lines"], order["lines"]);

    let again = app.post(&format!("/orders/{id}/confirm")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap(), confirmed);

    let fetched: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, confirmed);
    let types: Vec<String> = app
        .events_of(id)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["OrderCreated", "OrderConfirmed"]);
}

#[tokio::test]
async fn confirm_of_an_unknown_order_is_404_and_writes_nothing() {
    let app = App::start().await;
    problem(
        app.post(&format!("/orders/{}/confirm", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn a_cancelled_order_cannot_be_confirmed() {
    let app = App::start().await;
    let id = app.create_order().await["id"].as_str().unwrap().to_owned();
    let cancelled: Value = app
        .post(&format!("/orders/{id}/cancel"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(cancelled["cancelledAt"].is_string());

    let body = problem(
        app.post(&format!("/orders/{id}/confirm")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://outbox-relay.example/problems/invalid-state"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("CANCELLED"),
        "{body}"
    );
    let fetched: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, cancelled);
    let types: Vec<String> = app
        .events_of(&id)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["OrderCreated", "OrderCancelled"]);
}

#[tokio::test]
async fn cancel_is_idempotent_and_a_confirmed_order_cannot_be_cancelled() {
    let app = App::start().await;
    let first = app.create_order().await["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let response = app.post(&format!("/orders/{first}/cancel")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(app.events_of(&first).await.len(), 2);

    let second = app.create_order().await["id"].as_str().unwrap().to_owned();
    app.post(&format!("/orders/{second}/confirm")).await;
    problem(
        app.post(&format!("/orders/{second}/cancel")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.events_of(&second).await.len(), 2);
}

#[tokio::test]
async fn the_correlation_id_is_echoed_and_stored_with_the_event() {
    let app = App::start().await;
    let response = app
        .http
        .post(app.url("/orders"))
        .header("X-Correlation-Id", "checkout-42")
        .json(&order_request())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "checkout-42");
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = app
        .http
        .post(app.url(&format!("/orders/{id}/confirm")))
        .header("X-Correlation-Id", "confirm-7")
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.headers()["x-correlation-id"], "confirm-7");
    let events = app.events_of(&id).await;
    assert_eq!(events[0].header("correlation_id"), Some("checkout-42"));
    assert_eq!(events[1].header("correlation_id"), Some("confirm-7"));
}

#[tokio::test]
async fn a_missing_or_unusable_correlation_id_is_replaced_by_a_generated_one() {
    let app = App::start().await;
    let plain = app.post_json("/orders", &order_request()).await;
    let generated = plain.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(Uuid::parse_str(&generated).is_ok(), "{generated}");
    let id = plain.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.events_of(&id).await[0].header("correlation_id"),
        Some(generated.as_str())
    );
    // A later request about the order without an id of its own continues under the order's.
    let confirm = app.post(&format!("/orders/{id}/confirm")).await;
    assert_eq!(confirm.headers()["x-correlation-id"], generated.as_str());
    assert_eq!(
        app.events_of(&id).await[1].header("correlation_id"),
        Some(generated.as_str())
    );

    for unusable in ["", "has space", &"x".repeat(129)] {
        let response = app
            .http
            .get(app.url("/health"))
            .header("X-Correlation-Id", unusable)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-correlation-id"].to_str().unwrap();
        assert!(Uuid::parse_str(echoed).is_ok(), "{unusable:?} -> {echoed}");
    }
    // Errors carry it too.
    let missing = app.get("/nowhere").await;
    assert!(missing.headers().contains_key("x-correlation-id"));
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_responses() {
    let app = App::start().await;
    problem(app.get("/invoices").await, StatusCode::NOT_FOUND).await;
    problem(app.get("/orders").await, StatusCode::METHOD_NOT_ALLOWED).await;
    let id = Uuid::new_v4();
    problem(
        app.get(&format!("/orders/{id}/confirm")).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
}

#[tokio::test]
async fn health_answers_while_the_database_does() {
    let mut app = App::start().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    app.postgres.stop().unwrap();
    problem(app.get("/health").await, StatusCode::SERVICE_UNAVAILABLE).await;
    let body = problem(
        app.post_json("/orders", &order_request()).await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://outbox-relay.example/problems/internal"
    );
}

#[tokio::test]
async fn the_server_stops_gracefully() {
    let app = App::start().await;
    let base = app.base.clone();
    app.stop().await.unwrap();
    assert!(reqwest::get(format!("{base}/health")).await.is_err());
}
