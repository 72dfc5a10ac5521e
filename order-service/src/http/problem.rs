//! Error responses as RFC 9457 problem details (`application/problem+json`), with an `errors` array that
//! names each bad field by JSON pointer (body) or name (path parameter).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;
use crate::service::ServiceError;
use pgconn::report;

const TYPE_BASE: &str = "https://outbox-relay.example/problems/";

/// One bad input: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// A value in the request body, by JSON pointer (RFC 6901), e.g. `/lines/0/quantity`.
    pub fn at(pointer: impl Into<String>, detail: impl ToString) -> FieldError {
        FieldError {
            pointer: Some(pointer.into()),
            parameter: None,
            detail: detail.to_string(),
        }
    }

    pub fn parameter(name: &str, detail: impl ToString) -> FieldError {
        FieldError {
            pointer: None,
            parameter: Some(name.to_owned()),
            detail: detail.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    #[serde(serialize_with = "serialize_status")]
    status: StatusCode,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

fn serialize_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &'static str, detail: impl ToString) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title,
            status,
            detail: detail.to_string(),
            errors: Vec::new(),
        }
    }

    pub fn malformed_json(detail: impl ToString) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            detail,
        )
    }

    /// A JSON body that does not describe a valid order.
    pub fn invalid_order(errors: Vec<FieldError>) -> Problem {
        Problem {
            errors,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-order",
                "Invalid order",
                "The request body is JSON but not a valid order; see errors.",
            )
        }
    }

    pub fn invalid_parameter(error: FieldError) -> Problem {
        Problem {
            errors: vec![error],
            ..Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid path parameter",
                "A path parameter is malformed; see errors.",
            )
        }
    }

    pub fn unsupported_media_type() -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "The request body must be JSON, sent with Content-Type: application/json.",
        )
    }

    pub fn body_too_large(limit: usize) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("The request body exceeds {limit} bytes."),
        )
    }

    pub fn unreadable_body(detail: impl ToString) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "Unreadable request body",
            detail,
        )
    }

    pub fn not_found(detail: impl ToString) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed() -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "This resource does not support the request method.",
        )
    }

    pub fn unavailable(detail: impl ToString) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// Details stay in the log, under the request's correlation id, not in the response.
    fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "The request failed on our side; the log has details under this request's correlation id.",
        )
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Problem {
        match error {
            ServiceError::NotFound(_) | ServiceError::NoSaga(_) => Problem::not_found(error),
            ServiceError::Rejected(
                rule @ (DomainError::NotConfirmable(_)
                | DomainError::NotCancellable(_)
                | DomainError::NotInvoiceable(_)),
            ) => Problem::new(
                StatusCode::CONFLICT,
                "invalid-state",
                "Order state conflict",
                rule,
            ),
            ServiceError::Rejected(rule) => Problem::invalid_order(vec![FieldError::at(
                super::create_order::pointer_of(&rule),
                &rule,
            )]),
            ServiceError::Contended(_) => Problem::new(
                StatusCode::CONFLICT,
                "concurrent-modification",
                "Concurrent modification",
                error,
            ),
            ServiceError::Store(_) => {
                tracing::error!(error = %report::chain(&error), "request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
