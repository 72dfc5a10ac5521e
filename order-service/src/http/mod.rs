//! The HTTP API: routes, request-wide middleware and the server with graceful shutdown.

mod body;
mod correlation;
mod create_order;
mod health;
mod order_json;
mod orders;
mod path;
mod problem;
mod saga_json;

use std::future::Future;
use std::io;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::net::TcpListener;

use problem::Problem;

use crate::service::OrderService;

/// Larger bodies get 413; 64 KiB holds a maximal order (100 lines) several times over.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(service: OrderService) -> Router {
    Router::new()
        .route("/orders", post(orders::create))
        .route("/orders/{orderId}", get(orders::get))
        .route("/orders/{orderId}/confirm", post(orders::confirm))
        .route("/orders/{orderId}/cancel", post(orders::cancel))
        .route("/health", get(health::health))
        .fallback(|| async { Problem::not_found("No such resource.") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            correlation::correlate,
        ))
        .with_state(service)
}

/// Serves until `shutdown` completes, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    service: OrderService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}
