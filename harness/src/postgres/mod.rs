//! Throwaway PostgreSQL clusters, one per call, each with its own data dir and loopback port, set up for
//! logical replication and for crash and restart tests; of the system's major version by default, or of
//! another one ([`Postgres::builder`]), and with a physical standby ([`Postgres::start_standby`]).

mod installation;
mod standby;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio_postgres::NoTls;

use crate::certificates::{make_certificates, Certificates};
use crate::port::free_port;
use crate::process::Process;
use crate::wait::wait_for;
use installation::{installation, Installation};
pub use standby::{Replication, Standby};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Postgres {
    installation: &'static Installation,
    server: Process,
    dir: TempDir,
    port: u16,
    settings: Vec<String>,
    certificates: Option<Certificates>,
}

/// Asserts that `application_name` holds at least one session on the cluster of `client`, each one
/// encrypted and logged in as `user`: a pool that quietly fell back to plain sessions fails.
pub async fn assert_sessions_encrypted(
    client: &tokio_postgres::Client,
    application_name: &str,
    user: &str,
) {
    let row = client
        .query_one(
            "SELECT count(*), bool_and(ssl), bool_and(usename = $2) \
             FROM pg_stat_activity JOIN pg_stat_ssl USING (pid) \
             WHERE application_name = $1",
            &[&application_name, &user],
        )
        .await
        .expect("pg_stat_ssl can be read");
    assert!(row.get::<_, i64>(0) > 0, "the pool holds a session");
    assert_eq!(row.get::<_, Option<bool>>(1), Some(true), "encrypted");
    assert_eq!(row.get::<_, Option<bool>>(2), Some(true), "as {user}");
}

/// Whether and how a cluster takes TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Off,
    /// TLS or plain, as the client likes.
    Accepted,
    /// TLS with SCRAM and a client certificate, except for the harness's own superuser.
    Required,
}

/// What cluster to start: [`Postgres::builder`].
#[must_use]
pub struct PostgresBuilder {
    major: Option<u32>,
    settings: Vec<String>,
    tls: Tls,
}

impl PostgresBuilder {
    /// A cluster of PostgreSQL `major` (e.g. 13 or 17) instead of the system's; its binaries come from
    /// `$PG<major>_BIN` (scripts/install-postgres.sh installs them, scripts/test.sh
    /// exports the variable), else from /usr/lib/postgresql/<major>/bin.
    pub fn major(mut self, major: u32) -> PostgresBuilder {
        self.major = Some(major);
        self
    }

    /// A server setting, `name=value`, over the default (`wal_level=logical`) or an earlier one.
    pub fn setting(mut self, setting: &str) -> PostgresBuilder {
        self.settings.push(setting.to_owned());
        self
    }

    pub fn start(self) -> Result<Postgres> {
        Postgres::start_with(self.major, &self.settings, self.tls)
    }
}

