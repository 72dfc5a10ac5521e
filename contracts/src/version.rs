//! Parsing of the version header into a major version number.

use crate::ContractError;

/// The major version a header value names. A missing header means version 1, since events written before
/// the header existed are v1; anything but a plain decimal number is an unknown version.
pub(crate) fn major(event_type: &str, header: Option<&str>) -> Result<u32, ContractError> {
    let Some(value) = header else {
        return Ok(1);
    };
    let unknown = || ContractError::UnknownVersion {
        event_type: event_type.to_owned(),
        version: value.to_owned(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    value.parse().map_err(|_| unknown())
}
