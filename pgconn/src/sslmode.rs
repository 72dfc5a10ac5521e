//! libpq's `sslmode`: whether to encrypt, and how much of the server's certificate to check.

/// The modes libpq knows, except `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// libpq's spelling, e.g. `verify-full`; `None` for anything else.
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a server that refuses TLS must be refused in turn.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

#[cfg(test)]
mod tests {
    use super::SslMode;

    #[test]
    fn parses_libpq_spellings_only() {
        for (text, mode, requires_tls) in [
            ("disable", SslMode::Disable, false),
            ("prefer", SslMode::Prefer, false),
            ("require", SslMode::Require, true),
            ("verify-ca", SslMode::VerifyCa, true),
            ("verify-full", SslMode::VerifyFull, true),
        ] {
            assert_eq!(SslMode::parse(text), Some(mode));
            assert_eq!(mode.requires_tls(), requires_tls, "{text}");
        }
        // `allow` (plain text unless the server insists on TLS) is not offered.
        for text in ["allow", "VERIFY-FULL", "verify_full", "", "true"] {
            assert_eq!(SslMode::parse(text), None, "{text}");
        }
    }
}
