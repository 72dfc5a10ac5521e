//! A child process whose output goes to a log file and which is killed on Drop: the relay binary under
//! test, and each server the harness starts. Signals go to that process alone, not to processes it
//! starts itself, so a server is started as the process to signal (no wrapping shell).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::spawner;

pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
    /// Holds the log of a process started by [`Process::start`]; servers keep theirs in their own dir.
    _dir: Option<TempDir>,
    show_log_on_panic: bool,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout and stderr going to a log file in a temp dir of its own.
    /// If the test panics while this value is alive, the log is printed, so a failing test shows it.
    pub fn start(cmd: Command) -> Result<Process> {
        let dir = tempfile::Builder::new()
            .prefix("outbox-process-")
            .tempdir()
            .context("creating a temp dir for the process log")?;
        let mut process = Self::start_logging_to(cmd, &dir.path().join("output.log"))?;
        process._dir = Some(dir);
        process.show_log_on_panic = true;
        Ok(process)
    }

    /// Appends to `log`, so a server's restarts keep one log.
    pub(crate) fn start_logging_to(mut cmd: Command, log: &Path) -> Result<Process> {
        let name = Path::new(cmd.get_program())
            .file_name()
            .unwrap_or(cmd.get_program())
            .to_string_lossy()
            .into_owned();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log file {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawner::spawn(cmd).with_context(|| format!("starting {name}"))?;
        Ok(Process {
            child,
            name,
            log: log.to_owned(),
            _dir: None,
            show_log_on_panic: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL)?;
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// SIGTERM; see [`Process::wait_timeout`] for the exit.
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// SIGSTOP: the process stays alive but does nothing, like a hung peer.
    pub fn pause(&mut self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// SIGCONT after [`Process::pause`].
    pub fn resume(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    /// The exit status once the process has exited, or `None` if it still runs after `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `Some(status)` once the process has exited; does not block.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking whether {} has exited", self.name))
    }

    /// Sends `signal` and waits up to `timeout` for the exit; past that the process is killed and the
    /// stop reported as failed, since a test relying on a clean stop would otherwise pass on a kill.
    pub(crate) fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> Result<ExitStatus> {
        self.signal(signal)?;
        if let Some(status) = self.wait_timeout(timeout)? {
            return Ok(status);
        }
        self.kill9()?;
        bail!(
            "{} did not exit within {timeout:?} of signal {signal}; killed it",
            self.name
        )
    }

    /// Fails with the log's tail when the process has exited, for waits on a server's readiness.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        match self.exited()? {
            None => Ok(()),
            Some(status) => bail!("{} exited ({status}); log:\n{}", self.name, self.log_tail()),
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        // A reaped child's pid may belong to another process by now; an unreaped one cannot.
        if let Some(status) = self.exited()? {
            bail!("{} has already exited ({status})", self.name);
        }
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(pid, signal) } == -1 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending signal {signal} to {}", self.name));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.exited(), Ok(None)) {
            let _ = self.kill9();
        }
        if self.show_log_on_panic && thread::panicking() {
            // Not eprintln!, which panics when stderr is closed (e.g. `2>&1 | head`): a panic while
            // panicking aborts, and every other server's Drop would then be skipped.
            let _ = writeln!(
                std::io::stderr(),
                "----- log of {} ({}) -----\n{}\n----- end of log -----",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }
}
