//! The HTTP API: both GET endpoints, every kind of bad input, health and unknown routes.

use serde_json::Value;
use uuid::Uuid;

use crate::common::{Setup, WireEvent};

fn problem(response: (u16, String, String), status: u16) -> Value {
    let (got, content_type, body) = response;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], status, "{problem}");
    assert!(problem["title"].is_string(), "{problem}");
    assert!(problem["detail"].is_string(), "{problem}");
    problem
}

fn invalid_param(problem: &Value) -> &str {
    problem["invalidParams"][0]["name"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_endpoints_serve_invoices_and_refuse_bad_input_as_problem_json() {
    let mut setup = Setup::redis();
    setup.start().await;
    let event = WireEvent::order_confirmed("2");
    setup.publish(&event).await;
    let invoice = setup.wait_for_invoice(event.aggregate_id).await;
    let id = invoice["id"].as_str().unwrap();

    let (status, content_type, body) = setup.get(&format!("/invoices/{id}")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), invoice);
    let (status, _, body) = setup
        .get(&format!("/invoices?orderId={}", event.aggregate_id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        Value::Array(vec![invoice])
    );

    // No invoice: an empty list, or 404 for a single one.
    let unknown = Uuid::new_v4();
    let (status, _, body) = setup.get(&format!("/invoices?orderId={unknown}")).await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    problem(setup.get(&format!("/invoices/{unknown}")).await, 404);

    // Malformed ids name the parameter.
    let bad = problem(setup.get("/invoices/not-a-uuid").await, 400);
    assert_eq!(invalid_param(&bad), "id");
    let bad = problem(setup.get("/invoices?orderId=12345").await, 400);
    assert_eq!(invalid_param(&bad), "orderId");
    let bad = problem(setup.get("/invoices").await, 400);
    assert_eq!(invalid_param(&bad), "orderId");
    let bad = problem(setup.get("/invoices?orderId=").await, 400);
    assert_eq!(invalid_param(&bad), "orderId");
    let bad = problem(
        setup
            .get(&format!("/invoices?orderId={unknown}&orderId={unknown}"))
            .await,
        400,
    );
    assert_eq!(invalid_param(&bad), "orderId");
    let bad = problem(
        setup
            .get(&format!("/invoices?orderId={unknown}&customerId=1"))
            .await,
        400,
    );
    assert_eq!(invalid_param(&bad), "customerId");

    problem(setup.get("/orders").await, 404);
    let (status, _, body) = setup.get("/health").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"UP"}"#));
    setup.stop().await;
}
