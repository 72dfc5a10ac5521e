//! Catalog work over an ordinary connection: prerequisites, the publication and the slot.
//!
//! A replication connection takes simple queries only, so everything here uses tokio-postgres.

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use crate::lsn::Lsn;
use crate::outbox::OutboxTable;
use crate::pg::database::{ConnectError, Database};
use crate::pg::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No server of the database URL gave an acceptable session; says each one tried and why.
    #[error("cannot reach PostgreSQL: {0}")]
    Connection(#[source] ConnectError<tokio_postgres::Error>),
    #[error("query failed: {}", error_chain(.0))]
    Query(#[from] tokio_postgres::Error),
    /// A problem only the operator can fix; retrying will not help.
    #[error("{problem}\n  fix: {fix}")]
    Misconfigured { problem: String, fix: String },
    /// Another session streams from the slot; asking before START_REPLICATION spares the server an
    /// error line per attempt of a standby.
    #[error("replication slot {0} is in use by another session")]
    SlotInUse(String),
    /// The slot was there when the relay decided to stream from it, and gone a moment later (an
    /// administrator dropped it): the next session decides again, repairing the gap if it can.
    #[error("replication slot {0} was dropped while the session started")]
    SlotVanished(String),
    /// A configuration value this server cannot honour: the relay exits as for a bad value at load.
    #[error("invalid value for `{key}`: {reason}")]
    Unsupported { key: &'static str, reason: String },
    /// A setting to fix, not a passing failure: the server wants a password the URL does not carry.
    #[error("the server asks for a password and the database URL has none: put it in the URL (postgres://user:PASSWORD@host/db) or in a file named by --database-url-file")]
    PasswordMissing,
}

impl CatalogError {
    pub fn is_fatal(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            CatalogError::Misconfigured { .. }
            | CatalogError::Unsupported { .. }
            | CatalogError::PasswordMissing => true,
            // Wrong password, no pg_hba.conf entry, unknown database on every host: no retry will
            // fix those. A host down or not yet promoted may be back on the next attempt.
            CatalogError::Connection(e) => e.fatal_everywhere(|e| {
                matches!(
                    e.code(),
                    Some(c) if *c == SqlState::INVALID_PASSWORD
                        || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                        || *c == SqlState::INVALID_CATALOG_NAME
                )
            }),
            // A missing privilege (e.g. USAGE on the outbox's schema) waits for an administrator.
            CatalogError::Query(e) => e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            CatalogError::SlotInUse(_) | CatalogError::SlotVanished(_) => false,
        }
    }

    pub(crate) fn misconfigured(
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> CatalogError {
        CatalogError::Misconfigured {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

pub async fn connect(database: &Database) -> Result<Client, CatalogError> {
    database.connect().await.map_err(|e| {
        // tokio-postgres says so only in the text of a configuration error's cause.
        if e.session_errors()
            .any(|e| error_chain(e).contains("password missing"))
        {
            CatalogError::PasswordMissing
        } else {
            CatalogError::Connection(e)
        }
    })
}

/// Fails with the fix when this database cannot feed a logical replication slot.
pub async fn check_logical_replication(client: &Client) -> Result<(), CatalogError> {
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    if wal_level != "logical" {
        return Err(CatalogError::misconfigured(
            format!("wal_level is '{wal_level}'; logical replication needs 'logical'"),
            "run `ALTER SYSTEM SET wal_level = logical;` (or set it in postgresql.conf) and restart PostgreSQL",
        ));
    }
    let row = client
        .query_one("SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await?;
    let (user, allowed): (String, bool) = (row.get(0), row.get(1));
    if !allowed {
        return Err(CatalogError::misconfigured(
            format!("role {user} lacks the REPLICATION attribute"),
            format!(
                "run `ALTER ROLE {} WITH REPLICATION;` as a superuser",
                escape_identifier(&user)
            ),
        ));
    }
    Ok(())
}

/// Fails with the DDL hint when the outbox table does not exist, or lacks a further column the
/// configuration reads (a destination template's placeholder, `routing.*`), naming it. Any relation
/// kind counts, so a partitioned outbox works, and no privilege on it is needed.
pub async fn check_outbox_table(client: &Client, outbox: &OutboxTable) -> Result<(), CatalogError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&outbox.quoted_name()],
        )
        .await?
        .get(0);
    if !exists {
        return Err(CatalogError::misconfigured(
            format!("outbox table {} does not exist", outbox.table),
            "create it with the SQL printed by `outbox-relay ddl`, or point --table at the existing one",
        ));
    }
    if outbox.extra_columns.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> = client
        .query_one(
            "SELECT coalesce(array_agg(wanted ORDER BY n), '{}')::text[] FROM unnest($2::text[]) WITH ORDINALITY AS w(wanted, n)
             WHERE NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = $1::text::regclass
                                 AND attname = wanted AND attnum > 0 AND NOT attisdropped)",
            &[&outbox.quoted_name(), &outbox.extra_columns],
        )
        .await?
        .get(0);
    if !missing.is_empty() {
        return Err(CatalogError::misconfigured(
            format!(
                "outbox table {} has no column(s) {missing:?}, which the configuration reads from each row (destination, routing)",
                outbox.table
            ),
            "add the column(s) to the table, or change the setting that names them",
        ));
    }
    Ok(())
}

/// Creates the publication for the outbox table's inserts.
pub async fn create_publication(
    client: &Client,
    publication: &str,
    outbox: &OutboxTable,
) -> Result<(), CatalogError> {
    // Via the root, so a partitioned outbox publishes its partitions' rows as its own.
    let create = format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert', publish_via_partition_root = true);",
        escape_identifier(publication),
        outbox.quoted_name()
    );
    match client.batch_execute(&create).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            return Err(CatalogError::misconfigured(
                format!(
                    "cannot create publication {publication}: {}",
                    error_chain(&e)
                ),
                format!("run this as the owner of {}: {create}", outbox.table),
            ))
        }
        result => result?,
    }
    tracing::info!(publication, table = %outbox.table, "created publication for the outbox table");
    Ok(())
}