impl Postgres {
    /// A logical-replication cluster of the system's major version, set up as the builder says.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder {
            major: None,
            settings: vec!["wal_level=logical".to_owned()],
            tls: Tls::Off,
        }
    }

    /// A cluster with `wal_level=logical` and room for 10 replication slots and WAL senders.
    pub fn start() -> Result<Postgres> {
        Self::builder().start()
    }

    /// E.g. `"replica"`, to test how the relay reports a server that cannot decode logically.
    pub fn start_with_wal_level(wal_level: &str) -> Result<Postgres> {
        Self::builder()
            .setting(&format!("wal_level={wal_level}"))
            .start()
    }

    /// A logical-replication cluster with extra `name=value` server settings.
    pub fn start_with_settings(settings: &[&str]) -> Result<Postgres> {
        settings
            .iter()
            .fold(Self::builder(), |builder, setting| builder.setting(setting))
            .start()
    }

    /// A logical-replication cluster that also accepts TLS, with a certificate for `localhost` and
    /// `127.0.0.1` signed by a throwaway CA (see [`Postgres::ca_cert`]).
    pub fn start_with_tls() -> Result<Postgres> {
        PostgresBuilder {
            tls: Tls::Accepted,
            ..Self::builder()
        }
        .start()
    }

    /// A logical-replication cluster as managed services run them: over TCP it takes only TLS with
    /// SCRAM-SHA-256 and a client certificate signed by its CA ([`Postgres::client_identity`]). The
    /// harness's own `postgres` superuser keeps a plain, trusted line so that tests can set up roles.
    pub fn start_with_tls_only() -> Result<Postgres> {
        PostgresBuilder {
            tls: Tls::Required,
            ..Self::builder()
        }
        .start()
    }

    fn start_with(major: Option<u32>, settings: &[String], tls: Tls) -> Result<Postgres> {
        let installation = installation(major)?;
        let dir = tempfile::Builder::new()
            .prefix("outbox-pg-")
            .tempdir()
            .context("creating a temp dir for a PostgreSQL cluster")?;
        installation.give_to_owner(dir.path())?;
        // cp -a keeps the owner and the 0700 mode that postgres insists on.
        let status = Command::new("cp")
            .arg("-a")
            .arg(installation.template.join("data"))
            .arg(dir.path().join("data"))
            .status()
            .context("running cp")?;
        if !status.success() {
            bail!("copying the PostgreSQL template data dir failed ({status})");
        }
        let mut settings = settings.to_vec();
        let certificates = if tls == Tls::Off {
            None
        } else {
            let files = make_certificates(&dir.path().join("tls"), |path| {
                installation.give_to_owner(path)
            })?;
            settings.extend([
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", files.server_cert.display()),
                format!("ssl_key_file={}", files.server_key.display()),
                format!("ssl_ca_file={}", files.ca_cert.display()),
            ]);
            Some(files)
        };
        if tls == Tls::Required {
            let hba = dir.path().join("data/pg_hba.conf");
            std::fs::write(
                &hba,
                "local all all trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n",
            )
            .context("writing pg_hba.conf")?;
            installation.give_to_owner(&hba)?;
        }
        let port = free_port()?;
        let server = spawn(installation, dir.path(), port, &settings)?;
        let mut postgres = Postgres {
            installation,
            server,
            dir,
            port,
            settings,
            certificates,
        };
        postgres.wait_ready()?;
        Ok(postgres)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`; the `postgres` role is a superuser, trusted.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's major version, e.g. 15.
    pub fn major(&self) -> u32 {
        self.installation.major
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DATABASE?QUERY`, for sessions as roles other than
    /// the harness's own.
    pub fn url_as(&self, user: &str, password: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}?{query}",
            self.port
        )
    }

    /// The URL query of a `verify-full` session that trusts `ca` and presents the cluster's client
    /// certificate ([`Postgres::client_identity`]).
    pub fn verify_full_query(&self, ca: &Path) -> String {
        let (cert, key) = self
            .client_identity()
            .expect("a cluster from start_with_tls or start_with_tls_only");
        format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            ca.display(),
            cert.display(),
            key.display()
        )
    }

    /// A login role with `password` and a database it owns, as a service's own are made.
    pub async fn create_owned_database(
        &self,
        role: &str,
        password: &str,
        database: &str,
    ) -> Result<()> {
        let admin = self.client().await?;
        // Apart: CREATE DATABASE refuses the transaction that one batch of statements runs in.
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER {role}"))
            .await?;
        Ok(())
    }

    /// The CA that signed the server certificate of a cluster from [`Postgres::start_with_tls`].
    pub fn ca_cert(&self) -> Option<&Path> {
        self.certificates.as_ref().map(|c| c.ca_cert.as_path())
    }

    /// A client certificate and key the cluster's CA signed, for `sslcert` and `sslkey`.
    pub fn client_identity(&self) -> Option<(&Path, &Path)> {
        self.certificates
            .as_ref()
            .map(|c| (c.client_cert.as_path(), c.client_key.as_path()))
    }

    /// A connection as `postgres`, its connection task spawned on the current tokio runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .with_context(|| format!("connecting to {}", self.url()))?;
        // Its error is also returned by the client's next call, where the test sees it.
        tokio::spawn(async move { drop(connection.await) });
        Ok(client)
    }

    /// Runs `sql` with psql and returns its unaligned, tuples-only output, trimmed.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let output = self
            .installation
            .command("psql", self.dir.path())
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-c")
            .arg(sql)
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql failed ({}) on {sql:?}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// An immediate shutdown, as `pg_ctl stop -m immediate` does it (SIGQUIT): no checkpoint, so the
    /// next start runs crash recovery.
    pub fn crash(&mut self) -> Result<()> {
        self.server.stop(libc::SIGQUIT, STOP_TIMEOUT)?;
        Ok(())
    }

    /// kill -9 of the postmaster and of every process it started, as when its machine dies: no
    /// shutdown of any kind, and the sessions' sockets closed by the kernel. Returns once none of
    /// those processes runs and nothing answers on the port. The cluster is not meant to start again:
    /// its shared memory may outlive it.
    pub fn kill9(&mut self) -> Result<()> {
        // Stopped, the postmaster starts no backend while its children are listed.
        self.server.pause()?;
        let postmaster = self.server.id().to_string();
        let mut backends = Vec::new();
        for entry in fs::read_dir("/proc").context("listing /proc")?.flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so read after its closing parenthesis.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent == Some(postmaster.as_str()) {
                backends.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        // A backend that exited by itself meanwhile makes kill fail for its pid, which does not matter.
        self.server.kill9()?;
        if !backends.is_empty() {
            let _ = Command::new("kill").arg("-9").args(&backends).status();
        }
        let port = self.port;
        wait_for(STOP_TIMEOUT, "the killed server's processes to end", || {
            Ok(!backends.iter().any(|pid| running(pid))
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_err())
        })
    }

    /// A fast shutdown (SIGINT): sessions are ended, then a checkpoint is written.
    pub fn stop(&mut self) -> Result<()> {
        self.server.stop(libc::SIGINT, STOP_TIMEOUT)?;
        Ok(())
    }

    /// Starts the stopped or crashed cluster again on the same port and data.
    pub fn start_again(&mut self) -> Result<()> {
        self.server = spawn(
            self.installation,
            self.dir.path(),
            self.port,
            &self.settings,
        )?;
        self.wait_ready()
    }

    /// Stops the cluster (fast shutdown) and starts it again with `setting` (`name=value`) in place
    /// of any earlier value of that name, e.g. to raise `wal_level` on a cluster with data.
    pub fn restart_with(&mut self, setting: &str) -> Result<()> {
        self.stop()?;
        standby::replace_setting(&mut self.settings, setting);
        self.start_again()
    }

    pub fn restart_immediate(&mut self) -> Result<()> {
        self.crash()?;
        self.start_again()
    }

    /// From now on, TCP sessions of roles other than `postgres` must give their password
    /// (scram-sha-256), as on most servers; the harness's own sessions stay trusted.
    pub async fn require_passwords(&self) -> Result<()> {
        let hba = self.dir.path().join("data/pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .context("writing pg_hba.conf")?;
        self.installation.give_to_owner(&hba)?;
        self.client()
            .await?
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .context("reloading pg_hba.conf")?;
        Ok(())
    }

    /// The server's log so far, across restarts.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Ready when the postmaster.pid of *this* postmaster says so, as `pg_ctl -w` checks it (`ready`, or
    /// `standby` for a hot standby): the port alone accepts connections before recovery has finished.
    fn wait_ready(&mut self) -> Result<()> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let pid = self.server.id().to_string();
        let server = &mut self.server;
        wait_for(START_TIMEOUT, "PostgreSQL to accept connections", || {
            server.ensure_running()?;
            let contents = fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = contents.lines().collect();
            Ok(lines.first() == Some(&pid.as_str())
                && matches!(
                    lines.get(7).map(|status| status.trim()),
                    Some("ready" | "standby")
                ))
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT rather than the Process's SIGKILL: the postmaster then takes its backends down with it.
        if matches!(self.server.exited(), Ok(None)) {
            let _ = self.server.stop(libc::SIGQUIT, STOP_TIMEOUT);
        }
    }
}

/// Whether process `pid` exists and is not a zombie, from `/proc/<pid>/stat`.
fn running(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state …`; comm may hold spaces, so read after its closing parenthesis.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn spawn(
    installation: &Installation,
    dir: &Path,
    port: u16,
    settings: &[String],
) -> Result<Process> {
    let mut cmd = installation.command("postgres", dir);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "max_replication_slots=10", "-c", "max_wal_senders=10"])
        // Kill tests need what was committed to survive a crash.
        .args(["-c", "fsync=on"]);
    if installation.major >= 14 {
        // Crash recovery otherwise fsyncs each of the ≈1000 data files one by one: 2–3 s here, against
        // 0.2–0.4 s for one syncfs. PostgreSQL 13 has no such setting.
        cmd.args(["-c", "recovery_init_sync_method=syncfs"]);
    }
    for setting in settings {
        cmd.arg("-c").arg(setting);
    }
    Process::start_logging_to(cmd, &dir.join("postgres.log"))
}
