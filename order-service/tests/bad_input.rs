//! Every kind of bad `POST /orders` input gets a problem+json response naming each bad field, and
//! nothing is written: no order, no line, no outbox row.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{order_request, App};
use uuid::Uuid;

/// Sends `body` as JSON, checks status and problem shape, and returns the JSON pointers it names.
async fn pointers(app: &App, body: &Value, status: StatusCode) -> Vec<String> {
    let response = app.post_json("/orders", body).await;
    assert_eq!(response.status(), status, "{body}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    for key in ["type", "title", "detail"] {
        assert!(problem[key].is_string(), "{key} in {problem}");
    }
    assert_eq!(problem["status"], status.as_u16());
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["pointer"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn assert_nothing_written(app: &App) {
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("order_lines").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

/// `request` with `value` at the JSON pointer `at` (which must exist).
fn with(at: &str, value: Value) -> Value {
    let mut request = order_request();
    *request.pointer_mut(at).unwrap() = value;
    request
}

fn line(quantity: Value, unit_price: Value, currency: &str) -> Value {
    json!({"productId": Uuid::new_v4(), "quantity": quantity, "unitPrice": unit_price, "currency": currency})
}

#[tokio::test]
async fn each_bad_field_is_named_by_its_json_pointer() {
    let app = App::start().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with("/customerId", json!("not-a-uuid")),
            vec!["/customerId"],
        ),
        (with("/customerId", json!(42)), vec!["/customerId"]),
        (
            with("/customerId", json!("5e8bd2ec8a1c4e4fb4a1f1c5c1d7e9d0")),
            vec!["/customerId"],
        ),
        (
            with(
                "/lines/0/productId",
                json!("{5e8bd2ec-8a1c-4e4f-b4a1-f1c5c1d7e9d0}"),
            ),
            vec!["/lines/0/productId"],
        ),
        (
            with("/lines/1/quantity", json!(0)),
            vec!["/lines/1/quantity"],
        ),
        (
            with("/lines/0/quantity", json!(-3)),
            vec!["/lines/0/quantity"],
        ),
        (
            with("/lines/0/quantity", json!(10_001)),
            vec!["/lines/0/quantity"],
        ),
        (
            with("/lines/0/quantity", json!(1.5)),
            vec!["/lines/0/quantity"],
        ),
        (
            with("/lines/0/quantity", json!("3")),
            vec!["/lines/0/quantity"],
        ),
        (
            with("/lines/0/quantity", json!(u64::MAX)),
            vec!["/lines/0/quantity"],
        ),
        (
            with("/lines/0/unitPrice", json!("10.001")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!("10.000")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!(10.0)),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!("0")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!("-1.00")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!("1e3")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!(" 1.00")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/unitPrice", json!("1000000.01")),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with(
                "/lines/0/unitPrice",
                json!("99999999999999999999999999999999"),
            ),
            vec!["/lines/0/unitPrice"],
        ),
        (
            with("/lines/0/currency", json!("usd")),
            vec!["/lines/0/currency"],
        ),
        (
            with("/lines/0/currency", json!("XYZ")),
            vec!["/lines/0/currency"],
        ),
        (
            with("/lines/0/currency", json!(840)),
            vec!["/lines/0/currency"],
        ),
        (with("/lines", json!([])), vec!["/lines"]),
        (
            with("/lines", json!({"productId": Uuid::new_v4()})),
            vec!["/lines"],
        ),
        (with("/lines/1", json!("a line")), vec!["/lines/1"]),
        (
            with("/lines/1/currency", json!("EUR")),
            vec!["/lines/1/currency"],
        ),
        (json!([order_request()]), vec![""]),
        (json!({}), vec!["/customerId", "/lines"]),
    ];
    for (body, expected) in cases {
        assert_eq!(
            pointers(&app, &body, StatusCode::UNPROCESSABLE_ENTITY).await,
            expected,
            "{body}"
        );
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn all_bad_fields_are_reported_together() {
    let app = App::start().await;
    let body = json!({
        "customerId": "nope",
        "lines": [
            line(json!(0), json!("10.00"), "USD"),
            line(json!(1), json!("1.234"), "usd"),
            {"productId": "x", "quantity": 1, "unitPrice": "1.00", "currency": "USD", "discount": "1.00"}
        ],
        "coupon": "FREE"
    });
    let mut got = pointers(&app, &body, StatusCode::UNPROCESSABLE_ENTITY).await;
    got.sort();
    assert_eq!(
        got,
        [
            "/coupon",
            "/customerId",
            "/lines/0/quantity",
            "/lines/1/currency",
            "/lines/1/unitPrice",
            "/lines/2/discount",
            "/lines/2/productId"
        ]
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn unknown_field_names_are_escaped_in_pointers() {
    let app = App::start().await;
    let mut body = order_request();
    body["a/b~c"] = json!(1);
    assert_eq!(
        pointers(&app, &body, StatusCode::UNPROCESSABLE_ENTITY).await,
        ["/a~1b~0c"]
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn missing_fields_are_named() {
    let app = App::start().await;
    let mut body = order_request();
    body["lines"][0]
        .as_object_mut()
        .unwrap()
        .remove("unitPrice");
    body["lines"][1]
        .as_object_mut()
        .unwrap()
        .remove("productId");
    assert_eq!(
        pointers(&app, &body, StatusCode::UNPROCESSABLE_ENTITY).await,
        ["/lines/0/unitPrice", "/lines/1/productId"]
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn limits_on_lines_and_currency_precision() {
    let app = App::start().await;
    let lines: Vec<Value> = (0..101)
        .map(|_| line(json!(1), json!("1.00"), "USD"))
        .collect();
    let too_many = json!({"customerId": Uuid::new_v4(), "lines": lines});
    assert_eq!(
        pointers(&app, &too_many, StatusCode::UNPROCESSABLE_ENTITY).await,
        ["/lines"]
    );
    // Yen have no minor unit.
    let yen =
        json!({"customerId": Uuid::new_v4(), "lines": [line(json!(1), json!("100.5"), "JPY")]});
    assert_eq!(
        pointers(&app, &yen, StatusCode::UNPROCESSABLE_ENTITY).await,
        ["/lines/0/unitPrice"]
    );
    assert_nothing_written(&app).await;

    let hundred = json!({
        "customerId": Uuid::new_v4(),
        "lines": (0..100).map(|_| line(json!(10_000), json!("1000000"), "USD")).collect::<Vec<_>>()
    });
    let response = app.post_json("/orders", &hundred).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["totals"][0]["amount"], "1000000000000.00");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = App::start().await;
    for body in ["{", "{\"customerId\": }", "", "nul", "{\"a\":1}}"] {
        let response = app.post_raw_json("/orders", body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "https://outbox-relay.example/problems/malformed-json"
        );
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let app = App::start().await;
    for content_type in [None, Some("text/plain"), Some("application/xml")] {
        let mut request = app
            .http
            .post(app.url("/orders"))
            .body(order_request().to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let charset = app
        .http
        .post(app.url("/orders"))
        .header("content-type", "application/json; charset=utf-8")
        .body(order_request().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(charset.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_oversize_body_is_413() {
    let app = App::start().await;
    let mut body = order_request();
    body["padding"] = json!("x".repeat(64 * 1024));
    let response = app.post_json("/orders", &body).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 413);

    // Streamed without a Content-Length, the limit still holds.
    let chunks = futures::stream::iter((0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let response = app
        .http
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_nothing_written(&app).await;
}
