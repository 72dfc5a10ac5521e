//! libpq's `target_session_attrs`: which of the servers a multi-host string names a session may
//! settle on, and the question that tells.

use std::fmt;

/// The kinds of server the relay can use. libpq's `read-only`, `standby` and `prefer-standby` are
/// refused: a standby takes no writes, and before PostgreSQL 16 it cannot decode logically either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSessionAttrs {
    /// The first server that accepts the session.
    #[default]
    Any,
    /// A server that takes writes by default: not a hot standby, `default_transaction_read_only` off.
    ReadWrite,
    /// A server not in recovery, whatever `default_transaction_read_only` says.
    Primary,
}

/// The query that tells whether a session is acceptable, the answer that says it is, and why not.
pub(crate) struct Probe {
    pub(crate) query: &'static str,
    pub(crate) accepted: &'static str,
    pub(crate) refusal: &'static str,
}

impl TargetSessionAttrs {
    /// libpq's spelling; the error says what to use instead.
    pub fn parse(value: &str) -> Result<TargetSessionAttrs, String> {
        match value {
            "any" => Ok(TargetSessionAttrs::Any),
            "read-write" => Ok(TargetSessionAttrs::ReadWrite),
            "primary" => Ok(TargetSessionAttrs::Primary),
            "read-only" | "standby" | "prefer-standby" => Err(format!(
                "target_session_attrs={value} would choose a standby, which takes no writes and (before PostgreSQL 16) cannot decode logically; use read-write or primary to follow the primary, or any"
            )),
            other => Err(format!(
                "target_session_attrs={other} is not one of any, read-write, primary"
            )),
        }
    }

    /// What libpq asks a server older than 14 (newer ones report the same at startup). Both
    /// queries work in a `replication=database` session as in an ordinary one.
    pub(crate) fn probe(self) -> Option<Probe> {
        match self {
            TargetSessionAttrs::Any => None,
            TargetSessionAttrs::ReadWrite => Some(Probe {
                query: "SHOW transaction_read_only",
                accepted: "off",
                refusal: "read-only (transaction_read_only is on)",
            }),
            TargetSessionAttrs::Primary => Some(Probe {
                query: "SELECT pg_is_in_recovery()",
                accepted: "f",
                refusal: "a standby (pg_is_in_recovery() is true)",
            }),
        }
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::Primary => "primary",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_a_relay_can_use_and_says_what_to_use_instead_of_the_rest() {
        for attrs in [
            TargetSessionAttrs::Any,
            TargetSessionAttrs::ReadWrite,
            TargetSessionAttrs::Primary,
        ] {
            assert_eq!(TargetSessionAttrs::parse(&attrs.to_string()), Ok(attrs));
        }
        for standby in ["read-only", "standby", "prefer-standby"] {
            let err = TargetSessionAttrs::parse(standby).unwrap_err();
            assert!(
                err.contains(standby) && err.contains("use read-write or primary"),
                "{err}"
            );
        }
        let err = TargetSessionAttrs::parse("readwrite").unwrap_err();
        assert!(err.contains("not one of any, read-write, primary"), "{err}");
    }
}
