//! Why a message is dead-lettered instead of invoiced: a stable code for machines and a detail for
//! people, both carried on the dead letter.

use contracts::ContractError;

/// Header (Kafka, AMQP) or field (Redis) of a dead letter holding [`Rejection::code`].
pub const REASON_HEADER: &str = "dlq_reason";
/// Header or field of a dead letter holding [`Rejection::detail`].
pub const DETAIL_HEADER: &str = "dlq_detail";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// e.g. `unknown-version`, `invalid-payload`, `invalid-event-id`.
    pub code: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

impl From<ContractError> for Rejection {
    fn from(error: ContractError) -> Rejection {
        Rejection::new(error.reason(), error.to_string())
    }
}
