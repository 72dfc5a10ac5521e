//! Where the database is and how to reach it: a libpq-style URL or `key=value` string.
//!
//! tokio-postgres parses most of it, but knows only `sslmode=disable|prefer|require`, no
//! `sslrootcert`, `sslcert` or `sslkey`, and no `target_session_attrs=primary`; those are taken out
//! here so that users can keep the connection strings they already give libpq, `verify-full` and
//! several hosts included.

use std::str::FromStr;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio_postgres::config::{LoadBalanceHosts, TargetSessionAttrs as TokioAttrs};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connect::ConnectError;
use crate::hosts::{servers, Endpoint, Server};
use crate::options::{take_libpq_options, LibpqOptions};
use crate::redact::redact_url;
use crate::session_attrs::TargetSessionAttrs;
use crate::sslmode::SslMode;
use crate::tls::{self, ClientIdentity, TlsError};

#[derive(Clone)]
pub struct Database {
    /// Everything the string says; a pool connects with it as it is (see `deadpool_manager`).
    pub config: tokio_postgres::Config,
    /// The hosts of `config` with their ports, in the order they are tried.
    pub servers: Vec<Server>,
    pub target_session_attrs: TargetSessionAttrs,
    pub ssl_mode: SslMode,
    /// `None` with `sslmode=disable`.
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("servers", &self.servers)
            .field("target_session_attrs", &self.target_session_attrs)
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
        let LibpqOptions {
            rest,
            target_session_attrs,
            ssl_mode,
            root_cert,
            client_cert,
            client_key,
        } = take_libpq_options(url);
        let target_session_attrs = match target_session_attrs {
            None => TargetSessionAttrs::Any,
            Some(value) => TargetSessionAttrs::parse(&value).map_err(invalid)?,
        };
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
        if config.get_load_balance_hosts() == LoadBalanceHosts::Random {
            return Err(invalid(
                "load_balance_hosts=random spreads sessions over hosts, and the relay needs the primary: remove it and use target_session_attrs=read-write".into(),
            ));
        }
        // Pools connect through tokio-postgres, which asks only the read-write question; a primary
        // that refuses writes is of no use to a service that writes anyway.
        config.target_session_attrs(match target_session_attrs {
            TargetSessionAttrs::Any => TokioAttrs::Any,
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary => TokioAttrs::ReadWrite,
        });
        let servers = servers(&config).map_err(invalid)?;
        let identity = match (&client_cert, &client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity.into()),
        };
        let tls = tls::client_config(ssl_mode, root_cert.as_deref(), identity)?;
        Ok(Database {
            config,
            servers,
            target_session_attrs,
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

    /// Opens an ordinary session on the first acceptable server, encrypted as `sslmode` says,
    /// driven on a background task.
    pub async fn connect(&self) -> Result<Client, ConnectError<tokio_postgres::Error>> {
        self.connect_with(|endpoint| async move {
            let config = self.endpoint_config(&endpoint);
            let client = match self.rustls_connect() {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(drive(connection));
                    client
                }
                None => {
                    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(drive(connection));
                    client
                }
            };
            Ok(client)
        })
        .await
    }

    /// The tokio-postgres configuration for a session on `endpoint` alone: every setting of the
    /// string, one host, and no question of its own (`connect_with` asks it).
    pub fn endpoint_config(&self, endpoint: &Endpoint) -> tokio_postgres::Config {
        let from = &self.config;
        let mut config = tokio_postgres::Config::new();
        if let Some(user) = from.get_user() {
            config.user(user);
        }
        if let Some(password) = from.get_password() {
            config.password(password);
        }
        if let Some(dbname) = from.get_dbname() {
            config.dbname(dbname);
        }
        if let Some(options) = from.get_options() {
            config.options(options);
        }
        if let Some(name) = from.get_application_name() {
            config.application_name(name);
        }
        if let Some(timeout) = from.get_connect_timeout() {
            config.connect_timeout(*timeout);
        }
        if let Some(timeout) = from.get_tcp_user_timeout() {
            config.tcp_user_timeout(*timeout);
        }
        if let Some(interval) = from.get_keepalives_interval() {
            config.keepalives_interval(interval);
        }
        if let Some(retries) = from.get_keepalives_retries() {
            config.keepalives_retries(retries);
        }
        config
            .ssl_mode(from.get_ssl_mode())
            .ssl_negotiation(from.get_ssl_negotiation())
            .keepalives(from.get_keepalives())
            .keepalives_idle(from.get_keepalives_idle())
            .channel_binding(from.get_channel_binding())
            .port(endpoint.server.port);
        match &endpoint.server.host {
            tokio_postgres::config::Host::Tcp(name) => config.host(name),
            tokio_postgres::config::Host::Unix(dir) => config.host_path(dir),
        };
        if let Some(addr) = endpoint.addr {
            config.hostaddr(addr);
        }
        config
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

    #[test]
    fn parses_several_hosts_and_what_kind_of_server_to_settle_on() {
        let db = Database::parse(
            "postgres://u:secret@h1:5432,h2:5433/db?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        let servers: Vec<String> = db.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["h1:5432", "h2:5433"]);
        assert_eq!(db.target_session_attrs, TargetSessionAttrs::ReadWrite);
        assert_eq!(db.config.get_target_session_attrs(), TokioAttrs::ReadWrite);
        let db =
            Database::parse("host=h1,h2 port=5432,5433 dbname=db target_session_attrs=primary")
                .unwrap();
        assert_eq!(db.servers.len(), 2);
        assert_eq!(db.target_session_attrs, TargetSessionAttrs::Primary);
        // The pools' tokio-postgres asks the read-write question for `primary`.
        assert_eq!(db.config.get_target_session_attrs(), TokioAttrs::ReadWrite);
        let db = Database::parse("postgres://u@h1,h2/db").unwrap();
        assert_eq!(db.target_session_attrs, TargetSessionAttrs::Any);
    }

    #[test]
    fn refuses_what_would_not_find_the_primary_saying_what_to_use() {
        for (url, expected) in [
            (
                "postgres://u:secret@h1,h2/db?target_session_attrs=standby",
                "use read-write or primary",
            ),
            (
                "host=h1,h2 password=secret target_session_attrs=prefer-standby",
                "use read-write or primary",
            ),
            (
                "postgres://u:secret@h1,h2/db?target_session_attrs=rw",
                "not one of any, read-write, primary",
            ),
            (
                "host=h1,h2,h3 port=1,2 password=secret",
                "give one port for all hosts or one per host",
            ),
            (
                "postgres://u:secret@h1,h2/db?load_balance_hosts=random",
                "target_session_attrs=read-write",
            ),
        ] {
            let err = Database::parse(url).unwrap_err().to_string();
            assert!(
                err.contains(expected) && !err.contains("secret"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn a_session_on_one_endpoint_keeps_every_other_setting() {
        let db = Database::parse(
            "host=h1,h2 port=5432,5433 user=u password=pw dbname=app options='-c x=1' application_name=a connect_timeout=3 tcp_user_timeout=4 keepalives=1 keepalives_idle=5 keepalives_interval=6 keepalives_retries=7 channel_binding=require target_session_attrs=read-write sslmode=require",
        )
        .unwrap();
        let endpoint = Endpoint {
            server: db.servers[1].clone(),
            addr: Some("10.0.0.2".parse().unwrap()),
        };
        let expected = tokio_postgres::Config::from_str(
            "host=h2 hostaddr=10.0.0.2 port=5433 user=u password=pw dbname=app options='-c x=1' application_name=a connect_timeout=3 tcp_user_timeout=4 keepalives=1 keepalives_idle=5 keepalives_interval=6 keepalives_retries=7 channel_binding=require sslmode=require",
        )
        .unwrap();
        let config = db.endpoint_config(&endpoint);
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
        assert_eq!(config.get_password(), Some(&b"pw"[..]));
    }
}
