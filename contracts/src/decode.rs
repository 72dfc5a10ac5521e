//! The steps every decode takes: version header to major version, text to JSON, JSON against the
//! schema of that version, and then JSON to a typed event.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{schema, ContractError, Violation};

/// A payload that passed the schema of its event type and major version.
pub(crate) struct Checked<'a> {
    event_type: &'a str,
    pub(crate) major: u32,
    value: Value,
}

pub(crate) fn check<'a>(
    event_type: &'a str,
    version: Option<&str>,
    payload: &str,
) -> Result<Checked<'a>, ContractError> {
    let (major, validator) = schema::validator(event_type, version)?;
    let value: Value = serde_json::from_str(payload)
        .map_err(|e| invalid(event_type, major, String::new(), format!("not JSON: {e}")))?;
    let violations: Vec<Violation> = validator
        .iter_errors(&value)
        .map(|e| Violation {
            pointer: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect();
    if !violations.is_empty() {
        return Err(ContractError::InvalidPayload {
            event_type: event_type.to_owned(),
            version: major,
            violations,
        });
    }
    Ok(Checked {
        event_type,
        major,
        value,
    })
}

impl Checked<'_> {
    /// What the schema cannot say (e.g. a quantity beyond `u32`) still ends up as an invalid payload.
    pub(crate) fn into_typed<T: DeserializeOwned>(self) -> Result<T, ContractError> {
        serde_json::from_value(self.value)
            .map_err(|e| invalid(self.event_type, self.major, String::new(), e.to_string()))
    }
}

fn invalid(event_type: &str, major: u32, pointer: String, message: String) -> ContractError {
    ContractError::InvalidPayload {
        event_type: event_type.to_owned(),
        version: major,
        violations: vec![Violation { pointer, message }],
    }
}
