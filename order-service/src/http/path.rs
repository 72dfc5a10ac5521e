//! The `{orderId}` path parameter, which must be a UUID.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use super::create_order::parse_uuid;
use super::problem::{FieldError, Problem};

pub struct OrderId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<OrderId, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                Problem::invalid_parameter(FieldError::parameter("orderId", rejection.body_text()))
            })?;
        parse_uuid(&raw)
            .map(OrderId)
            .map_err(|detail| Problem::invalid_parameter(FieldError::parameter("orderId", detail)))
    }
}
