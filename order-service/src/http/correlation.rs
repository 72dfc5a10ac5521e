//! Middleware that gives each request its correlation id: in the request's extensions for the
//! handlers, on a tracing span around the whole request so every log line carries it, and echoed in the
//! response.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::correlation::{CorrelationId, CORRELATION_ID_HEADER};

pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = CorrelationId::from_header(
        request
            .headers()
            .get(CORRELATION_ID_HEADER)
            .map(HeaderValue::as_bytes),
    );
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
