//! The saga's contracts: the order-service's `OrderCancellationRequested` and `OrderCancelled` v2, the
//! invoice-service's replies `InvoiceIssued`, `InvoiceRejected` and `InvoiceVoided`. What each producer
//! writes passes its schema and decodes to the same event; each kind of breakage fails at its pointer;
//! `OrderCancelled` v1 upcasts to v2.

use chrono::{TimeZone, Utc};
use contracts::{
    ContractError, Event, InvoiceIssuedV1, InvoiceRejectedV1, InvoiceVoidedV1, Money,
    OrderCancellationRequestedV1, OrderCancelled, OrderCancelledV1, OrderCancelledV2, OrderStatus,
    UNKNOWN_CANCEL_REASON,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

fn usd(cents: i64) -> Money {
    Money {
        amount: Decimal::new(cents, 2),
        currency: "USD".to_owned(),
    }
}

fn issued() -> InvoiceIssuedV1 {
    InvoiceIssuedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        invoice_id: Uuid::new_v4(),
        invoice_number: "INV-2026-000001".to_owned(),
        total: usd(3099),
        issued_at: Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap(),
    }
}

fn rejected() -> InvoiceRejectedV1 {
    InvoiceRejectedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        reason: "credit-limit-exceeded".to_owned(),
        detail: Some("open invoices 900.00 USD plus 200.00 USD exceed 1000.00 USD".to_owned()),
        rejected_at: Utc::now(),
    }
}

fn voided() -> InvoiceVoidedV1 {
    InvoiceVoidedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        invoice_id: Uuid::new_v4(),
        credit_note_number: "CN-2026-000001".to_owned(),
        credited: usd(3099),
        voided_at: Utc::now(),
    }
}

fn cancellation_requested() -> OrderCancellationRequestedV1 {
    OrderCancellationRequestedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        reason: "requested".to_owned(),
        requested_at: Utc::now(),
    }
}

fn cancelled_v1() -> OrderCancelledV1 {
    OrderCancelledV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        status: OrderStatus::Cancelled,
        cancelled_at: Utc::now(),
    }
}

fn cancelled_v2() -> OrderCancelledV2 {
    OrderCancelledV2 {
        reason: "invoice-rejected".to_owned(),
        ..cancelled_v1().into()
    }
}

