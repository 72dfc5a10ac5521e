//! Settling on a server of a multi-host string the way libpq does: hosts in order, every address a
//! name resolves to, `connect_timeout` for each attempt, and `target_session_attrs` asked of the
//! session before it is used. Every session of the relay, its replication session included, goes
//! through [`Database::connect_with`]; each kind brings only its way to open a session on one
//! endpoint.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::database::Database;
use crate::hosts::Endpoint;
use crate::report::chain;
use crate::session_attrs::TargetSessionAttrs;

/// Without `connect_timeout`, an attempt on a host that does not answer (a crashed primary's
/// address) gives up after this long, so that the next host gets its turn.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A session that can answer the `target_session_attrs` question.
pub trait Session: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The first column of the first row a simple query returns, as text.
    fn query_value(
        &mut self,
        query: &'static str,
    ) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send;
}

impl Session for Client {
    type Error = tokio_postgres::Error;

    async fn query_value(&mut self, query: &'static str) -> Result<Option<String>, Self::Error> {
        let messages = self.simple_query(query).await?;
        Ok(messages.iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        }))
    }
}

/// Why one endpoint was not used.
#[derive(Debug)]
pub enum Failure<E> {
    /// The name did not resolve.
    Resolve(std::io::Error),
    /// Connecting, TLS, authentication or the question failed.
    Session(E),
    TimedOut(Duration),
    /// The session works but the server is not of the kind `target_session_attrs` asks for.
    Refused(&'static str),
}

/// An endpoint tried, or a host whose name did not resolve, and why it was not used.
#[derive(Debug)]
pub struct Attempt<E> {
    /// `host:port`, with the address dialled when it differs; never a password.
    pub server: String,
    pub failure: Failure<E>,
}

/// No server of the string gave an acceptable session: every one tried, and why.
#[derive(Debug)]
pub struct ConnectError<E> {
    pub target_session_attrs: TargetSessionAttrs,
    pub attempts: Vec<Attempt<E>>,
}

impl<E> ConnectError<E> {
    /// Whether every attempt failed with a session error for which `fatal` holds: a setting wrong
    /// for every server (a password, a role) rather than a server down or in the wrong role.
    pub fn fatal_everywhere(&self, fatal: impl Fn(&E) -> bool) -> bool {
        !self.attempts.is_empty()
            && self
                .attempts
                .iter()
                .all(|a| matches!(&a.failure, Failure::Session(e) if fatal(e)))
    }

    /// The session errors, in the order the servers were tried.
    pub fn session_errors(&self) -> impl Iterator<Item = &E> {
        self.attempts.iter().filter_map(|a| match &a.failure {
            Failure::Session(e) => Some(e),
            _ => None,
        })
    }
}

impl<E: std::error::Error> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Resolve(e) => write!(f, "cannot resolve the host name: {e}"),
            Failure::Session(e) => f.write_str(&chain(e)),
            Failure::TimedOut(after) => {
                write!(
                    f,
                    "no session within {}s (connect_timeout)",
                    after.as_secs_f32()
                )
            }
            Failure::Refused(why) => f.write_str(why),
        }
    }
}

/// Attempts as `server: why; server: why`.
struct Tried<'a, E>(&'a [Attempt<E>]);

impl<E: std::error::Error> fmt::Display for Tried<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}{}: {}", attempt.server, attempt.failure)?;
        }
        Ok(())
    }
}

impl<E: std::error::Error> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.attempts.as_slice() {
            [] => f.write_str("the database URL names no host"),
            // One server and no question asked: its own error, as before multi-host strings.
            [_] if self.target_session_attrs == TargetSessionAttrs::Any => {
                Tried(&self.attempts).fmt(f)
            }
            attempts => write!(
                f,
                "no server is acceptable for target_session_attrs={}; tried {}",
                self.target_session_attrs,
                Tried(attempts)
            ),
        }
    }
}