/// The slot's confirmed position, `None` while it does not exist.
pub async fn slot_confirmed(client: &Client, slot: &str) -> Result<Option<Lsn>, CatalogError> {
    let row = client
        .query_opt(
            "SELECT coalesce(confirmed_flush_lsn, '0/0')::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    row.map(|row| parse_lsn(row.get(0))).transpose()
}

/// Creates the pgoutput slot unless it exists, with `failover` (17+, see `pg::failover`) if asked;
/// returns the position it has confirmed.
/// Without `create`, a missing slot is an error: the caller decided it exists.
pub async fn ensure_slot(
    client: &Client,
    slot: &str,
    outbox: &OutboxTable,
    failover: bool,
    create: bool,
) -> Result<Lsn, CatalogError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, coalesce(wal_status, ''), confirmed_flush_lsn::text, database::text = current_database(),
                    active, database::text
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let Some(row) = row else {
        if !create {
            return Err(CatalogError::SlotVanished(slot.to_owned()));
        }
        // The fifth argument exists from PostgreSQL 17 on: older servers get the two-argument form.
        let create = if failover {
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
        } else {
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')"
        };
        let row = client.query_one(create, &[&slot]).await?;
        let lsn = parse_lsn(row.get(0))?;
        tracing::info!(slot, %lsn, failover, "created logical replication slot; rows committed from here on are relayed");
        // A new slot cannot replay the past. On a first start that is expected; after a failover
        // or a dropped slot, rows committed meanwhile were never relayed, so say it loudly.
        let earlier_rows = client
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", outbox.quoted_name()),
                &[],
            )
            .await;
        match earlier_rows.map(|row| row.get::<_, bool>(0)) {
            Ok(false) => {}
            Ok(true) => tracing::warn!(
                slot,
                table = %outbox.table,
                "the outbox already holds rows, and rows committed before this new slot are not relayed; if a relay ran \
                 here before, its slot was lost (failover, dropped, never synced to a new primary): re-publish the rows \
                 it missed with `outbox-relay replay --since <when it was lost>` (their ids stay, so consumers still dedup), \
                 or configure checkpoint_table so that the relay repairs such a gap itself; start with --snapshot to publish \
                 earlier rows on a first start"
            ),
            // The least-privilege role may not read the table: say that nobody checked.
            Err(error) => tracing::warn!(
                slot,
                table = %outbox.table,
                error = %error_chain(&error),
                "cannot tell whether the outbox already holds rows that this new slot will not relay (the role may not \
                 read the table); if a relay ran here before, its slot was lost (failover, dropped, never synced to a new \
                 primary) and rows committed meanwhile were not relayed: re-publish them with `outbox-relay replay \
                 --since <when it was lost>`, or configure checkpoint_table so that the relay repairs such a gap itself"
            ),
        }
        return Ok(lsn);
    };
    let (plugin, wal_status, confirmed, same_db, active): (
        Option<String>,
        String,
        Option<String>,
        Option<bool>,
        bool,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if plugin.as_deref() != Some("pgoutput") || same_db != Some(true) {
        return Err(CatalogError::misconfigured(
            format!(
                "replication slot {slot} exists but is not a pgoutput slot of this database: {}",
                slot_kind(plugin.as_deref(), row.get(5))
            ),
            "choose another --slot, or drop that slot if nothing else uses it",
        ));
    }
    if wal_status == "lost" {
        return Err(CatalogError::misconfigured(
            format!(
                "replication slot {slot} was invalidated (WAL it needed was removed, see max_slot_wal_keep_size); \
                 events committed since its last confirmed position can no longer be streamed"
            ),
            format!(
                "run `outbox-relay drop-slot --slot {slot}` and start the relay again to create a fresh slot, then \
                 re-publish outbox rows committed after {} from the table itself",
                confirmed.as_deref().unwrap_or("its last position")
            ),
        ));
    }
    if active {
        return Err(CatalogError::SlotInUse(slot.to_owned()));
    }
    confirmed
        .map(parse_lsn)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// What a slot the relay cannot use is, in words: physical, or whose plugin and database.
pub fn slot_kind(plugin: Option<&str>, database: Option<&str>) -> String {
    match (plugin, database) {
        (Some(plugin), Some(database)) => {
            format!("it decodes with {plugin} for database {database}")
        }
        _ => "it is a physical slot".to_owned(),
    }
}

/// Drops the slot; returns whether it existed.
pub async fn drop_slot(client: &Client, slot: &str) -> Result<bool, CatalogError> {
    let dropped = client
        .query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await?;
    Ok(!dropped.is_empty())
}

pub(crate) fn parse_lsn(text: String) -> Result<Lsn, CatalogError> {
    text.parse().map_err(|e| {
        CatalogError::misconfigured(format!("server returned {e}"), "report this as a bug")
    })
}

/// WAL retained by the slot, in bytes; `None` while the slot does not exist.
pub async fn slot_lag_bytes(client: &Client, slot: &str) -> Result<Option<i64>, CatalogError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.and_then(|row| row.get(0)))
}
