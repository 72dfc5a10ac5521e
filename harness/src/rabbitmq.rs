//! RabbitMQ for the AMQP sink's tests: the machine's shared broker, or a private node of its own (own
//! node name, ports, data and Erlang cookie) that a test may stop and restart without disturbing tests
//! that share the machine's broker, optionally with a TLS listener.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::certificates::{Certificates, TlsListener, UNNAMED_HOST};
use crate::port::{accepts_connections, free_port, free_port_other_than};
use crate::process::Process;
use crate::wait::wait_for;

const SHARED_PORT: u16 = 5672;
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const READY_LINE: &str = "Server startup complete";

pub struct RabbitMq {
    /// Declared first so that it is dropped, and the node killed, before its dir is deleted.
    server: Process,
    dir: TempDir,
    port: u16,
    dist_port: u16,
    node: String,
    tls: Option<TlsListener>,
    /// The management plugin's HTTP port, for a node from [`RabbitMq::start_with_management`].
    management_port: Option<u16>,
}

impl RabbitMq {
    /// The URL of the machine's broker (guest/guest) once its port answers, in the test run's own
    /// vhost when `TEST_RABBITMQ_VHOST` names one (scripts/test.sh creates it and deletes it with all
    /// it holds), else in `/`. Tests sharing it must use exchanges and queues of their own.
    pub fn shared() -> Result<String> {
        wait_for(
            START_TIMEOUT,
            "the shared RabbitMQ on 127.0.0.1:5672 (is it running? see scripts/services.sh)",
            || Ok(accepts_connections(SHARED_PORT)),
        )?;
        Ok(match std::env::var("TEST_RABBITMQ_VHOST") {
            Ok(vhost)
                if vhost
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                format!("amqp://guest:guest@127.0.0.1:{SHARED_PORT}/{vhost}")
            }
            Ok(vhost) => bail!("TEST_RABBITMQ_VHOST={vhost:?}: use letters, digits and '-' only"),
            Err(_) => url(SHARED_PORT),
        })
    }

    /// A private node with no plugins; `guest` may log in from loopback as on the shared broker.
    pub fn start() -> Result<RabbitMq> {
        Self::start_with(false, false, false)
    }

    /// A private node with the management plugin, its HTTP API on [`RabbitMq::management_url`].
    pub fn start_with_management() -> Result<RabbitMq> {
        Self::start_with(false, false, true)
    }

    /// A private node that also listens for TLS on [`RabbitMq::tls_url`], with a certificate for
    /// `localhost` and `127.0.0.1` signed by a throwaway CA ([`RabbitMq::certificates`]). Clients need
    /// no certificate. The plain port stays open so that tests can read what arrived without TLS. The
    /// TLS port also listens on [`crate::UNNAMED_HOST`], for host-name tests.
    pub fn start_with_tls() -> Result<RabbitMq> {
        Self::start_with(true, false, false)
    }

    /// As [`RabbitMq::start_with_tls`], but TLS clients must present a certificate signed by the CA
    /// (they still log in with a password).
    pub fn start_with_mutual_tls() -> Result<RabbitMq> {
        Self::start_with(true, true, false)
    }

    fn start_with(
        tls: bool,
        client_certificates_required: bool,
        management: bool,
    ) -> Result<RabbitMq> {
        static NODES: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::Builder::new()
            .prefix("outbox-rabbitmq-")
            .tempdir()
            .context("creating a temp dir for RabbitMQ")?;
        let port = free_port()?;
        let dist_port = free_port_other_than(&[port])?;
        let tls = tls
            .then(|| {
                TlsListener::new(
                    &dir.path().join("tls"),
                    &[port, dist_port],
                    client_certificates_required,
                )
            })
            .transpose()?;
        let management_port = management
            .then(|| free_port_other_than(&[port, dist_port]))
            .transpose()?;
        let mut conf = config(port, tls.as_ref());
        if let Some(management_port) = management_port {
            conf.push_str(&format!(
                "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n"
            ));
        }
        fs::write(dir.path().join("rabbitmq.conf"), conf)?;
        let plugins = if management {
            "[rabbitmq_management].\n"
        } else {
            "[].\n"
        };
        fs::write(dir.path().join("enabled_plugins"), plugins)?;
        // Replaces /etc/rabbitmq/rabbitmq-env.conf, which would set the machine node's name.
        fs::write(dir.path().join("rabbitmq-env.conf"), "")?;
        let node = format!(
            "harness{}n{}@localhost",
            std::process::id(),
            NODES.fetch_add(1, Ordering::Relaxed)
        );
        let (server, log_start) = spawn(dir.path(), &node, port, dist_port)?;
        let mut rabbitmq = RabbitMq {
            server,
            dir,
            port,
            dist_port,
            node,
            tls,
            management_port,
        };
        rabbitmq.wait_ready(log_start)?;
        Ok(rabbitmq)
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` of the management API of a node from
    /// [`RabbitMq::start_with_management`].
    pub fn management_url(&self) -> Option<String> {
        self.management_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// `amqps://guest:guest@127.0.0.1:PORT/%2f` of a node from [`RabbitMq::start_with_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|tls| format!("amqps://guest:guest@127.0.0.1:{}/%2f", tls.port))
    }

    /// The CA, server and client certificates of a node from [`RabbitMq::start_with_tls`].
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref().map(|tls| &tls.certificates)
    }

    /// SIGTERM, which RabbitMQ handles as a clean shutdown.
    pub fn stop(&mut self) -> Result<()> {
        self.server.stop(libc::SIGTERM, STOP_TIMEOUT)?;
        Ok(())
    }

    /// Starts the stopped node again on the same ports and data.
    pub fn start_again(&mut self) -> Result<()> {
        let (server, log_start) = spawn(self.dir.path(), &self.node, self.port, self.dist_port)?;
        self.server = server;
        self.wait_ready(log_start)
    }

    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// SIGKILL, for tests of a broker that vanishes without closing its connections.
    pub fn kill(&mut self) -> Result<()> {
        self.server.kill9()?;
        Ok(())
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Runs `rabbitmqctl` against this private node (e.g. `add_user`, `set_permissions`); its
    /// standard output.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(CTL)
            .args(["-n", &self.node])
            .args(args)
            // The node's Erlang cookie is in its $HOME.
            .env("HOME", self.dir.path())
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.dir.path().join("rabbitmq-env.conf"),
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .output()
            .context("running rabbitmqctl")?;
        if !output.status.success() {
            bail!(
                "rabbitmqctl {args:?} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The port opens a little before the boot finishes, so the log line is what tells.
    fn wait_ready(&mut self, log_start: u64) -> Result<()> {
        let log = self.dir.path().join("server.log");
        let server = &mut self.server;
        wait_for(START_TIMEOUT, "the private RabbitMQ node to start", || {
            server.ensure_running()?;
            let log = fs::read(&log).unwrap_or_default();
            let new = log.get(log_start as usize..).unwrap_or_default();
            Ok(String::from_utf8_lossy(new).contains(READY_LINE))
        })
    }
}

/// `rabbitmq.conf`: loopback listeners only.
fn config(port: u16, tls: Option<&TlsListener>) -> String {
    let mut config = format!("listeners.tcp.default = 127.0.0.1:{port}\n");
    if let Some(tls) = tls {
        let files = &tls.certificates;
        let verify = if tls.client_certificates_required {
            "verify_peer\nssl_options.fail_if_no_peer_cert = true"
        } else {
            "verify_none\nssl_options.fail_if_no_peer_cert = false"
        };
        config.push_str(&format!(
            "listeners.ssl.default = 127.0.0.1:{port}\n\
             listeners.ssl.unnamed = {UNNAMED_HOST}:{port}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = {verify}\n",
            port = tls.port,
            ca = files.ca_cert.display(),
            cert = files.server_cert.display(),
            key = files.server_key.display(),
        ));
    }
    config
}

/// Starts the node; also returns where this start's lines begin in the log, which restarts append to.
fn spawn(dir: &Path, node: &str, port: u16, dist_port: u16) -> Result<(Process, u64)> {
    let log = dir.join("server.log");
    let log_start = fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = Command::new(SERVER);
    cmd.current_dir(dir)
        // Makes the script exec the Erlang VM instead of staying its parent, so that signals reach
        // the VM and the parent-death signal covers it.
        .env("RUNNING_UNDER_SYSTEMD", "true")
        // The Erlang cookie goes to $HOME.
        .env("HOME", dir)
        .env("RABBITMQ_NODENAME", node)
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
        .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
        .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", dir.join("log"))
        .env("RABBITMQ_LOGS", "-")
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}");
    Ok((Process::start_logging_to(cmd, &log)?, log_start))
}

fn url(port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}
