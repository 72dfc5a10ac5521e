//! The HTTP API: `GET /invoices?orderId=`, `GET /invoices/{id}` and `GET /health`. Every error is
//! `application/problem+json`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::invoice::Invoice;
use crate::problem::Problem;
use crate::store::{Store, StoreError};

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/invoices", get(list_invoices))
        .route("/invoices/{id}", get(get_invoice))
        .route("/health", get(health))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no such resource") })
        // Without this, a wrong method gets axum's bare 405 instead of a problem document.
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this resource only answers GET and HEAD",
            )
        })
        .with_state(store)
}

/// Serves until `shutdown` is cancelled, then lets requests in progress finish.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn parse_uuid(name: &str, value: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(value).map_err(|e| Problem::invalid_param(name, format!("not a UUID: {e}")))
}

/// Details go to the log, not to the client.
fn internal(error: StoreError) -> Problem {
    tracing::error!(%error, "request failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the invoice database is unavailable",
    )
}

async fn get_invoice(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Invoice>, Problem> {
    let Path(id) = path.map_err(|e| Problem::invalid_param("id", e.body_text()))?;
    let id = parse_uuid("id", &id)?;
    store
        .invoice(id)
        .await
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no invoice {id}")))
}

/// `orderId` is required and the only parameter; an order without an invoice yet gives `[]`.
async fn list_invoices(
    State(store): State<Store>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Vec<Invoice>>, Problem> {
    let Query(params) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut order_id = None;
    for (name, value) in &params {
        match name.as_str() {
            "orderId" if order_id.is_none() => order_id = Some(parse_uuid(name, value)?),
            "orderId" => return Err(Problem::invalid_param(name, "given more than once")),
            _ => return Err(Problem::invalid_param(name, "unknown query parameter")),
        }
    }
    let order_id = order_id.ok_or_else(|| Problem::invalid_param("orderId", "required"))?;
    store
        .invoices_for_order(order_id)
        .await
        .map(Json)
        .map_err(internal)
}

async fn health(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => Json(json!({"status": "UP"})).into_response(),
        Err(error) => internal(error).into_response(),
    }
}
