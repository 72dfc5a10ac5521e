//! Redis for the Redis Streams sink's tests: the machine's shared server, or a private one whose data
//! survives [`Redis::restart`] (append-only file, fsync on every write), optionally with a TLS port.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::certificates::{Certificates, TlsListener, UNNAMED_HOST};
use crate::port::free_port;
use crate::process::Process;
use crate::wait::wait_for;

const SHARED_PORT: u16 = 6379;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Redis {
    /// Declared first so that it is dropped, and the server killed, before its dir is deleted.
    server: Process,
    dir: TempDir,
    port: u16,
    tls: Option<TlsListener>,
    maxmemory: Option<u64>,
}

impl Redis {
    /// The URL of the Redis that tests share, once it answers PING: the test run's own when
    /// `TEST_REDIS_PORT` names it (scripts/test.sh starts one, so that the machine's keeps nothing
    /// of the tests), else the machine's. Tests sharing it must use keys of their own.
    pub fn shared() -> Result<String> {
        let port = match std::env::var("TEST_REDIS_PORT") {
            Ok(port) => port
                .parse()
                .with_context(|| format!("TEST_REDIS_PORT={port:?} is not a port"))?,
            Err(_) => SHARED_PORT,
        };
        wait_for(
            START_TIMEOUT,
            &format!("the shared Redis on 127.0.0.1:{port} to answer PING (is it running? see scripts/services.sh)"),
            || Ok(pong(port)),
        )?;
        Ok(url(port))
    }

    /// A private redis-server on a free port, its data in a temp dir.
    pub fn start() -> Result<Redis> {
        Self::start_with(false, false, None)
    }

    /// A private server that refuses writes (OOM) once it holds `bytes` of data, rather than evicting
    /// keys (`maxmemory-policy noeviction`), as a full production server does.
    pub fn start_with_maxmemory(bytes: u64) -> Result<Redis> {
        Self::start_with(false, false, Some(bytes))
    }

    /// A private server that also listens for TLS on [`Redis::tls_url`], with a certificate for
    /// `localhost` and `127.0.0.1` signed by a throwaway CA ([`Redis::certificates`]). Clients need no
    /// certificate. The plain port stays open so that tests can read what arrived without TLS. Both
    /// ports also listen on [`crate::UNNAMED_HOST`], for host-name tests.
    pub fn start_with_tls() -> Result<Redis> {
        Self::start_with(true, false, None)
    }

    /// As [`Redis::start_with_tls`], but TLS clients must present a certificate signed by the CA.
    pub fn start_with_mutual_tls() -> Result<Redis> {
        Self::start_with(true, true, None)
    }

    fn start_with(
        tls: bool,
        client_certificates_required: bool,
        maxmemory: Option<u64>,
    ) -> Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("outbox-redis-")
            .tempdir()
            .context("creating a temp dir for Redis")?;
        let port = free_port()?;
        let tls = tls
            .then(|| {
                TlsListener::new(
                    &dir.path().join("tls"),
                    &[port],
                    client_certificates_required,
                )
            })
            .transpose()?;
        let server = spawn(dir.path(), port, tls.as_ref(), maxmemory)?;
        let mut redis = Redis {
            server,
            dir,
            port,
            tls,
            maxmemory,
        };
        redis.wait_ready()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:PORT` of a server from [`Redis::start_with_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The CA, server and client certificates of a server from [`Redis::start_with_tls`].
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref().map(|tls| &tls.certificates)
    }

    /// SIGTERM: Redis flushes its append-only file and exits.
    pub fn stop(&mut self) -> Result<()> {
        self.server.stop(libc::SIGTERM, STOP_TIMEOUT)?;
        Ok(())
    }

    /// Starts the stopped server again on the same ports and data.
    pub fn start_again(&mut self) -> Result<()> {
        self.server = spawn(
            self.dir.path(),
            self.port,
            self.tls.as_ref(),
            self.maxmemory,
        )?;
        self.wait_ready()
    }

    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// PING answers `-LOADING` while the append-only file is replayed, so PONG means the data is back.
    /// The TLS port opens with the plain one.
    fn wait_ready(&mut self) -> Result<()> {
        let (server, port) = (&mut self.server, self.port);
        wait_for(START_TIMEOUT, "the private Redis to answer PING", || {
            server.ensure_running()?;
            Ok(pong(port))
        })
    }
}

fn spawn(
    dir: &Path,
    port: u16,
    tls: Option<&TlsListener>,
    maxmemory: Option<u64>,
) -> Result<Process> {
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir).args(["--bind", "127.0.0.1"]);
    if tls.is_some() {
        cmd.arg(UNNAMED_HOST);
    }
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--save", "", "--logfile", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always"]);
    if let Some(bytes) = maxmemory {
        cmd.arg("--maxmemory")
            .arg(bytes.to_string())
            .args(["--maxmemory-policy", "noeviction"]);
    }
    if let Some(tls) = tls {
        let files = &tls.certificates;
        cmd.arg("--tls-port")
            .arg(tls.port.to_string())
            .arg("--tls-cert-file")
            .arg(&files.server_cert)
            .arg("--tls-key-file")
            .arg(&files.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&files.ca_cert)
            .arg("--tls-auth-clients")
            .arg(if tls.client_certificates_required {
                "yes"
            } else {
                "no"
            });
    }
    Process::start_logging_to(cmd, &dir.join("redis.log"))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

fn pong(port: u16) -> bool {
    let answer = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    };
    answer().is_ok_and(|line| line.starts_with("+PONG"))
}
