//! Throwaway certificates for TLS tests, made with the openssl command-line tool: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, and a client certificate, for PostgreSQL and the brokers.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// PEM files in one directory; the keys are unencrypted.
pub struct Certificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Signed by the same CA, for servers that ask the client for a certificate.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certificates {
    /// A CA of its own with its certificates in `dir`, e.g. to show that a client refuses a server
    /// whose certificate another CA signed.
    pub fn make(dir: &Path) -> Result<Certificates> {
        make_certificates(dir, |_| Ok(()))
    }
}

/// Makes the CA and both certificates in `dir`; `give` hands each file to the server's user
/// (postgres refuses a key that others can read).
pub(crate) fn make_certificates(
    dir: &Path,
    give: impl Fn(&Path) -> Result<()>,
) -> Result<Certificates> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = |name: &str| dir.join(name);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            // Unique, so that a client trusting another test CA finds no issuer at all.
            &format!("/CN={}", crate::unique("outbox-relay test CA")),
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        &EC_KEY,
    )?;
    sign(
        dir,
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    sign(
        dir,
        "client",
        "/CN=outbox-relay",
        "extendedKeyUsage=clientAuth\n",
    )?;
    give(dir)?;
    for name in [
        "server.key",
        "server.crt",
        "client.key",
        "client.crt",
        "ca.crt",
    ] {
        give(&path(name))?;
    }
    Ok(Certificates {
        ca_cert: path("ca.crt"),
        server_cert: path("server.crt"),
        server_key: path("server.key"),
        client_cert: path("client.crt"),
        client_key: path("client.key"),
    })
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// `NAME.key` and `NAME.crt` for `subject`, signed by the CA in `dir`, with `extensions`.
fn sign(dir: &Path, name: &str, subject: &str, extensions: &str) -> Result<()> {
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &["req", "-subj", subject, "-keyout", &key, "-out", &csr],
        &EC_KEY,
    )?;
    fs::write(dir.join(&ext), extensions)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
        &[],
    )?;
    fs::set_permissions(dir.join(&key), fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn openssl(dir: &Path, args: &[&str], extra: &[&str]) -> Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .args(extra)
        .current_dir(dir)
        .output()
        .context("running openssl (Debian package openssl)")?;
    if !output.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The TLS port of a test server and the files behind it. Servers listen for TLS on 127.0.0.1 and on
/// [`UNNAMED_HOST`], an address their certificate does not name.
pub(crate) struct TlsListener {
    pub port: u16,
    pub certificates: Certificates,
    /// Whether the server refuses TLS clients without a certificate signed by the CA.
    pub client_certificates_required: bool,
}

pub const UNNAMED_HOST: &str = "127.0.0.2";

impl TlsListener {
    /// Certificates in `dir` and a free port other than the server's `taken` ones.
    pub fn new(dir: &Path, taken: &[u16], client_certificates_required: bool) -> Result<Self> {
        Ok(TlsListener {
            port: crate::port::free_port_other_than(taken)?,
            certificates: Certificates::make(dir)?,
            client_certificates_required,
        })
    }
}
