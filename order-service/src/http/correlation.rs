//! Middleware that gives each request its correlation id: in the request's extensions for the
//! handlers, on a tracing span around the whole request so every log line carries it, and echoed in the
//! response. A request about an order (`/orders/{id}...`) that brings no usable `X-Correlation-Id`
//! continues under the id the order was placed under, so that one id follows the order and its saga.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

use crate::correlation::{CorrelationId, CORRELATION_ID_HEADER};
use crate::service::OrderService;

pub async fn correlate(
    State(service): State<OrderService>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = CorrelationId::given(
        request
            .headers()
            .get(CORRELATION_ID_HEADER)
            .map(HeaderValue::as_bytes),
    );
    let id = match (given, order_id(request.uri().path())) {
        (Some(id), _) => id,
        // An unknown order, or a database error, which the handler then meets and reports itself.
        (None, Some(order)) => service
            .correlation_of(order)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(CorrelationId::generate),
        (None, None) => CorrelationId::generate(),
    };
    let span = tracing::info_span!(
        "request",
        correlation_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    request.extensions_mut().insert(id.clone());
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
        response.headers_mut().insert(
            CORRELATION_ID_HEADER,
            HeaderValue::from_str(id.as_str()).expect("a correlation id is visible ASCII"),
        );
        response
    }
    .instrument(span)
    .await
}

/// The order a path such as `/orders/{id}` or `/orders/{id}/confirm` is about.
fn order_id(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/orders/")?;
    Uuid::parse_str(rest.split('/').next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::order_id;

    #[test]
    fn the_order_is_read_from_its_paths_only() {
        let id = "8d5c1f3e-2b4a-4c6d-9e8f-0a1b2c3d4e5f";
        for path in [
            format!("/orders/{id}"),
            format!("/orders/{id}/confirm"),
            format!("/orders/{id}/cancel"),
        ] {
            assert_eq!(order_id(&path).unwrap().to_string(), id, "{path}");
        }
        for path in ["/orders", "/orders/", "/orders/42/confirm", "/health"] {
            assert_eq!(order_id(path), None, "{path}");
        }
    }
}
