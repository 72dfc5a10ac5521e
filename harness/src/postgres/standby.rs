//! A physical standby of a harness cluster on another port, for failover tests. It is made the way one is
//! made without a `pg_basebackup` of the same major (the npm builds have none): the primary is stopped
//! cleanly and its data directory copied, so the copy starts from a checkpoint and streams on from there.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use super::{spawn, Postgres};
use crate::port::free_port;
use crate::wait::wait_for;

const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a commit on the primary waits until the standby has flushed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    Asynchronous,
    /// `synchronous_standby_names` names the standby: whatever committed on the primary survives its
    /// crash on the standby. While the standby is down, commits on the primary wait.
    Synchronous,
}

/// A hot standby streaming from its primary through a physical slot; a [`Postgres`] in every other way
/// (its URL, clients, psql), until [`Standby::promote`] makes it a primary.
///
/// On PostgreSQL 17+ it is set up for failover slots as the documentation asks: the standby has
/// `sync_replication_slots`, `hot_standby_feedback`, `primary_slot_name` and a `dbname` in
/// `primary_conninfo`; the primary names the standby's slot in `synchronized_standby_slots`. Logical
/// slots created with `failover` on the primary then appear on the standby with `synced = true`. Such a
/// copy stays `temporary`, and is dropped at promotion, until the primary's slot has moved past the WAL
/// the standby reserved for it (at a running-transactions record: `SELECT pg_log_standby_snapshot()`
/// on the primary logs one).
pub struct Standby {
    postgres: Postgres,
}

impl Postgres {
    /// Stops this cluster cleanly, copies its data directory into a new cluster that follows it as a
    /// physical standby, and starts both; returns once the primary reports the standby as streaming
    /// (and, with [`Replication::Synchronous`], as synchronous).
    ///
    /// The physical slot on the primary (the standby's `primary_slot_name`) is `standby_<port>`, after
    /// the standby's port. The copy leaves out the primary's slots: a standby syncs its own.
    pub fn start_standby(&mut self, replication: Replication) -> Result<Standby> {
        let port = free_port()?;
        let slot = format!("standby_{port}");
        let application_name = slot.clone();
        self.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{slot}', true)"
        ))?;
        self.stop()?;

        let installation = self.installation;
        let dir = tempfile::Builder::new()
            .prefix("outbox-pg-standby-")
            .tempdir()
            .context("creating a temp dir for a PostgreSQL standby")?;
        installation.give_to_owner(dir.path())?;
        let data = dir.path().join("data");
        // cp -a keeps the owner and the 0700 mode that postgres insists on.
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.dir.path().join("data"))
            .arg(&data)
            .status()
            .context("running cp")?;
        if !status.success() {
            bail!("copying the primary's data dir failed ({status})");
        }
        for slot in fs::read_dir(data.join("pg_replslot")).context("listing pg_replslot")? {
            let slot = slot?.path();
            fs::remove_dir_all(&slot).with_context(|| format!("removing {}", slot.display()))?;
        }
        let signal = data.join("standby.signal");
        fs::write(&signal, "").context("writing standby.signal")?;
        installation.give_to_owner(&signal)?;

        let failover_slots = installation.major >= 17;
        // The primary's settings as they were before this standby, so that none of it waits for itself.
        let mut settings = self.settings.clone();
        let mut own = vec![
            // dbname: the slot sync worker of 17+ reads the primary's slots over this connection.
            format!(
                "primary_conninfo=host=127.0.0.1 port={} user=postgres dbname=postgres \
                 application_name={application_name}",
                self.port
            ),
            format!("primary_slot_name={slot}"),
            "hot_standby_feedback=on".to_owned(),
            "synchronous_standby_names=".to_owned(),
        ];
        if failover_slots {
            own.extend([
                "sync_replication_slots=on".to_owned(),
                "synchronized_standby_slots=".to_owned(),
            ]);
        }
        for setting in &own {
            replace_setting(&mut settings, setting);
        }

        if replication == Replication::Synchronous {
            replace_setting(
                &mut self.settings,
                &format!("synchronous_standby_names={application_name}"),
            );
        }
        if failover_slots {
            replace_setting(
                &mut self.settings,
                &format!("synchronized_standby_slots={slot}"),
            );
        }
        self.start_again()?;

        let server = spawn(installation, dir.path(), port, &settings)?;
        let mut postgres = Postgres {
            installation,
            server,
            dir,
            port,
            settings,
            certificates: None,
        };
        postgres.wait_ready()?;

        let wanted = match replication {
            Replication::Asynchronous => "async",
            Replication::Synchronous => "sync",
        };
        let query = format!(
            "SELECT sync_state FROM pg_stat_replication \
             WHERE application_name = '{application_name}' AND state = 'streaming'"
        );
        wait_for(STREAMING_TIMEOUT, "the standby to stream", || {
            Ok(self.psql(&query)? == wanted)
        })
        .with_context(|| format!("standby log:\n{}", postgres.log()))?;
        Ok(Standby { postgres })
    }
}

impl Standby {
    /// Promotes the standby (`pg_promote`, waiting up to 60 s) and returns it as the primary it now is.
    pub fn promote(self) -> Result<Postgres> {
        let promoted = self.postgres.psql("SELECT pg_promote(true, 60)")?;
        ensure!(
            promoted == "t",
            "pg_promote returned {promoted:?}; log:\n{}",
            self.postgres.log()
        );
        Ok(self.postgres)
    }
}

impl Deref for Standby {
    type Target = Postgres;

    fn deref(&self) -> &Postgres {
        &self.postgres
    }
}

impl DerefMut for Standby {
    fn deref_mut(&mut self) -> &mut Postgres {
        &mut self.postgres
    }
}

/// Puts `setting` (`name=value`) in place of any earlier value of that name.
pub(super) fn replace_setting(settings: &mut Vec<String>, setting: &str) {
    let name = setting_name(setting);
    settings.retain(|s| setting_name(s) != name);
    settings.push(setting.to_owned());
}

fn setting_name(setting: &str) -> &str {
    setting.split_once('=').map_or(setting, |(name, _)| name)
}
