//! Where the database is and how to reach it: a libpq-style URL or `key=value` string.
//!
//! tokio-postgres parses most of it, but knows only `sslmode=disable|prefer|require` and no
//! `sslrootcert`; those two are taken out here so that users can keep the connection strings they
//! already give libpq, `verify-full` included.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection};

use crate::pg::redact_url;
use crate::pg::tls::{self, ClientIdentity, SslMode, TlsError};

#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("{reason} in {url}")]
    Invalid { reason: String, url: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Database {
    pub fn parse(url: &str) -> Result<Database, DatabaseUrlError> {
        let invalid = |reason: String| DatabaseUrlError::Invalid {
            reason,
            url: redact_url(url),
        };
        let TlsOptions {
            rest,
            ssl_mode,
            root_cert,
            client_cert,
            client_key,
        } = take_tls_options(url);
        let ssl_mode = match ssl_mode {
            None => SslMode::Prefer,
            Some(value) => SslMode::parse(&value).ok_or_else(|| {
                invalid(format!(
                    "sslmode={value} is not one of disable, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        let mut config =
            tokio_postgres::Config::from_str(&rest).map_err(|e| invalid(e.to_string()))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("outbox-relay");
        }
        let identity = match (&client_cert, &client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity.into()),
        };
        let tls = tls::client_config(ssl_mode, root_cert.as_deref(), identity)?;
        Ok(Database {
            config,
            ssl_mode,
            tls,
        })
    }

    /// Opens an ordinary session, encrypted as `sslmode` says, driven on a background task.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                        ClientConfig::clone(tls),
                    ))
                    .await?;
                tokio::spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }
}

impl Database {
    /// Opens an ordinary session whose `LISTEN` notifications wake the returned receiver. Wake-ups
    /// coalesce: one pending is as good as many. The receiver closes with the session.
    pub async fn connect_listening(
        &self,
    ) -> Result<(Client, mpsc::Receiver<()>), tokio_postgres::Error> {
        let (wake, woken) = mpsc::channel(1);
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                        ClientConfig::clone(tls),
                    ))
                    .await?;
                tokio::spawn(drive_listening(connection, wake));
                client
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(drive_listening(connection, wake));
                client
            }
        };
        Ok((client, woken))
    }
}

async fn drive_listening<S, T>(mut connection: Connection<S, T>, wake: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = std::pin::pin!(futures::stream::poll_fn(
        move |cx| connection.poll_message(cx)
    ));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(_)) => {
                let _ = wake.try_send(());
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "listening connection closed");
                return;
            }
        }
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "control connection closed");
    }
}

/// The TLS options of a connection string, which tokio-postgres does not know, and the rest.
struct TlsOptions {
    rest: String,
    ssl_mode: Option<String>,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// Splits `sslmode`, `sslrootcert`, `sslcert` and `sslkey` off a URL's query or a key=value string.
fn take_tls_options(url: &str) -> TlsOptions {
    let mut ssl_mode = None;
    let (mut root_cert, mut client_cert, mut client_key) = (None, None, None);
    let mut take = |key: &str, value: &str| {
        let slot = match key {
            "sslmode" => {
                ssl_mode = Some(value.to_owned());
                return true;
            }
            "sslrootcert" => &mut root_cert,
            "sslcert" => &mut client_cert,
            "sslkey" => &mut client_key,
            _ => return false,
        };
        *slot = Some(PathBuf::from(value));
        true
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(key, &percent_decode(value))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut rest = String::new();
        for token in key_value_tokens(url) {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            let value = value.trim_matches('\'');
            if !take(key.trim(), value) {
                rest.push_str(token);
                rest.push(' ');
            }
        }
        rest.trim_end().to_owned()
    };
    TlsOptions {
        rest,
        ssl_mode,
        root_cert,
        client_cert,
        client_key,
    }
}

/// `key=value` tokens of a libpq keyword string, quotes kept so the rest parses as before.
fn key_value_tokens(s: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some(begin) = start.take() {
                    tokens.push(&s[begin..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(begin) = start {
        tokens.push(&s[begin..]);
    }
    tokens
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_libpq_tls_options_out_of_urls() {
        let options = take_tls_options("postgres://u:p@db:5432/app?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem&sslcert=/etc/c.pem&sslkey=/etc/k.pem");
        assert_eq!(options.rest, "postgres://u:p@db:5432/app?connect_timeout=5");
        assert_eq!(options.ssl_mode.as_deref(), Some("verify-full"));
        assert_eq!(options.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(options.client_cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(options.client_key, Some(PathBuf::from("/etc/k.pem")));
        let options = take_tls_options("postgres://db/app?sslmode=disable");
        assert_eq!(
            (
                options.rest.as_str(),
                options.ssl_mode.as_deref(),
                options.root_cert
            ),
            ("postgres://db/app", Some("disable"), None)
        );
    }

    #[test]
    fn takes_libpq_tls_options_out_of_keyword_strings() {
        let options = take_tls_options(
            "host=db password='a b\\' c' sslmode=verify-ca sslrootcert='/etc/ca.pem' sslkey=/k dbname=app",
        );
        assert_eq!(options.rest, "host=db password='a b\\' c' dbname=app");
        assert_eq!(options.ssl_mode.as_deref(), Some("verify-ca"));
        assert_eq!(options.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(options.client_key, Some(PathBuf::from("/k")));
    }

    #[test]
    fn a_client_key_needs_its_certificate() {
        let err = Database::parse("postgres://u:secret@h/db?sslmode=require&sslkey=/k.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslcert and sslkey"), "{err}");
        let err = Database::parse(
            "postgres://u:secret@h/db?sslmode=require&sslcert=/nonexistent.pem&sslkey=/k.pem",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/nonexistent.pem") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn parses_every_sslmode_and_rejects_others() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let db = Database::parse(&format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            assert_eq!(db.ssl_mode, expected);
            assert_eq!(db.tls.is_some(), expected != SslMode::Disable);
        }
        assert_eq!(
            Database::parse("postgres://u@h/db").unwrap().ssl_mode,
            SslMode::Prefer
        );
        let err = Database::parse("postgres://u:secret@h/db?sslmode=strict")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode=strict") && !err.contains("secret"),
            "{err}"
        );
        let err =
            Database::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem")
                .unwrap_err()
                .to_string();
        assert!(err.contains("/nonexistent.pem"), "{err}");
    }
}
