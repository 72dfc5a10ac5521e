//! What a received message means for the invoice-service, decided from its envelope alone: ignore
//! it, dead-letter it, invoice it, or void its order's invoice.

use contracts::{
    decode_order_cancellation_requested, decode_order_confirmed, Event,
    OrderCancellationRequestedV1, OrderConfirmedV2, CORRELATION_HEADER, VERSION_HEADER,
};
use uuid::Uuid;

use crate::invoice::InvoiceDraft;
use crate::store::SourceEvent;
use brokers::{Envelope, Rejection};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Another event type on the same destination, e.g. `OrderCreated`: acknowledged, not invoiced.
    Ignore {
        event_type: String,
    },
    Reject(Rejection),
    Invoice {
        event: SourceEvent,
        draft: InvoiceDraft,
    },
    /// The saga asks to void the order's invoice before it cancels the order.
    Void {
        event: SourceEvent,
        order_id: Uuid,
    },
}

/// Checks the headers, decodes the payload against the contract version it names (upcasting v1),
/// and applies the invoicing rules.
pub fn decide(envelope: &Envelope) -> Decision {
    let Some(event_type) = envelope.header("type") else {
        return Decision::Reject(Rejection::new(
            "missing-type",
            "the message has no `type` header",
        ));
    };
    if event_type != OrderConfirmedV2::EVENT_TYPE
        && event_type != OrderCancellationRequestedV1::EVENT_TYPE
    {
        return Decision::Ignore {
            event_type: event_type.to_owned(),
        };
    }
    let id = match envelope.header("id").map(Uuid::parse_str) {
        Some(Ok(id)) => id,
        Some(Err(e)) => {
            return Decision::Reject(Rejection::new(
                "invalid-event-id",
                format!("the `id` header is not a UUID: {e}"),
            ))
        }
        None => {
            return Decision::Reject(Rejection::new(
                "invalid-event-id",
                "the message has no `id` header",
            ))
        }
    };
    let source = SourceEvent {
        id,
        event_type: event_type.to_owned(),
        correlation_id: envelope.header(CORRELATION_HEADER).map(str::to_owned),
    };
    if event_type == OrderCancellationRequestedV1::EVENT_TYPE {
        return match decode_order_cancellation_requested(
            envelope.header(VERSION_HEADER),
            &envelope.payload,
        ) {
            Ok(request) => Decision::Void {
                event: source,
                order_id: request.order_id,
            },
            Err(error) => Decision::Reject(error.into()),
        };
    }
    let order = match decode_order_confirmed(envelope.header(VERSION_HEADER), &envelope.payload) {
        Ok(order) => order,
        Err(error) => return Decision::Reject(error.into()),
    };
    match InvoiceDraft::from_order(&order) {
        Ok(draft) => Decision::Invoice {
            event: source,
            draft,
        },
        Err(error) => Decision::Reject(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const PAYLOAD: &str = r#"{"orderId":"6f1c1f8e-3b1a-4a53-9d0e-0c0b7f0b1a11",
        "customerId":"0d7c5a3e-2f1b-4f5e-8a6b-1c2d3e4f5a6b","status":"CONFIRMED",
        "lines":[{"productId":"a1b2c3d4-e5f6-4a5b-8c7d-9e0f1a2b3c4d","quantity":2,
                  "unitPrice":"10.00","currency":"USD"}],
        "total":{"amount":"20.00","currency":"USD"},"confirmedAt":"2026-01-02T03:04:05Z"}"#;

    fn envelope(headers: &[(&str, &str)], payload: &str) -> Envelope {
        Envelope {
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            payload: payload.to_owned(),
        }
    }

    fn rejection_code(decision: Decision) -> &'static str {
        match decision {
            Decision::Reject(rejection) => rejection.code,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    const ID: &str = "7d444840-9dc0-11d1-b245-5ffdce74fad2";

    #[test]
    fn a_v1_event_is_invoiced_with_the_upcast_sales_channel() {
        let decision = decide(&envelope(
            &[
                ("type", "OrderConfirmed"),
                ("id", ID),
                ("event_version", "1"),
                ("correlation_id", "c-1"),
            ],
            PAYLOAD,
        ));
        let Decision::Invoice { event, draft } = decision else {
            panic!("expected an invoice, got {decision:?}");
        };
        assert_eq!(event.id.to_string(), ID);
        assert_eq!(event.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(draft.sales_channel, contracts::UNKNOWN_SALES_CHANNEL);
        assert_eq!(draft.total.to_string(), "20.00");
    }

    #[test]
    fn a_cancellation_request_voids_the_orders_invoice() {
        let payload = r#"{"orderId":"6f1c1f8e-3b1a-4a53-9d0e-0c0b7f0b1a11",
            "customerId":"0d7c5a3e-2f1b-4f5e-8a6b-1c2d3e4f5a6b","reason":"requested",
            "requestedAt":"2026-12-06T10:00:00Z"}"#;
        let headers = [
            ("type", "OrderCancellationRequested"),
            ("id", ID),
            ("event_version", "1"),
            ("correlation_id", "c-2"),
        ];
        let Decision::Void { event, order_id } = decide(&envelope(&headers, payload)) else {
            panic!("expected a void");
        };
        assert_eq!(order_id.to_string(), "6f1c1f8e-3b1a-4a53-9d0e-0c0b7f0b1a11");
        assert_eq!(event.event_type, "OrderCancellationRequested");
        assert_eq!(event.correlation_id.as_deref(), Some("c-2"));
        assert_eq!(
            rejection_code(decide(&envelope(&headers, PAYLOAD))),
            "invalid-payload"
        );
    }

    #[test]
    fn other_event_types_are_ignored() {
        assert_eq!(
            decide(&envelope(&[("type", "OrderCreated"), ("id", ID)], "{}")),
            Decision::Ignore {
                event_type: "OrderCreated".to_owned()
            }
        );
    }

    #[test]
    fn bad_messages_are_rejected_with_a_reason() {
        let confirmed = [("type", "OrderConfirmed"), ("id", ID)];
        assert_eq!(
            rejection_code(decide(&envelope(&[], PAYLOAD))),
            "missing-type"
        );
        assert_eq!(
            rejection_code(decide(&envelope(&[("type", "OrderConfirmed")], PAYLOAD))),
            "invalid-event-id"
        );
        assert_eq!(
            rejection_code(decide(&envelope(
                &[("type", "OrderConfirmed"), ("id", "42")],
                PAYLOAD
            ))),
            "invalid-event-id"
        );
        assert_eq!(
            rejection_code(decide(&envelope(
                &[confirmed[0], confirmed[1], ("event_version", "9")],
                PAYLOAD
            ))),
            "unknown-version"
        );
        assert_eq!(
            rejection_code(decide(&envelope(&confirmed, "{not json"))),
            "invalid-payload"
        );
        let wrong_total = PAYLOAD.replace(r#""amount":"20.00""#, r#""amount":"25.00""#);
        assert_eq!(
            rejection_code(decide(&envelope(&confirmed, &wrong_total))),
            "not-billable"
        );
    }
}
