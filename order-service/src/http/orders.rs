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
use crate::domain::OrderStatus;
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

/// `GET /orders/{orderId}`: the order with its saga's state and history.
pub async fn get(
    State(service): State<OrderService>,
    OrderId(id): OrderId,
) -> Result<Json<OrderJson>, Problem> {
    Ok(Json(OrderJson::from(&service.get(id).await?)))
}

/// `POST /orders/{orderId}/confirm`: 200 with the confirmed order and its started saga, also when it
/// already was.
pub async fn confirm(
    State(service): State<OrderService>,
    Extension(correlation): Extension<CorrelationId>,
    OrderId(id): OrderId,
) -> Result<Json<OrderJson>, Problem> {
    Ok(Json(OrderJson::from(
        &service.confirm(id, &correlation).await?,
    )))
}

/// `POST /orders/{orderId}/cancel`: 200 with the cancelled order, also when it already was; 202 with
/// the still invoiced order when its saga first has its invoice voided.
pub async fn cancel(
    State(service): State<OrderService>,
    Extension(correlation): Extension<CorrelationId>,
    OrderId(id): OrderId,
) -> Result<Response, Problem> {
    let view = service.cancel(id, &correlation).await?;
    let status = if view.order.status() == OrderStatus::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(OrderJson::from(&view))).into_response())
}
