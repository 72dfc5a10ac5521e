//! The PostgreSQL installations the clusters run from, one per major version: its binaries, the OS user
//! that must own the data (initdb and postgres refuse to run as root), and the initdb'd template that
//! each cluster of that major copies.
//!
//! The system's newest major (Debian's, under /usr/lib/postgresql) is the default. Another major comes
//! from `$PG<major>_BIN`, the bin dir that scripts/install-postgres.sh prints (scripts/test.sh
//! exports it), or else from /usr/lib/postgresql/<major>/bin.

use std::collections::HashMap;
use std::env;
use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{anyhow, bail, Context, Result};

const PG_ROOT: &str = "/usr/lib/postgresql";

pub(super) struct Installation {
    pub(super) major: u32,
    bin: PathBuf,
    /// The npm builds have no psql; the system's talks to every major.
    psql: PathBuf,
    /// Set when the tests run as root: servers then run as the `postgres` OS user.
    owner: Option<(u32, u32)>,
    /// A data directory straight from initdb.
    pub(super) template: PathBuf,
}

/// The installation of `major`, or of the system's newest major for `None`; found (and its template
/// made) once per process.
pub(super) fn installation(major: Option<u32>) -> Result<&'static Installation> {
    type Found = &'static Result<Installation, String>;
    static INSTALLATIONS: OnceLock<Mutex<HashMap<Option<u32>, Found>>> = OnceLock::new();
    let mut found = INSTALLATIONS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let installation = found.entry(major).or_insert_with(|| {
        Box::leak(Box::new(
            Installation::find(major).map_err(|e| format!("{e:#}")),
        ))
    });
    installation.as_ref().map_err(|e| anyhow!("{e}"))
}

impl Installation {
    fn find(major: Option<u32>) -> Result<Installation> {
        let system = newest_bin_dir();
        let bin = match major {
            None => system.as_ref().map_err(|e| anyhow!("{e:#}"))?.clone(),
            Some(major) => bin_dir_of(major)?,
        };
        let found = major_of(&bin)?;
        if let Some(asked) = major.filter(|&asked| asked != found) {
            bail!("{} is PostgreSQL {found}, not {asked}", bin.display());
        }
        let major = found;
        let psql = match bin.join("psql") {
            psql if psql.exists() => psql,
            _ => system
                .map_err(|e| e.context("finding the system's psql"))?
                .join("psql"),
        };
        // SAFETY: geteuid has no preconditions.
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        // SAFETY: as above.
        let uid = owner.map_or_else(|| unsafe { libc::geteuid() }, |(uid, _)| uid);
        // Shared across test processes: nextest runs every test in a process of its own, so a per-process
        // template alone would still run initdb (≈0.5 s) once per test.
        let template = env::temp_dir().join(format!("outbox-relay-pg{major}-template-uid{uid}"));
        let mut installation = Installation {
            major,
            bin,
            psql,
            owner,
            template,
        };
        if !installation.template.join("data/PG_VERSION").exists() {
            installation.run_initdb()?;
        }
        Ok(installation)
    }

    /// A command for a PostgreSQL program, run as the data's owner from `cwd`, which that owner can read.
    pub(super) fn command(&self, program: &str, cwd: &Path) -> Command {
        let path = match program {
            "psql" => self.psql.clone(),
            _ => self.bin.join(program),
        };
        let mut cmd = Command::new(path);
        cmd.current_dir(cwd);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    pub(super) fn give_to_owner(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {} to the postgres user", path.display()))?;
        }
        Ok(())
    }

    /// Builds the template in a staging dir and renames it into place, so that a test process never
    /// sees a half-built template, whichever of several concurrent processes wins.
    fn run_initdb(&mut self) -> Result<()> {
        let parent = self
            .template
            .parent()
            .context("template path has no parent")?;
        let staging = tempfile::Builder::new()
            .prefix("outbox-relay-pg-initdb-")
            .tempdir_in(parent)
            .context("creating a staging dir for initdb")?;
        self.give_to_owner(staging.path())?;
        let output = self
            .command("initdb", staging.path())
            .arg("--pgdata")
            .arg(staging.path().join("data"))
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync"])
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        match fs::rename(staging.path(), &self.template) {
            Ok(()) => {
                // Now the template: it must outlive this process.
                let _ = staging.keep();
                Ok(())
            }
            Err(_) if self.template.join("data/PG_VERSION").exists() => Ok(()),
            Err(e) => Err(e).with_context(|| {
                format!("moving the initdb result to {}", self.template.display())
            }),
        }
    }
}

/// The bin dir of `major`: `$PG<major>_BIN`, else the system's. Not under the relay's `OUTBOX_RELAY_`
/// prefix: the relay refuses unknown variables there, and the relays under test inherit the variable.
fn bin_dir_of(major: u32) -> Result<PathBuf> {
    let var = format!("PG{major}_BIN");
    if let Some(bin) = env::var_os(&var) {
        return Ok(PathBuf::from(bin));
    }
    let system = Path::new(PG_ROOT).join(major.to_string()).join("bin");
    if system.join("postgres").exists() {
        return Ok(system);
    }
    bail!(
        "PostgreSQL {major} is not installed: run `scripts/install-postgres.sh {major}` and export \
         {var} as the bin dir it prints (scripts/test.sh does both)"
    )
}

/// The major version that `bin/postgres --version` reports, so that a bin dir of another major than
/// asked for is caught here rather than by a puzzling initdb or start-up failure.
fn major_of(bin: &Path) -> Result<u32> {
    let postgres = bin.join("postgres");
    let output = Command::new(&postgres)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", postgres.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    // "postgres (PostgreSQL) 17.10"
    version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next()?.parse().ok())
        .with_context(|| format!("{} --version printed {version:?}", postgres.display()))
}

/// The bin dir of the newest major version installed on the system.
fn newest_bin_dir() -> Result<PathBuf> {
    let entries = fs::read_dir(PG_ROOT)
        .with_context(|| format!("listing {PG_ROOT}: is PostgreSQL installed?"))?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
        .with_context(|| format!("no PostgreSQL server binaries under {PG_ROOT}/<version>/bin"))
}

fn postgres_user() -> Result<(u32, u32)> {
    let name = CString::new("postgres")?;
    // SAFETY: getpwnam returns null or a pointer to a static record, read at once; this runs once per
    // process, under the OnceLock, so no other harness call races on that record.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root needs the `postgres` OS user, since initdb and postgres refuse root"
        );
    }
    // SAFETY: checked non-null above.
    let entry = unsafe { &*entry };
    Ok((entry.pw_uid, entry.pw_gid))
}
