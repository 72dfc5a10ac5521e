//! Throwaway certificates for TLS tests, made with the openssl command-line tool.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub(super) struct Certificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A CA and a server certificate for `localhost` and `127.0.0.1`, in `dir`; `give` hands each file
/// to the server's user (postgres refuses a key that others can read).
pub(super) fn make_certificates(
    dir: &Path,
    give: impl Fn(&Path) -> Result<()>,
) -> Result<Certificates> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = |name: &str| dir.join(name);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=outbox-relay test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        &ec,
    )?;
    openssl(
        dir,
        &[
            "req",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &ec,
    )?;
    fs::write(
        path("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
        &[],
    )?;
    fs::set_permissions(path("server.key"), fs::Permissions::from_mode(0o600))?;
    give(dir)?;
    for name in ["server.key", "server.crt", "ca.crt"] {
        give(&path(name))?;
    }
    Ok(Certificates {
        ca_cert: path("ca.crt"),
        server_cert: path("server.crt"),
        server_key: path("server.key"),
    })
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
