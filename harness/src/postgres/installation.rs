//! The PostgreSQL installation the clusters run from: its binaries, the OS user that must own the data
//! (initdb and postgres refuse to run as root), and the initdb'd template that each cluster copies.

use std::env;
use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

const PG_ROOT: &str = "/usr/lib/postgresql";

pub(super) struct Installation {
    bin: PathBuf,
    /// Set when the tests run as root: servers then run as the `postgres` OS user.
    owner: Option<(u32, u32)>,
    /// A data directory straight from initdb.
    pub(super) template: PathBuf,
}

pub(super) fn installation() -> Result<&'static Installation> {
    static INSTALLATION: OnceLock<Result<Installation, String>> = OnceLock::new();
    INSTALLATION
        .get_or_init(|| Installation::find().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

impl Installation {
    fn find() -> Result<Installation> {
        let (major, bin) = newest_bin_dir()?;
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
            bin,
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
        let mut cmd = Command::new(self.bin.join(program));
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
            .args(["--locale=C", "--no-sync", "--no-instructions"])
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

/// The bin dir of the newest major version installed, and that version.
fn newest_bin_dir() -> Result<(u32, PathBuf)> {
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
