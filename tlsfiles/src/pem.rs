//! PEM files as rustls takes them: certificate chains and private keys, with the reason a file
//! cannot be used. Every TLS connection and listener of the workspace reads its files here.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why PEM text gave no usable certificate or key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("no PEM certificate in it")]
    NoCertificate,
    #[error("no unencrypted PEM private key in it")]
    NoPrivateKey,
    #[error("{0}")]
    Malformed(String),
}

/// Every certificate in `text`, in order; at least one.
pub fn certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Malformed(e.to_string()))?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(chain)
}

/// The first private key in `text` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(text: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(text).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::NoPrivateKey,
        other => PemError::Malformed(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_pem_sections_names_what_is_missing() {
        assert_eq!(certificates(b"hello").unwrap_err(), PemError::NoCertificate);
        assert_eq!(private_key(b"hello").unwrap_err(), PemError::NoPrivateKey);
    }

    #[test]
    fn a_section_without_its_end_is_malformed() {
        let text = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(matches!(certificates(text), Err(PemError::Malformed(_))));
    }
}
