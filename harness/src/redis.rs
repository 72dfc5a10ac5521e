//! Redis for the Redis Streams sink's tests: the machine's shared server, or a private one whose data
//! survives [`Redis::restart`] (append-only file, fsync on every write).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

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
}

impl Redis {
    /// The URL of the machine's Redis, once it answers PING. Tests sharing it must use keys of their own.
    pub fn shared() -> Result<String> {
        wait_for(
            START_TIMEOUT,
            "the shared Redis on 127.0.0.1:6379 to answer PING (is it running? see scripts/services.sh)",
            || Ok(pong(SHARED_PORT)),
        )?;
        Ok(url(SHARED_PORT))
    }

    /// A private redis-server on a free port, its data in a temp dir.
    pub fn start() -> Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("outbox-redis-")
            .tempdir()
            .context("creating a temp dir for Redis")?;
        let port = free_port()?;
        let server = spawn(dir.path(), port)?;
        let mut redis = Redis { server, dir, port };
        redis.wait_ready()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGTERM: Redis flushes its append-only file and exits.
    pub fn stop(&mut self) -> Result<()> {
        self.server.stop(libc::SIGTERM, STOP_TIMEOUT)?;
        Ok(())
    }

    /// Starts the stopped server again on the same port and data.
    pub fn start_again(&mut self) -> Result<()> {
        self.server = spawn(self.dir.path(), self.port)?;
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
    fn wait_ready(&mut self) -> Result<()> {
        let (server, port) = (&mut self.server, self.port);
        wait_for(START_TIMEOUT, "the private Redis to answer PING", || {
            server.ensure_running()?;
            Ok(pong(port))
        })
    }
}

fn spawn(dir: &std::path::Path, port: u16) -> Result<Process> {
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir)
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--save", "", "--logfile", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always"]);
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
