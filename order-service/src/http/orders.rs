//! The `/orders` endpoints.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::body::JsonBody;
use super::create_order;
use super::order_json::OrderJson;
use super::path::OrderId;
use super::problem::Problem;
use crate::correlation::CorrelationId;
use crate::service::OrderService;

/// `POST /orders`: 201 with the order and its Location.
pub async fn create(
    State(service): State<OrderService>,
    Extension(correlation): Extension<CorrelationId>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let request = create_order::parse(&body).map_err(Problem::invalid_order)?;
    let order = service
        .place(request.customer_id, request.lines, &correlation)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/orders/{}", order.id()))],
        Json(OrderJson::from(&order)),
    )
        .into_response())
}

/// `GET /orders/{orderId}`.
pub async fn get(
    State(service): State<OrderService>,
    OrderId(id): OrderId,
) -> Result<Json<OrderJson>, Problem> {
    Ok(Json(OrderJson::from(&service.get(id).await?)))
}

/// `POST /orders/{orderId}/confirm`: 200 with the confirmed order, also when it already was.
pub async fn confirm(
    State(service): State<OrderService>,
    Extension(correlation): Extension<CorrelationId>,
    OrderId(id): OrderId,
) -> Result<Json<OrderJson>, Problem> {
    Ok(Json(OrderJson::from(
        &service.confirm(id, &correlation).await?,
    )))
}

/// `POST /orders/{orderId}/cancel`: 200 with the cancelled order, also when it already was.
pub async fn cancel(
    State(service): State<OrderService>,
    Extension(correlation): Extension<CorrelationId>,
    OrderId(id): OrderId,
) -> Result<Json<OrderJson>, Problem> {
    Ok(Json(OrderJson::from(
        &service.cancel(id, &correlation).await?,
    )))
}
