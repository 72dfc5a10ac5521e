//! The files behind a broker's TLS connection (`rediss://`, `amqps://`): the CA certificates to trust
//! and an optional client certificate with its key, all PEM.
//!
//! They are read and checked when the configuration loads, so a wrong path or a file without a
//! certificate stops the relay at start naming its key instead of surfacing as a handshake failure
//! that is retried forever. Each connect reads them again, so a replaced file takes effect at the
//! next reconnect. The `redis` and `lapin` features turn the material into those clients' settings.

pub mod pem;

use std::path::Path;

/// The configuration keys of one sink's TLS settings, for error messages.
pub struct TlsKeys {
    pub url: &'static str,
    /// The URL scheme that turns TLS on, e.g. `rediss://`.
    pub tls_scheme: &'static str,
    pub ca_file: &'static str,
    pub client_cert_file: &'static str,
    pub client_key_file: &'static str,
}

/// The paths as configured.
pub struct TlsFiles<'a> {
    pub ca_file: Option<&'a Path>,
    pub client_cert_file: Option<&'a Path>,
    pub client_key_file: Option<&'a Path>,
}

/// The files' contents, checked to hold what they should.
#[derive(Default)]
pub struct TlsMaterial {
    /// The CA certificates, PEM.
    pub ca: Option<String>,
    pub client: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, PEM.
pub struct ClientIdentity {
    pub cert: String,
    pub key: String,
}

impl TlsMaterial {
    /// A client for `url` presenting this material; without any, the URL alone decides (a
    /// `rediss://` URL then trusts the system roots).
    #[cfg(feature = "redis")]
    pub fn redis_client(self, url: &str) -> redis::RedisResult<redis::Client> {
        if self.ca.is_none() && self.client.is_none() {
            return redis::Client::open(url);
        }
        let certificates = redis::TlsCertificates {
            client_tls: self.client.map(|identity| redis::ClientTlsConfig {
                client_cert: identity.cert.into_bytes(),
                client_key: identity.key.into_bytes(),
            }),
            root_cert: self.ca.map(String::into_bytes),
        };
        redis::Client::build_with_tls(url, certificates)
    }

    /// lapin's TLS settings, which it uses only for `amqps://`: the CA is trusted besides the
    /// system roots.
    #[cfg(feature = "lapin")]
    pub fn lapin_config(self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: self
                .client
                .map(|identity| lapin::tcp::OwnedIdentity::PKCS8 {
                    pem: identity.cert.into_bytes(),
                    key: identity.key.into_bytes(),
                }),
            cert_chain: self.ca,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid value for `{key}`: {reason}")]
pub struct TlsFileError {
    pub key: &'static str,
    pub reason: String,
}

/// Reads the files for a sink whose URL is `url`.
pub fn load(keys: &TlsKeys, url: &str, files: &TlsFiles) -> Result<TlsMaterial, TlsFileError> {
    let set = [
        (keys.ca_file, files.ca_file),
        (keys.client_cert_file, files.client_cert_file),
        (keys.client_key_file, files.client_key_file),
    ];
    // A CA file next to a plain URL suggests the operator believes the connection is encrypted.
    if !url.starts_with(keys.tls_scheme) {
        return match set.iter().find(|(_, path)| path.is_some()) {
            Some((key, _)) => Err(TlsFileError {
                key,
                reason: format!(
                    "TLS files need a {} URL in `{}`; the URL given connects without TLS",
                    keys.tls_scheme, keys.url
                ),
            }),
            None => Ok(TlsMaterial::default()),
        };
    }
    let ca = files
        .ca_file
        .map(|path| read_pem(keys.ca_file, path, Pem::Certificates))
        .transpose()?;
    let client = match (files.client_cert_file, files.client_key_file) {
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert: read_pem(keys.client_cert_file, cert, Pem::Certificates)?,
            key: read_pem(keys.client_key_file, key, Pem::PrivateKey)?,
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            let missing = if files.client_cert_file.is_none() {
                keys.client_cert_file
            } else {
                keys.client_key_file
            };
            return Err(TlsFileError {
                key: missing,
                reason: format!(
                    "required with `{}` and `{}`: a client certificate needs its key",
                    keys.client_cert_file, keys.client_key_file
                ),
            });
        }
    };
    Ok(TlsMaterial { ca, client })
}

/// Who the connection trusts, for error messages: TLS failures are hard to tell apart otherwise.
pub fn trust(ca_file: Option<&Path>, with_system_roots: bool) -> String {
    match (ca_file, with_system_roots) {
        (Some(path), false) => format!("TLS, trusting the CA in {}", path.display()),
        (Some(path), true) => format!(
            "TLS, trusting the system roots and the CA in {}",
            path.display()
        ),
        (None, _) => "TLS, trusting the system roots".to_owned(),
    }
}

enum Pem {
    Certificates,
    PrivateKey,
}

fn read_pem(key: &'static str, path: &Path, expected: Pem) -> Result<String, TlsFileError> {
    let error = |reason: String| TlsFileError {
        key,
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let found = match expected {
        Pem::Certificates => pem::certificates(text.as_bytes()).map(drop),
        Pem::PrivateKey => pem::private_key(text.as_bytes()).map(drop),
    };
    found.map_err(|e| error(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: TlsKeys = TlsKeys {
        url: "redis.url",
        tls_scheme: "rediss://",
        ca_file: "redis.ca_file",
        client_cert_file: "redis.client_cert_file",
        client_key_file: "redis.client_key_file",
    };

    const NONE: TlsFiles<'static> = TlsFiles {
        ca_file: None,
        client_cert_file: None,
        client_key_file: None,
    };

    #[test]
    fn a_ca_file_with_a_plain_url_is_refused() {
        let files = TlsFiles {
            ca_file: Some(Path::new("/etc/ca.pem")),
            ..NONE
        };
        let error = load(&KEYS, "redis://h", &files).err().unwrap();
        assert_eq!(error.key, "redis.ca_file");
        assert!(error.reason.contains("rediss://"), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let files = TlsFiles {
            client_cert_file: Some(Path::new("/etc/client.pem")),
            ..NONE
        };
        let error = load(&KEYS, "rediss://h", &files).err().unwrap();
        assert_eq!(error.key, "redis.client_key_file");
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate\n").unwrap();
        let files = TlsFiles {
            ca_file: Some(file.path()),
            ..NONE
        };
        let error = load(&KEYS, "rediss://h", &files).err().unwrap();
        assert!(error.reason.contains("no PEM certificate"), "{error}");
        let files = TlsFiles {
            ca_file: Some(Path::new("/no/such/ca.pem")),
            ..NONE
        };
        let error = load(&KEYS, "rediss://h", &files).err().unwrap();
        assert!(error.reason.contains("cannot read"), "{error}");
    }

    #[test]
    fn no_files_is_no_material() {
        let material = load(&KEYS, "rediss://h", &NONE).unwrap();
        assert!(material.ca.is_none() && material.client.is_none());
    }
}
