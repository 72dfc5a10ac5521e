//! RabbitMQ for the AMQP sink's tests: the machine's shared broker, or a private node of its own (own
//! node name, ports, data and Erlang cookie) that a test may stop and restart without disturbing tests
//! that share the machine's broker.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::port::{accepts_connections, free_port};
use crate::process::Process;
use crate::wait::wait_for;

const SHARED_PORT: u16 = 5672;
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
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
}

impl RabbitMq {
    /// The URL of the machine's broker (guest/guest, vhost `/`) once its port answers. Tests sharing it
    /// must use exchanges and queues of their own.
    pub fn shared() -> Result<String> {
        wait_for(
            START_TIMEOUT,
            "the shared RabbitMQ on 127.0.0.1:5672 (is it running? see scripts/services.sh)",
            || Ok(accepts_connections(SHARED_PORT)),
        )?;
        Ok(url(SHARED_PORT))
    }

    /// A private node with no plugins; `guest` may log in from loopback as on the shared broker.
    pub fn start() -> Result<RabbitMq> {
        static NODES: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::Builder::new()
            .prefix("outbox-rabbitmq-")
            .tempdir()
            .context("creating a temp dir for RabbitMQ")?;
        let port = free_port()?;
        fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )?;
        fs::write(dir.path().join("enabled_plugins"), "[].\n")?;
        // Replaces /etc/rabbitmq/rabbitmq-env.conf, which would set the machine node's name.
        fs::write(dir.path().join("rabbitmq-env.conf"), "")?;
        let node = format!(
            "harness{}n{}@localhost",
            std::process::id(),
            NODES.fetch_add(1, Ordering::Relaxed)
        );
        // Two binds to port 0 in a row may both get the same port.
        let dist_port = loop {
            let candidate = free_port()?;
            if candidate != port {
                break candidate;
            }
        };
        let (server, log_start) = spawn(dir.path(), &node, port, dist_port)?;
        let mut rabbitmq = RabbitMq {
            server,
            dir,
            port,
            dist_port,
            node,
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
