//! Where the database is and how to reach it: a libpq-style URL or `key=value` string.
//!
//! tokio-postgres parses most of it, but knows only `sslmode=disable|prefer|require` and no
//! `sslrootcert`, `sslcert` or `sslkey`; those are taken out here so that users can keep the
//! connection strings they already give libpq, `verify-full` included.

use std::str::FromStr;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::options::{take_tls_options, TlsOptions};
use crate::redact::redact_url;
use crate::sslmode::SslMode;
use crate::tls::{self, ClientIdentity, TlsError};

#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    /// `None` with `sslmode=disable`.
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
    /// Parses `url` and reads the certificate files it names; error messages never hold its password.
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

    /// Names the sessions `name` in `pg_stat_activity` unless the URL chose a name.
    pub fn with_default_application_name(mut self, name: &str) -> Database {
        if self.config.get_application_name().is_none() {
            self.config.application_name(name);
        }
        self
    }

    /// The tokio-postgres TLS connector for a pool or a `connect` of one's own; `None` with
    /// `sslmode=disable`, where `tokio_postgres::NoTls` is the one to pass.
    pub fn rustls_connect(&self) -> Option<MakeRustlsConnect> {
        self.tls
            .as_ref()
            .map(|tls| MakeRustlsConnect::new(ClientConfig::clone(tls)))
    }

    /// Opens an ordinary session, encrypted as `sslmode` says, driven on a background task.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let client = match self.rustls_connect() {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls).await?;
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

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "control connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn require_with_a_root_certificate_checks_the_chain() {
        // libpq reads the root certificate for `require` too, so a missing one is an error.
        let err = Database::parse("postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent.pem")
            .unwrap_err();
        assert!(
            matches!(err, DatabaseUrlError::Tls(TlsError::RootCert { .. })),
            "{err}"
        );
    }

    #[test]
    fn a_root_certificate_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Database::parse(&format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap_err();
        assert!(
            matches!(err, DatabaseUrlError::Tls(TlsError::NoRoots("verify-ca"))),
            "{err}"
        );
    }

    #[test]
    fn keyword_strings_keep_their_password_out_of_errors() {
        let err = Database::parse("host=h user=u password='s3cret pw' sslmode=verify-everything")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode=verify-everything") && !err.contains("s3cret"),
            "{err}"
        );
        let db = Database::parse("host=h user=u password=s3cret sslmode=disable dbname=app")
            .unwrap()
            .with_default_application_name("svc");
        assert_eq!(db.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(db.config.get_dbname(), Some("app"));
        assert_eq!(db.config.get_application_name(), Some("svc"));
        assert!(db.tls.is_none());
        assert!(!format!("{db:?}").contains("s3cret"));
    }

    #[test]
    fn the_url_chooses_the_application_name_first() {
        let db = Database::parse("postgres://u@h/db?application_name=mine")
            .unwrap()
            .with_default_application_name("svc");
        assert_eq!(db.config.get_application_name(), Some("mine"));
    }
}
