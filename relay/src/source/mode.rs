//! Which source to run: logical replication when the database allows it, polling otherwise.
//!
//! `auto` decides from the catalog (wal_level, the role's REPLICATION attribute, a free or existing
//! slot), never by trying and failing, and says why. When a polled table moves to logical
//! replication, polling first relays the rows it had not relayed yet (see [`polling_backlog`]).

use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::cleanup::CleanupMode;
use crate::outbox::{quote_literal, OutboxTable};
use crate::pg::catalog::{self, CatalogError};
use crate::pg::failover;
use crate::source::logical::LogicalSettings;

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

/// A missing prerequisite of a mode, and its fix.
#[derive(Debug, Clone)]
pub struct Blocker {
    pub problem: String,
    pub fix: String,
}

/// Resolves `auto` to the mode this database allows, with the reason; other modes stand as given.
/// `auto` chooses polling only when polling can run: a database set up for neither (say, the Quick
/// Start's replication role, no table privileges, and `wal_level` still `replica`) stops the relay
/// with both fixes, logical replication's first, instead of failing later inside polling. With
/// `messages` (`messages.enabled`) it never chooses polling, which cannot see a message: every one
/// emitted while it polled would be lost.
pub async fn resolve(
    mode: Mode,
    client: &Client,
    slot: &str,
    outbox: &OutboxTable,
    cleanup: CleanupMode,
    messages: bool,
) -> Result<(Mode, String), CatalogError> {
    if mode != Mode::Auto {
        return Ok((mode, "configured".into()));
    }
    let Some(logical) = logical_blocker(client, slot).await? else {
        return Ok((
            Mode::Logical,
            "wal_level is logical, the role may replicate and the slot is available".into(),
        ));
    };
    if messages {
        return Err(CatalogError::misconfigured(
            format!("mode auto cannot poll while messages.enabled is on (polling never sees a pg_logical_emit_message message), and logical replication cannot run: {}", logical.problem),
            logical.fix,
        ));
    }
    if let Some(polling) = polling_blocker(client, outbox, cleanup).await? {
        let Blocker { problem, fix } = neither(&logical, &polling);
        return Err(CatalogError::misconfigured(problem, fix));
    }
    Ok((Mode::Polling, logical.problem))
}

/// What stops `auto` when neither source can run.
pub fn neither(logical: &Blocker, polling: &Blocker) -> Blocker {
    Blocker {
        problem: format!(
            "mode auto can run neither source: not logical replication, because {}; not polling, because {}",
            logical.problem, polling.problem
        ),
        fix: format!(
            "for logical replication (what the Quick Start sets up): {}\n  or, for polling: {}",
            logical.fix, polling.fix
        ),
    }
}

/// Why logical replication cannot be used here, if it cannot.
pub async fn logical_blocker(client: &Client, slot: &str) -> Result<Option<Blocker>, CatalogError> {
    match catalog::check_logical_replication(client).await {
        Err(CatalogError::Misconfigured { problem, fix }) => {
            return Ok(Some(Blocker { problem, fix }))
        }
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
        Some(Blocker {
            problem: "max_wal_senders is 0".into(),
            fix: "run `ALTER SYSTEM SET max_wal_senders = 10;` and restart PostgreSQL".into(),
        })
    } else if !exists && slots >= max_slots {
        Some(Blocker {
            problem: format!(
                "no replication slot is free (max_replication_slots = {max_slots}, all in use)"
            ),
            fix: "drop a slot nothing uses (see `SELECT slot_name, active FROM pg_replication_slots;`), or raise max_replication_slots and restart PostgreSQL".into(),
        })
    } else {
        None
    })
}

/// Why polling cannot run here, if it cannot: the table lacks polling's columns, or the role may
/// not claim and mark its rows. A missing table is left to the chosen mode's own checks.
pub async fn polling_blocker(
    client: &Client,
    outbox: &OutboxTable,
    cleanup: CleanupMode,
) -> Result<Option<Blocker>, CatalogError> {
    let c = &outbox.columns;
    let table = outbox.quoted_name();
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL
                    AND (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1)
                         AND attname IN ($2, $3) AND attnum > 0 AND NOT attisdropped) < 2,
                    to_regclass($1) IS NOT NULL",
            &[&table, &c.sequence, &c.published_at],
        )
        .await?;
    let (lacks_columns, exists): (bool, bool) = (row.get(0), row.get(1));
    if !exists {
        return Ok(None);
    }
    if lacks_columns {
        return Ok(Some(Blocker {
            problem: format!(
                "{} lacks polling's columns {} and {}",
                outbox.table, c.sequence, c.published_at
            ),
            fix: format!(
                "as the table's owner: {}",
                outbox.polling_columns_ddl().trim_end()
            ),
        }));
    }
    let privileges = polling_privileges(client, outbox, cleanup).await?;
    Ok((!privileges.lacking.is_empty()).then(|| Blocker {
        problem: format!(
            "role {} lacks {} on {}",
            privileges.user,
            privileges.lacking.join(", "),
            outbox.table
        ),
        fix: format!("run `{}`", privileges.grant(outbox)),
    }))
}

/// What polling needs of the role on the outbox: SELECT and UPDATE, and DELETE when it deletes
/// relayed rows.
pub struct PollingPrivileges {
    pub user: String,
    pub needed: Vec<&'static str>,
    pub lacking: Vec<&'static str>,
}

