//! Which source to run: logical replication when the database allows it, polling otherwise.
//!
//! `auto` decides from the catalog (wal_level, the role's REPLICATION attribute, a free or existing
//! slot), never by trying and failing, and says why.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::pg::catalog::{self, CatalogError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Logical replication when the database allows it, polling otherwise.
    #[default]
    Auto,
    /// Stream from a pgoutput replication slot.
    Logical,
    /// Claim rows from the table.
    Polling,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Logical => "logical",
            Mode::Polling => "polling",
        }
    }
}

/// Resolves `auto` to the mode this database allows, with the reason; other modes stand as given.
pub async fn resolve(
    mode: Mode,
    client: &Client,
    slot: &str,
) -> Result<(Mode, String), CatalogError> {
    if mode != Mode::Auto {
        return Ok((mode, "configured".into()));
    }
    Ok(match logical_blocker(client, slot).await? {
        None => (
            Mode::Logical,
            "wal_level is logical, the role may replicate and the slot is available".into(),
        ),
        Some(blocker) => (Mode::Polling, blocker),
    })
}

/// Why logical replication cannot be used here, if it cannot.
pub async fn logical_blocker(client: &Client, slot: &str) -> Result<Option<String>, CatalogError> {
    match catalog::check_logical_replication(client).await {
        Err(CatalogError::Misconfigured { problem, .. }) => return Ok(Some(problem)),
        result => result?,
    }
    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*) FROM pg_replication_slots)::int,
                    EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await?;
    let (max_slots, max_senders, slots, exists): (i32, i32, i32, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(if max_senders == 0 {
        Some("max_wal_senders is 0".into())
    } else if !exists && slots >= max_slots {
        Some(format!(
            "no replication slot is free (max_replication_slots = {max_slots}, all in use)"
        ))
    } else {
        None
    })
}
