//! Why a payload is not an acceptable event: the reasons a consumer dead-letters it with.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("unknown version {version:?} of {event_type}")]
    UnknownVersion { event_type: String, version: String },
    #[error("invalid {event_type} v{version} payload: {}", list(violations))]
    InvalidPayload {
        event_type: String,
        version: u32,
        violations: Vec<Violation>,
    },
}

impl ContractError {
    /// A stable, machine-readable reason, e.g. for a dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            ContractError::UnknownEventType(_) => "unknown-event-type",
            ContractError::UnknownVersion { .. } => "unknown-version",
            ContractError::InvalidPayload { .. } => "invalid-payload",
        }
    }
}

/// One way a payload breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending value; empty for the whole payload.
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

fn list(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