impl PollingPrivileges {
    /// The statement that grants what is lacking.
    pub fn grant(&self, outbox: &OutboxTable) -> String {
        format!(
            "GRANT {} ON {} TO {};",
            self.lacking.join(", "),
            outbox.quoted_name(),
            escape_identifier(&self.user)
        )
    }
}

/// The session's role and the privileges it holds and lacks for polling the existing outbox.
pub async fn polling_privileges(
    client: &Client,
    outbox: &OutboxTable,
    cleanup: CleanupMode,
) -> Result<PollingPrivileges, CatalogError> {
    let row = client
        .query_one(
            "SELECT current_user::text, has_table_privilege($1, 'SELECT'),
                    has_table_privilege($1, 'UPDATE'), has_table_privilege($1, 'DELETE')",
            &[&outbox.quoted_name()],
        )
        .await?;
    let mut checked = vec![("SELECT", row.get::<_, bool>(1)), ("UPDATE", row.get(2))];
    if cleanup == CleanupMode::Delete {
        checked.push(("DELETE", row.get(3)));
    }
    Ok(PollingPrivileges {
        user: row.get(0),
        needed: checked.iter().map(|(privilege, _)| *privilege).collect(),
        lacking: checked
            .iter()
            .filter(|(_, granted)| !granted)
            .map(|(privilege, _)| *privilege)
            .collect(),
    })
}

/// Marks the publication while polling relays the rows committed before the slot existed: the slot
/// will never carry them. A comment, so that the mark survives a crash and the next start drains
/// again instead of stranding them; removed once polling has relayed them all.
const SWITCH_PENDING: &str =
    "outbox-relay: switching from polling to logical replication; polling still relays the rows committed before the slot";

/// Rows polling must relay before logical replication takes over, when `auto` moves a table that
/// was polled (its notify trigger exists or some rows are marked) to logical replication: the slot
/// carries only what commits after its creation, while `published_at IS NULL` says exactly which
/// older rows polling has not relayed. `None` when there are none or the table was never polled.
pub async fn polling_backlog(
    client: &Client,
    outbox: &OutboxTable,
    slot: &str,
    publication: &str,
) -> Result<Option<i64>, CatalogError> {
    let c = &outbox.columns;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&outbox.quoted_name()],
        )
        .await?
        .get(0);
    // A missing table is reported by the checks of the mode itself.
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = $1::text::regclass
                        AND attname IN ($2, $3) AND attnum > 0 AND NOT attisdropped)::int,
                    EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $4),
                    EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass
                        AND tgname = 'outbox_relay_notify'),
                    coalesce((SELECT obj_description(oid, 'pg_publication') FROM pg_publication
                        WHERE pubname = $5), '') = $6,
                    has_table_privilege($1::text::regclass, 'SELECT')",
            &[
                &outbox.quoted_name(),
                &c.sequence,
                &c.published_at,
                &slot,
                &publication,
                &SWITCH_PENDING,
            ],
        )
        .await?;
    let (columns, slot_exists, triggered, switching, readable): (i32, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    // A role that may not read the table never polled it; logical replication needs no SELECT.
    if columns < 2 || !readable || (slot_exists && !switching) {
        return Ok(None);
    }
    let (table, published) = (outbox.quoted_name(), escape_identifier(&c.published_at));
    // The partial index over unpublished rows answers this without reading the relayed ones.
    let unpublished: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE {published} IS NULL"),
            &[],
        )
        .await?
        .get(0);
    if unpublished == 0 {
        return Ok(None);
    }
    let polled = switching
        || triggered
        || client
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {published} IS NOT NULL)"),
                &[],
            )
            .await?
            .get::<_, bool>(0);
    Ok(polled.then_some(unpublished))
}

/// Creates the publication and the slot, marked as switching, before polling drains the older
/// rows: every row committed from here on is in the slot, and every earlier one is visible to the
/// drain, so none falls between the two.
pub async fn begin_switch(client: &Client, settings: &LogicalSettings) -> Result<(), CatalogError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&settings.publication],
        )
        .await?
        .get(0);
    if !exists {
        catalog::create_publication(client, &settings.publication, &settings.outbox).await?;
    }
    let marked = client
        .batch_execute(&format!(
            "COMMENT ON PUBLICATION {} IS {}",
            escape_identifier(&settings.publication),
            quote_literal(SWITCH_PENDING)
        ))
        .await;
    // Only the publication's owner may comment on it. Without the mark the switch still loses
    // nothing unless the relay stops before the drain ends; then the rest waits for `--mode polling`.
    if let Err(e) = marked {
        tracing::warn!(
            publication = %settings.publication,
            error = %crate::pg::error_chain(&e),
            "cannot mark the publication while polling drains its backlog: if the relay stops before the drain ends, run it once with --mode polling to relay the rest"
        );
    }
    let failover = failover::wanted(client, settings.slot_failover).await?;
    catalog::ensure_slot(client, &settings.slot, &settings.outbox, failover, true).await?;
    Ok(())
}

/// Clears the mark once polling has relayed every row committed before the slot.
pub async fn end_switch(client: &Client, publication: &str) -> Result<(), CatalogError> {
    client
        .batch_execute(&format!(
            "COMMENT ON PUBLICATION {} IS NULL",
            escape_identifier(publication)
        ))
        .await?;
    Ok(())
}
