//! Property tests of `POST /orders` over HTTP: generated bodies (arbitrary JSON, valid requests with
//! one field replaced by an arbitrary value, raw bytes, unicode edge cases) never get a 5xx, and a
//! rejected request writes nothing. 3 properties × `CASES` requests per run.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use support::{order_request, App};

const CASES: u32 = 300;

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        // Unicode edge cases: astral planes, combining marks, bidi controls, NUL.
        "(\\PC|[\u{0}\u{202e}\u{1F600}\u{0301}]){0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid request with the value at one place replaced.
fn mutated_request() -> impl Strategy<Value = Value> {
    let places = prop::sample::select(vec![
        "/customerId",
        "/lines",
        "/lines/0",
        "/lines/0/productId",
        "/lines/0/quantity",
        "/lines/0/unitPrice",
        "/lines/0/currency",
        "/lines/1/currency",
    ]);
    (places, arbitrary_json()).prop_map(|(pointer, value)| {
        let mut request = order_request();
        if let Some(slot) = request.pointer_mut(pointer) {
            *slot = value;
        }
        request
    })
}

struct Outcome {
    status: u16,
    written: bool,
}

async fn post(app: &App, body: Vec<u8>) -> Outcome {
    let rows = || async {
        app.count("outbox").await + app.count("orders").await + app.count("order_lines").await
    };
    let before = rows().await;
    let response = app.post_raw_json("/orders", body).await;
    let after = rows().await;
    Outcome {
        status: response.status().as_u16(),
        written: after != before,
    }
}

fn check(runtime: &tokio::runtime::Runtime, app: &App, strategy: impl Strategy<Value = Vec<u8>>) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    runner
        .run(&strategy, |body| {
            let outcome = runtime.block_on(post(app, body));
            prop_assert!(outcome.status < 500, "server error {}", outcome.status);
            prop_assert!(
                outcome.status == 201 || !outcome.written,
                "rejected with {} but wrote rows",
                outcome.status
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn generated_requests_get_no_server_error_and_rejections_write_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(App::start());
    check(
        &runtime,
        &app,
        arbitrary_json().prop_map(|v| v.to_string().into_bytes()),
    );
    check(
        &runtime,
        &app,
        mutated_request().prop_map(|v| v.to_string().into_bytes()),
    );
    check(&runtime, &app, prop::collection::vec(any::<u8>(), 0..2048));
    runtime.block_on(app.stop()).unwrap();
}
