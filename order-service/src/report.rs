//! Errors as one log-friendly line with their sources, since the top-level message alone often hides
//! the cause (tokio-postgres says just "db error").

use std::error::Error;

/// E.g. `no database connection: error connecting to server: Connection refused (os error 111)`.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
