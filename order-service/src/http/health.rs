//! `GET /health`: ready when a pooled database connection answers.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::problem::Problem;
use crate::service::OrderService;
use pgconn::report::chain;

pub async fn health(State(service): State<OrderService>) -> Result<Json<Value>, Problem> {
    let unavailable = |error: &dyn std::error::Error| {
        // The cause goes to the log only: a health endpoint is often public.
        tracing::warn!(error = %chain(error), "database not reachable");
        Problem::unavailable("The database does not answer.")
    };
    let client = service.pool().get().await.map_err(|e| unavailable(&e))?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(json!({"status": "ok"})))
}