impl<E: std::error::Error> std::error::Error for ConnectError<E> {}

impl Database {
    /// The first acceptable session on the servers of the string, in order, each opened by `open`.
    pub async fn connect_with<S, F, Fut>(&self, mut open: F) -> Result<S, ConnectError<S::Error>>
    where
        S: Session,
        F: FnMut(Endpoint) -> Fut,
        Fut: Future<Output = Result<S, S::Error>>,
    {
        let timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let probe = self.target_session_attrs.probe();
        let mut attempts = Vec::new();
        for server in &self.servers {
            let endpoints = match tokio::time::timeout(timeout, server.endpoints()).await {
                Ok(Ok(endpoints)) => endpoints,
                Ok(Err(e)) => {
                    attempts.push(Attempt {
                        server: server.to_string(),
                        failure: Failure::Resolve(e),
                    });
                    continue;
                }
                Err(_) => {
                    attempts.push(Attempt {
                        server: server.to_string(),
                        failure: Failure::TimedOut(timeout),
                    });
                    continue;
                }
            };
            for endpoint in endpoints {
                let label = endpoint.to_string();
                let opening = open(endpoint);
                let attempt = async {
                    let mut session = opening.await.map_err(Failure::Session)?;
                    if let Some(probe) = &probe {
                        let answer = session
                            .query_value(probe.query)
                            .await
                            .map_err(Failure::Session)?;
                        if answer.as_deref() != Some(probe.accepted) {
                            return Err(Failure::Refused(probe.refusal));
                        }
                    }
                    Ok(session)
                };
                let failure = match tokio::time::timeout(timeout, attempt).await {
                    Ok(Ok(session)) => {
                        if !attempts.is_empty() {
                            tracing::debug!(server = %label, skipped = %Tried(&attempts), "connected to a later host of the database URL");
                        }
                        return Ok(session);
                    }
                    Ok(Err(failure)) => failure,
                    Err(_) => Failure::TimedOut(timeout),
                };
                tracing::debug!(server = %label, %failure, "host not used");
                attempts.push(Attempt {
                    server: label,
                    failure,
                });
            }
        }
        Err(ConnectError {
            target_session_attrs: self.target_session_attrs,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn attempt(server: &str, failure: Failure<io::Error>) -> Attempt<io::Error> {
        Attempt {
            server: server.to_owned(),
            failure,
        }
    }

    #[test]
    fn names_every_server_tried_and_why() {
        let error = ConnectError {
            target_session_attrs: TargetSessionAttrs::ReadWrite,
            attempts: vec![
                attempt(
                    "db1:5432",
                    Failure::Session(io::Error::other("connection refused")),
                ),
                attempt(
                    "db2:5432 (10.0.0.2)",
                    Failure::Refused("read-only (transaction_read_only is on)"),
                ),
                attempt("db3:5432", Failure::TimedOut(Duration::from_secs(3))),
            ],
        };
        assert_eq!(
            error.to_string(),
            "no server is acceptable for target_session_attrs=read-write; tried db1:5432: connection refused; db2:5432 (10.0.0.2): read-only (transaction_read_only is on); db3:5432: no session within 3s (connect_timeout)"
        );
        assert!(!error.fatal_everywhere(|_| true), "a refusal may pass");
        let one = ConnectError {
            target_session_attrs: TargetSessionAttrs::Any,
            attempts: vec![attempt(
                "db1:5432",
                Failure::Session(io::Error::other("password authentication failed")),
            )],
        };
        assert_eq!(one.to_string(), "db1:5432: password authentication failed");
        assert!(one.fatal_everywhere(|_| true));
        assert!(!one.fatal_everywhere(|_| false));
        let none = ConnectError::<io::Error> {
            target_session_attrs: TargetSessionAttrs::Any,
            attempts: Vec::new(),
        };
        assert_eq!(none.to_string(), "the database URL names no host");
        assert!(!none.fatal_everywhere(|_| true));
    }
}
