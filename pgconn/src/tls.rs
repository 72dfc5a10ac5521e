//! The rustls client configuration for a PostgreSQL session, with libpq's `sslmode` semantics:
//! `prefer` and `require` encrypt without checking the server's identity (unless a root certificate
//! is given), `verify-ca` checks the chain, `verify-full` the chain and the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, Error, RootCertStore};
use tlsfiles::pem;

use crate::sslmode::SslMode;
use crate::verifier::{ChainOnly, EncryptOnly};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCert { path: PathBuf, reason: String },
    #[error(
        "sslmode={0} needs root certificates, and neither sslrootcert nor the system store has any"
    )]
    NoRoots(&'static str),
    #[error("cannot use the client certificate {path}: {reason}")]
    ClientCert { path: PathBuf, reason: String },
    #[error("sslcert and sslkey go together: set both, or neither")]
    HalfIdentity,
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] Error),
}

/// A client certificate chain and its key (`sslcert`, `sslkey`), for servers that ask for one.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// The rustls client configuration for `mode`, or `None` when TLS is disabled.
pub fn client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    // libpq: with a root certificate present, `require` behaves like `verify-ca`.
    let mode = match (mode, root_cert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (mode, _) => mode,
    };
    let builder = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let label = if mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            };
            let roots = Arc::new(root_store(root_cert, label)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::General(e.to_string()))?;
            let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (chain, key) = load_identity(identity)?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Some(Arc::new(config)))
}

fn load_identity(
    identity: ClientIdentity<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let error = |path: &Path, reason: String| TlsError::ClientCert {
        path: path.to_owned(),
        reason,
    };
    let read = |path: &Path| std::fs::read(path).map_err(|e| error(path, e.to_string()));
    let chain = pem::certificates(&read(identity.cert)?)
        .map_err(|e| error(identity.cert, e.to_string()))?;
    let key =
        pem::private_key(&read(identity.key)?).map_err(|e| error(identity.key, e.to_string()))?;
    Ok((chain, key))
}

fn root_store(root_cert: Option<&Path>, mode: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let error = |reason: String| TlsError::RootCert {
                path: path.to_owned(),
                reason,
            };
            let text = std::fs::read(path).map_err(|e| error(e.to_string()))?;
            // A file without certificates is reported below, as having no roots to trust.
            let certificates = match pem::certificates(&text) {
                Err(pem::PemError::NoCertificate) => Vec::new(),
                other => other.map_err(|e| error(e.to_string()))?,
            };
            for cert in certificates {
                roots.add(cert).map_err(|e| error(e.to_string()))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots(mode));
    }
    Ok(roots)
}
