//! Throwaway Tansu brokers (Kafka protocol), one per call, with sqlite storage in a temp dir so that
//! messages and committed offsets survive [`Kafka::stop`] and [`Kafka::kill`] followed by
//! [`Kafka::start_again`]. Tansu 0.6 has no TLS listener, so a TLS broker is Tansu behind socat
//! terminating TLS, as a proxy (stunnel, Envoy) fronts brokers in some deployments.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::certificates::{Certificates, TlsListener};
use crate::port::{accepts_connections, free_port};
use crate::process::Process;
use crate::wait::wait_for;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Without it, fetching messages that carry headers slows down quadratically with sqlite storage.
const HEADER_INDEX: &str =
    "create index if not exists header_record_idx on header (topition, offset_id)";

pub struct Kafka {
    /// Declared first so that it is dropped, and the broker killed, before its dir is deleted.
    broker: Process,
    /// The broker's working dir, which holds tansu.db. It lies in the system temp dir, away from any
    /// `.env` file, which tansu would read from its working dir or above.
    dir: TempDir,
    port: u16,
    tansu: PathBuf,
    /// Clients must authenticate with SASL/SCRAM (see [`Kafka::start_with_scram`]).
    authentication: bool,
    /// The TLS front of a broker from [`Kafka::start_with_tls`]. Declared after the broker: once the
    /// broker is gone, socat's forked children see their connections close and exit.
    tls: Option<Box<TlsFront>>,
}

/// socat terminating TLS on the listener's port in front of Tansu's plain one.
struct TlsFront {
    socat: Process,
    listener: TlsListener,
}

impl Kafka {
    /// A broker on a free port. Tansu creates no topic on first use: see [`Kafka::create_topic`].
    pub fn start() -> Result<Kafka> {
        Self::start_with(None)
    }

    /// A broker that clients reach only through TLS on [`Kafka::brokers`] (`localhost:PORT`, which is
    /// also the address its metadata advertises), with a certificate for `localhost` and `127.0.0.1`
    /// signed by a throwaway CA ([`Kafka::certificates`]). With `client_certificates_required`, a
    /// client must present a certificate signed by that CA.
    pub fn start_with_tls(client_certificates_required: bool) -> Result<Kafka> {
        Self::start_with(Some(client_certificates_required))
    }

    fn start_with(tls: Option<bool>) -> Result<Kafka> {
        let tansu = tansu_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("outbox-kafka-")
            .tempdir()
            .context("creating a temp dir for Tansu")?;
        let port = free_port()?;
        let tls = tls
            .map(|required| {
                let listener = TlsListener::new(&dir.path().join("tls"), &[port], required)?;
                let socat = spawn_tls_front(dir.path(), port, &listener)?;
                anyhow::Ok(Box::new(TlsFront { socat, listener }))
            })
            .transpose()?;
        let advertised = tls.as_ref().map(|front| front.listener.port);
        let broker = spawn(&tansu, dir.path(), port, advertised, false)?;
        let mut kafka = Kafka {
            broker,
            dir,
            port,
            tansu,
            authentication: false,
            tls,
        };
        kafka.wait_ready()?;
        Ok(kafka)
    }

    /// A broker that admits only `user` with `password` over SASL/SCRAM-SHA-256 on plaintext TCP.
    pub fn start_with_scram(user: &str, password: &str) -> Result<Kafka> {
        Self::start()?.with_scram(user, password)
    }