fn payload<E: Event>(event: &E) -> Value {
    serde_json::to_value(event).unwrap()
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

/// `payload` with the value at each pointer replaced in turn fails exactly there.
fn assert_breakages<E: Event>(good: &Value, cases: &[(&str, Value)]) {
    for (pointer, bad) in cases {
        let mut payload = good.clone();
        *payload.pointer_mut(pointer).unwrap() = bad.clone();
        assert_eq!(violations::<E>(&payload), [*pointer], "{payload}");
    }
}

#[test]
fn typed_saga_events_serialize_to_valid_payloads() {
    validate::<InvoiceIssuedV1>(&payload(&issued())).unwrap();
    validate::<InvoiceRejectedV1>(&payload(&rejected())).unwrap();
    validate::<InvoiceVoidedV1>(&payload(&voided())).unwrap();
    validate::<OrderCancellationRequestedV1>(&payload(&cancellation_requested())).unwrap();
    validate::<OrderCancelledV2>(&payload(&cancelled_v2())).unwrap();
}

#[test]
fn invoice_events_go_to_the_invoice_destination_keyed_by_the_order() {
    assert_eq!(contracts::INVOICE_AGGREGATE_TYPE, "invoice");
    assert_eq!(contracts::INVOICE_DESTINATION, "outbox.event.invoice");
    let issued = issued();
    assert_eq!(issued.aggregate_id(), issued.order_id);
    let rejected = rejected();
    assert_eq!(rejected.aggregate_id(), rejected.order_id);
    let voided = voided();
    assert_eq!(voided.aggregate_id(), voided.order_id);
    assert_eq!(InvoiceIssuedV1::AGGREGATE_TYPE, "invoice");
    assert_eq!(InvoiceRejectedV1::AGGREGATE_TYPE, "invoice");
    assert_eq!(InvoiceVoidedV1::AGGREGATE_TYPE, "invoice");
    assert_eq!(OrderCancellationRequestedV1::AGGREGATE_TYPE, "order");
}

#[test]
fn the_wire_shape_of_invoice_issued() {
    let payload = payload(&issued());
    assert_eq!(
        payload["total"],
        json!({"amount": "30.99", "currency": "USD"})
    );
    assert_eq!(payload["invoiceNumber"], "INV-2026-000001");
    assert_eq!(payload["issuedAt"], "2026-12-06T10:00:00Z");
}

#[test]
fn each_reply_decodes_to_the_event_its_producer_wrote() {
    let event = issued();
    assert_eq!(
        contracts::decode_invoice_issued(Some("1"), &payload(&event).to_string()).unwrap(),
        event
    );
    let event = rejected();
    assert_eq!(
        contracts::decode_invoice_rejected(Some("1"), &payload(&event).to_string()).unwrap(),
        event
    );
    let event = voided();
    assert_eq!(
        contracts::decode_invoice_voided(Some("1"), &payload(&event).to_string()).unwrap(),
        event
    );
    let event = cancellation_requested();
    assert_eq!(
        contracts::decode_order_cancellation_requested(Some("1"), &payload(&event).to_string())
            .unwrap(),
        event
    );
}

#[test]
fn a_rejection_without_detail_is_valid_and_decodes_to_none() {
    let event = InvoiceRejectedV1 {
        detail: None,
        ..rejected()
    };
    let payload = payload(&event);
    assert!(payload.get("detail").is_none());
    assert_eq!(
        contracts::decode_invoice_rejected(Some("1"), &payload.to_string()).unwrap(),
        event
    );
}

#[test]
fn each_breakage_of_a_reply_is_reported_at_its_pointer() {
    assert_breakages::<InvoiceIssuedV1>(
        &payload(&issued()),
        &[
            ("/orderId", json!("not-a-uuid")),
            ("/invoiceId", json!(null)),
            ("/invoiceNumber", json!("")),
            ("/total/amount", json!(30.99)),
            ("/total/currency", json!("usd")),
            ("/issuedAt", json!("today")),
        ],
    );
    assert_breakages::<InvoiceRejectedV1>(
        &payload(&rejected()),
        &[
            ("/customerId", json!(7)),
            ("/reason", json!("Credit limit exceeded")),
            ("/reason", json!("")),
            ("/detail", json!(["not", "text"])),
            ("/rejectedAt", json!("2026-12-06")),
        ],
    );
    assert_breakages::<InvoiceVoidedV1>(
        &payload(&voided()),
        &[
            ("/invoiceId", json!("INV-2026-000001")),
            ("/creditNoteNumber", json!("")),
            ("/credited/amount", json!("-30.99")),
            ("/voidedAt", json!(0)),
        ],
    );
    assert_breakages::<OrderCancellationRequestedV1>(
        &payload(&cancellation_requested()),
        &[
            ("/reason", json!("not_kebab")),
            ("/requestedAt", json!(null)),
        ],
    );
    assert_breakages::<OrderCancelledV2>(
        &payload(&cancelled_v2()),
        &[
            ("/status", json!("CONFIRMED")),
            ("/reason", json!("x".repeat(65))),
        ],
    );
}

#[test]
fn a_missing_required_field_is_reported_at_its_parent() {
    for (field, mut payload) in [
        ("reason", payload(&rejected())),
        ("invoiceId", payload(&issued())),
        ("credited", payload(&voided())),
    ] {
        payload.as_object_mut().unwrap().remove(field);
        let event_type = match field {
            "reason" => "InvoiceRejected",
            "invoiceId" => "InvoiceIssued",
            _ => "InvoiceVoided",
        };
        let err = contracts::validate(event_type, Some("1"), &payload.to_string()).unwrap_err();
        assert!(
            matches!(&err, ContractError::InvalidPayload { violations, .. } if violations[0].pointer.is_empty()),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn replies_have_no_version_2() {
    for event_type in ["InvoiceIssued", "InvoiceRejected", "InvoiceVoided"] {
        let err = contracts::validate(event_type, Some("2"), "{}").unwrap_err();
        assert!(
            matches!(err, ContractError::UnknownVersion { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn order_cancelled_v1_is_upcast_with_an_unknown_reason() {
    let event = cancelled_v1();
    let decoded =
        contracts::decode_order_cancelled(Some("1"), &payload(&event).to_string()).unwrap();
    assert_eq!(
        decoded,
        OrderCancelledV2 {
            order_id: event.order_id,
            customer_id: event.customer_id,
            status: OrderStatus::Cancelled,
            cancelled_at: event.cancelled_at,
            reason: UNKNOWN_CANCEL_REASON.to_owned(),
        }
    );
    assert_eq!(decoded.reason, "unknown");
}

#[test]
fn order_cancelled_v2_is_decoded_as_is_and_read_by_v1_readers() {
    let event = cancelled_v2();
    let text = payload(&event).to_string();
    assert_eq!(
        contracts::decode_order_cancelled(Some("2"), &text).unwrap(),
        event
    );
    validate::<OrderCancelledV1>(&payload(&event)).unwrap();
    match OrderCancelled::decode(Some("1"), &text).unwrap() {
        OrderCancelled::V1(v1) => assert_eq!(v1.order_id, event.order_id),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_v1_cancellation_is_not_a_valid_v2_one() {
    assert_eq!(
        violations::<OrderCancelledV2>(&payload(&cancelled_v1())),
        [""]
    );
    let err = contracts::decode_order_cancelled(Some("3"), &payload(&cancelled_v1()).to_string())
        .unwrap_err();
    assert_eq!(err.reason(), "unknown-version");
}
