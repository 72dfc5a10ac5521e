//! What a consumer of `OrderConfirmed` sees: v1 and v2 both decode to v2 (v1 upcast), an unknown major
//! version and an invalid payload are distinct errors.

use chrono::Utc;
use contracts::{
    ContractError, Money, OrderConfirmed, OrderConfirmedV1, OrderConfirmedV2, OrderLine,
    OrderStatus, UNKNOWN_SALES_CHANNEL, VERSION_HEADER,
};
use rust_decimal::Decimal;
use uuid::Uuid;

fn v1() -> OrderConfirmedV1 {
    OrderConfirmedV1 {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        status: OrderStatus::Confirmed,
        lines: vec![OrderLine {
            product_id: Uuid::new_v4(),
            quantity: 2,
            unit_price: Decimal::new(1999, 2),
            currency: "EUR".to_owned(),
        }],
        total: Money {
            amount: Decimal::new(3998, 2),
            currency: "EUR".to_owned(),
        },
        confirmed_at: Utc::now(),
    }
}

#[test]
fn the_version_header_is_event_version() {
    assert_eq!(VERSION_HEADER, "event_version");
}

#[test]
fn v1_is_upcast_with_an_unknown_sales_channel() {
    let event = v1();
    let payload = serde_json::to_string(&event).unwrap();
    let decoded = contracts::decode_order_confirmed(Some("1"), &payload).unwrap();
    assert_eq!(
        decoded,
        OrderConfirmedV2 {
            order_id: event.order_id,
            customer_id: event.customer_id,
            status: OrderStatus::Confirmed,
            lines: event.lines.clone(),
            total: event.total.clone(),
            confirmed_at: event.confirmed_at,
            sales_channel: UNKNOWN_SALES_CHANNEL.to_owned(),
        }
    );
    assert_eq!(decoded.sales_channel, "unknown");
    assert_eq!(
        OrderConfirmed::decode(Some("1"), &payload).unwrap(),
        OrderConfirmed::V1(event)
    );
}

#[test]
fn a_missing_version_header_means_v1() {
    let payload = serde_json::to_string(&v1()).unwrap();
    assert!(matches!(
        OrderConfirmed::decode(None, &payload).unwrap(),
        OrderConfirmed::V1(_)
    ));
}

#[test]
fn v2_is_decoded_as_is() {
    let event = OrderConfirmedV2 {
        sales_channel: "web".to_owned(),
        ..v1().into()
    };
    let payload = serde_json::to_string(&event).unwrap();
    assert_eq!(
        contracts::decode_order_confirmed(Some("2"), &payload).unwrap(),
        event
    );
}

#[test]
fn v1_readers_ignore_the_v2_field() {
    let event = OrderConfirmedV2 {
        sales_channel: "web".to_owned(),
        ..v1().into()
    };
    let payload = serde_json::to_string(&event).unwrap();
    let read_as_v1 = match OrderConfirmed::decode(Some("1"), &payload).unwrap() {
        OrderConfirmed::V1(v1) => v1,
        other => panic!("{other:?}"),
    };
    assert_eq!(read_as_v1.order_id, event.order_id);
}

#[test]
fn an_unknown_major_version_is_its_own_error() {
    let payload = serde_json::to_string(&v1()).unwrap();
    for version in ["3", "0", "", "1.0", "v1", "+1", "99999999999"] {
        let err = contracts::decode_order_confirmed(Some(version), &payload).unwrap_err();
        match &err {
            ContractError::UnknownVersion {
                event_type,
                version: got,
            } => {
                assert_eq!(event_type, "OrderConfirmed");
                assert_eq!(got, version);
            }
            other => panic!("version {version:?}: {other:?}"),
        }
        assert_eq!(err.reason(), "unknown-version");
    }
}

#[test]
fn an_invalid_payload_is_its_own_error() {
    let mut payload = serde_json::to_value(v1()).unwrap();
    payload["lines"][0]["quantity"] = serde_json::json!(-1);
    let err = contracts::decode_order_confirmed(Some("1"), &payload.to_string()).unwrap_err();
    match &err {
        ContractError::InvalidPayload {
            event_type,
            version,
            violations,
        } => {
            assert_eq!((event_type.as_str(), *version), ("OrderConfirmed", 1));
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].pointer, "/lines/0/quantity");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.reason(), "invalid-payload");
    assert!(err.to_string().contains("/lines/0/quantity"), "{err}");
}

#[test]
fn a_v2_payload_without_sales_channel_is_invalid() {
    let payload = serde_json::to_string(&v1()).unwrap();
    let err = contracts::decode_order_confirmed(Some("2"), &payload).unwrap_err();
    assert!(
        matches!(err, ContractError::InvalidPayload { version: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn a_quantity_beyond_the_typed_range_is_an_invalid_payload() {
    let mut payload = serde_json::to_value(v1()).unwrap();
    payload["lines"][0]["quantity"] = serde_json::json!(u64::from(u32::MAX) + 1);
    let err = contracts::decode_order_confirmed(Some("1"), &payload.to_string()).unwrap_err();
    assert!(
        matches!(err, ContractError::InvalidPayload { version: 1, .. }),
        "{err:?}"
    );
}