    /// This broker, restarted to admit only `user` with `password` over SASL/SCRAM-SHA-256 (over TLS
    /// for a broker from [`Kafka::start_with_tls`]). Tansu's CLI creates users only while
    /// authentication is off, so the open broker gets the user and restarts closed.
    pub fn with_scram(mut self, user: &str, password: &str) -> Result<Kafka> {
        let kafka = &mut self;
        let output = Command::new(&kafka.tansu)
            .current_dir(kafka.dir.path())
            .args([
                "user",
                "create",
                user,
                password,
                "--mechanism",
                "scram256",
                "--broker",
            ])
            .arg(format!("tcp://127.0.0.1:{}", kafka.port))
            .output()
            .context("running tansu user create")?;
        if !output.status.success() {
            bail!(
                "tansu user create failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        kafka.stop()?;
        kafka.authentication = true;
        kafka.start_again()?;
        Ok(self)
    }

    /// For `bootstrap.servers`: `127.0.0.1:PORT`, or `localhost:PORT` of the TLS front.
    pub fn brokers(&self) -> String {
        match &self.tls {
            Some(front) => format!("localhost:{}", front.listener.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// The CA, server and client certificates of a broker from [`Kafka::start_with_tls`].
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref().map(|front| &front.listener.certificates)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        let output = Command::new(&self.tansu)
            .current_dir(self.dir.path())
            .args(["topic", "create", name, "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--partitions")
            .arg(partitions.to_string())
            .output()
            .context("running tansu topic create")?;
        if !output.status.success() {
            bail!(
                "tansu topic create {name} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// SIGTERM and wait for the exit. Sends in flight then fail, which a producer must retry.
    pub fn stop(&mut self) -> Result<()> {
        self.broker.stop(libc::SIGTERM, STOP_TIMEOUT)?;
        Ok(())
    }

    /// SIGKILL: the broker vanishes without closing its connections.
    pub fn kill(&mut self) -> Result<()> {
        self.broker.kill9()?;
        Ok(())
    }

    /// Starts the stopped broker again on the same port and data.
    pub fn start_again(&mut self) -> Result<()> {
        let advertised = self.tls.as_ref().map(|front| front.listener.port);
        self.broker = spawn(
            &self.tansu,
            self.dir.path(),
            self.port,
            advertised,
            self.authentication,
        )?;
        self.wait_ready()
    }

    pub fn log(&self) -> String {
        self.broker.log()
    }

    /// The broker creates its tables before it listens, so the index can go in once the port is open.
    fn wait_ready(&mut self) -> Result<()> {
        let (broker, port) = (&mut self.broker, self.port);
        wait_for(START_TIMEOUT, "Tansu to accept connections", || {
            broker.ensure_running()?;
            Ok(accepts_connections(port))
        })?;
        if let Some(front) = &mut self.tls {
            wait_for(START_TIMEOUT, "socat to accept TLS connections", || {
                front.socat.ensure_running()?;
                Ok(accepts_connections(front.listener.port))
            })?;
        }
        let output = Command::new("sqlite3")
            .current_dir(self.dir.path())
            .args(["-cmd", ".timeout 10000", "tansu.db", HEADER_INDEX])
            .output()
            .context("running sqlite3 (scripts/services.sh installs it)")?;
        if !output.status.success() {
            bail!(
                "adding the header index to tansu.db failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// Tansu on `port`; its metadata names `localhost:advertised` when a TLS front listens there, so that
/// clients connect through the front and check its certificate under that name.
fn spawn(
    tansu: &Path,
    dir: &Path,
    port: u16,
    advertised: Option<u16>,
    authentication: bool,
) -> Result<Process> {
    let listener = format!("tcp://127.0.0.1:{port}");
    let advertised = match advertised {
        Some(front) => format!("tcp://localhost:{front}"),
        None => listener.clone(),
    };
    let mut cmd = Command::new(tansu);
    cmd.current_dir(dir)
        .arg("broker")
        .arg("--listener-url")
        .arg(&listener)
        .arg("--advertised-listener-url")
        .arg(&advertised)
        .args(["--storage-engine", "sqlite://tansu.db"])
        .args(authentication.then_some("--authentication"))
        // Tansu reads these from the environment; a developer's settings must not leak into tests.
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("DATA_LAKE")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    Process::start_logging_to(cmd, &dir.join("tansu.log"))
}

/// socat terminating TLS on the listener's port and forwarding each connection to Tansu's plain port.
fn spawn_tls_front(dir: &Path, port: u16, tls: &TlsListener) -> Result<Process> {
    let files = &tls.certificates;
    let listen = format!(
        "OPENSSL-LISTEN:{},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify={}",
        tls.port,
        files.server_cert.display(),
        files.server_key.display(),
        files.ca_cert.display(),
        u8::from(tls.client_certificates_required),
    );
    let mut cmd = Command::new("socat");
    cmd.arg(listen).arg(format!("TCP:127.0.0.1:{port}"));
    Process::start_logging_to(cmd, &dir.join("socat.log"))
}

/// `$TANSU_BIN`, else where scripts/install-tansu.sh puts it.
fn tansu_binary() -> Result<PathBuf> {
    let path = match env::var_os("TANSU_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let home = env::var_os("HOME").context("HOME is not set, so Tansu cannot be found")?;
            Path::new(&home).join(".cache/outbox-relay/tansu-0.6.0/bin/tansu")
        }
    };
    if !path.is_file() {
        bail!(
            "Tansu (the Kafka-protocol broker for tests) is not at {}: run scripts/install-tansu.sh, \
             or point TANSU_BIN at a tansu 0.6.0 binary",
            path.display()
        );
    }
    Ok(path)
}
