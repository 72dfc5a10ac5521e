//! The CA file a TLS broker connection (`amqps://`, `rediss://`) trusts, read at each connect so a
//! replaced file takes effect at the next reconnect.

use std::path::Path;

/// The file's PEM text, or why it cannot serve: unreadable, or without a certificate (which would
/// otherwise only show as a failed handshake).
pub fn read_ca_file(key: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{key} {} holds no PEM certificate", path.display()));
    }
    Ok(text)
}
