//! Example payloads against the schemas: what producers write passes, each kind of breakage fails with a
//! pointer to the offending value.

use chrono::{TimeZone, Utc};
use contracts::{
    ContractError, Event, Money, OrderCancelledV1, OrderConfirmedV1, OrderConfirmedV2,
    OrderCreatedV1, OrderLine, OrderStatus,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

fn line() -> OrderLine {
    OrderLine {
        product_id: Uuid::new_v4(),
        quantity: 3,
        unit_price: Decimal::new(1000, 2),
        currency: "USD".to_owned(),
    }
}

fn total() -> Money {
    Money {
        amount: Decimal::new(3000, 2),
        currency: "USD".to_owned(),
    }
}

fn created() -> OrderCreatedV1 {
    OrderCreatedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        status: OrderStatus::Created,
        lines: vec![line()],
        total: total(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
    }
}

fn confirmed_v1() -> OrderConfirmedV1 {
    OrderConfirmedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        status: OrderStatus::Confirmed,
        lines: vec![line(), line()],
        total: Money {
            amount: Decimal::new(6000, 2),
            currency: "USD".to_owned(),
        },
        confirmed_at: Utc::now(),
    }
}

fn confirmed_v2() -> OrderConfirmedV2 {
    OrderConfirmedV2 {
        sales_channel: "web".to_owned(),
        ..confirmed_v1().into()
    }
}

fn validate<E: Event>(payload: &Value) -> Result<(), ContractError> {
    contracts::validate(E::EVENT_TYPE, Some(E::VERSION), &payload.to_string())
}

/// The pointers of the violations, or a panic if the payload passed.
fn violations<E: Event>(payload: &Value) -> Vec<String> {
    match validate::<E>(payload) {
        Err(ContractError::InvalidPayload { violations, .. }) => {
            violations.into_iter().map(|v| v.pointer).collect()
        }
        other => panic!("expected an invalid payload, got {other:?} for {payload}"),
    }
}

#[test]
fn typed_events_serialize_to_valid_payloads() {
    validate::<OrderCreatedV1>(&serde_json::to_value(created()).unwrap()).unwrap();
    validate::<OrderConfirmedV1>(&serde_json::to_value(confirmed_v1()).unwrap()).unwrap();
    validate::<OrderConfirmedV2>(&serde_json::to_value(confirmed_v2()).unwrap()).unwrap();
}

#[test]
fn money_is_a_decimal_string_on_the_wire() {
    let payload = serde_json::to_value(created()).unwrap();
    assert_eq!(payload["lines"][0]["unitPrice"], "10.00");
    assert_eq!(
        payload["total"],
        json!({"amount": "30.00", "currency": "USD"})
    );
    assert_eq!(payload["status"], "CREATED");
    assert_eq!(payload["createdAt"], "2026-11-25T12:00:00Z");
}

#[test]
fn a_v2_payload_is_a_valid_v1_payload() {
    let v2 = serde_json::to_value(confirmed_v2()).unwrap();
    validate::<OrderConfirmedV1>(&v2).unwrap();
}

#[test]
fn a_v1_payload_is_not_a_valid_v2_payload() {
    let v1 = serde_json::to_value(confirmed_v1()).unwrap();
    assert_eq!(violations::<OrderConfirmedV2>(&v1), [""]);
}

#[test]
fn unknown_fields_are_accepted() {
    let mut payload = serde_json::to_value(created()).unwrap();
    payload["addedLater"] = json!({"any": "thing"});
    payload["lines"][0]["discount"] = json!("1.00");
    validate::<OrderCreatedV1>(&payload).unwrap();
}

#[test]
fn each_breakage_is_reported_at_its_pointer() {
    let good = serde_json::to_value(confirmed_v1()).unwrap();
    let cases = [
        ("/orderId", json!("not-a-uuid")),
        ("/status", json!("CREATED")),
        ("/lines/1/quantity", json!(0)),
        ("/lines/0/quantity", json!(1.5)),
        ("/lines/0/unitPrice", json!(10.0)),
        ("/lines/0/unitPrice", json!("10.001")),
        ("/lines/0/unitPrice", json!("-1.00")),
        ("/lines/0/productId", json!(null)),
        ("/lines/0/currency", json!("usd")),
        ("/lines", json!([])),
        ("/total/amount", json!("1e3")),
        ("/confirmedAt", json!("yesterday")),
        ("", json!([])),
    ];
    for (pointer, bad) in cases {
        let mut payload = good.clone();
        *payload.pointer_mut(pointer).unwrap() = bad;
        assert_eq!(
            violations::<OrderConfirmedV1>(&payload),
            [pointer],
            "{payload}"
        );
    }
}

#[test]
fn a_missing_field_is_reported_at_its_parent() {
    let mut payload = serde_json::to_value(confirmed_v1()).unwrap();
    payload.as_object_mut().unwrap().remove("customerId");
    payload["total"].as_object_mut().unwrap().remove("currency");
    assert_eq!(violations::<OrderConfirmedV1>(&payload), ["", "/total"]);
}

#[test]
fn text_that_is_not_json_is_an_invalid_payload() {
    let err = contracts::validate("OrderCreated", Some("1"), "{not json").unwrap_err();
    assert!(
        matches!(&err, ContractError::InvalidPayload { version: 1, violations, .. } if violations[0].message.starts_with("not JSON")),
        "{err:?}"
    );
    assert_eq!(err.reason(), "invalid-payload");
}

#[test]
fn an_unknown_event_type_is_its_own_error() {
    let err = contracts::validate("OrderShipped", Some("1"), "{}").unwrap_err();
    assert!(matches!(&err, ContractError::UnknownEventType(t) if t == "OrderShipped"));
    assert_eq!(err.reason(), "unknown-event-type");
}

#[test]
fn order_created_has_no_version_2() {
    let payload = serde_json::to_string(&created()).unwrap();
    let err = contracts::validate("OrderCreated", Some("2"), &payload).unwrap_err();
    assert!(
        matches!(err, ContractError::UnknownVersion { .. }),
        "{err:?}"
    );
}

#[test]
fn order_cancelled_round_trips_and_rejects_another_status() {
    let event = OrderCancelledV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        status: OrderStatus::Cancelled,
        cancelled_at: Utc::now(),
    };
    let mut payload = serde_json::to_value(&event).unwrap();
    assert_eq!(payload["status"], "CANCELLED");
    assert_eq!(
        contracts::OrderCancelled::decode(Some("1"), &payload.to_string()).unwrap(),
        contracts::OrderCancelled::V1(event)
    );
    payload["status"] = json!("CONFIRMED");
    assert_eq!(violations::<OrderCancelledV1>(&payload), ["/status"]);
}

#[test]
fn decode_order_created_round_trips() {
    let event = created();
    let payload = serde_json::to_string(&event).unwrap();
    assert_eq!(
        contracts::decode_order_created(Some("1"), &payload).unwrap(),
        event
    );
}
