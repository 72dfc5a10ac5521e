//! The correlation id: taken from the caller's `X-Correlation-Id` or generated, it ties the request's
//! log lines, its response and the events it caused together.

use std::fmt;

use uuid::Uuid;

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// Longer ids are replaced rather than stored, to bound what a caller can put into every event.
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// The caller's id if it is usable (1 to 128 visible ASCII characters), else a new UUID.
    pub fn from_header(value: Option<&[u8]>) -> CorrelationId {
        Self::given(value).unwrap_or_else(Self::generate)
    }

    /// The caller's id if it is usable, else `None`.
    pub fn given(value: Option<&[u8]>) -> Option<CorrelationId> {
        value
            .filter(|v| !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(u8::is_ascii_graphic))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|v| CorrelationId(v.to_owned()))
    }

    pub fn generate() -> CorrelationId {
        CorrelationId(Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
