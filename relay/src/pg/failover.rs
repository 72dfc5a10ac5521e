//! Failover slots (PostgreSQL 17+). A logical slot with `failover` set is copied to the physical
//! standbys that sync slots (`sync_replication_slots = on`), so that after a promotion the relay finds
//! its slot, at the position it confirmed, on the new primary. Here: whether the relay's slot should
//! carry the flag on this server (`slot_failover`), and what the catalog says about it.

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use crate::pg::catalog::CatalogError;

/// `server_version_num` of the first release with failover slots.
const FIRST_VERSION: i32 = 170_000;

/// The failover columns of the slot's row in `pg_replication_slots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFailover {
    /// The slot is synced to standbys that ask for it.
    pub failover: bool,
    /// This copy of the slot was synced from a primary: true on a standby only.
    pub synced: bool,
}

/// Whether the relay's slot should have failover on this server: `slot_failover` as configured, or,
/// unset, whenever the server has failover slots. `true` on a server before 17 is a configuration
/// error, since the slot would silently not survive a failover.
pub async fn wanted(client: &Client, configured: Option<bool>) -> Result<bool, CatalogError> {
    let version = server_version(client).await?;
    let supported = version >= FIRST_VERSION;
    match configured {
        Some(true) if !supported => Err(CatalogError::Unsupported {
            key: "slot_failover",
            reason: format!(
                "true, but PostgreSQL {} has no failover slots (17 and later have): set slot_failover = false or \
                 leave it unset, and see docs/OPERATIONS.md for failover on older servers",
                version / 10_000
            ),
        }),
        Some(on) => Ok(on),
        None => Ok(supported),
    }
}

/// The slot's failover state; `None` before PostgreSQL 17 or while the slot does not exist.
pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotFailover>, CatalogError> {
    if server_version(client).await? < FIRST_VERSION {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT failover, synced FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|row| SlotFailover {
        failover: row.get(0),
        synced: row.get(1),
    }))
}

/// The physical slots named in the primary's `synchronized_standby_slots` (17+), each with whether it
/// exists as a physical slot: the standbys that must have flushed WAL before a failover slot's
/// consumer receives it. `None` before 17.
pub async fn synchronized_standby_slots(
    client: &Client,
) -> Result<Option<Vec<(String, bool)>>, CatalogError> {
    if server_version(client).await? < FIRST_VERSION {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT name, EXISTS (SELECT 1 FROM pg_replication_slots
                                  WHERE slot_name = name AND slot_type = 'physical')
             FROM unnest(string_to_array(nullif(current_setting('synchronized_standby_slots'), ''), ',')) AS raw,
                  LATERAL trim(raw) AS name",
            &[],
        )
        .await?;
    Ok(Some(
        rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
    ))
}

/// `server_version_num`, e.g. 170010.
pub async fn server_version(client: &Client) -> Result<i32, CatalogError> {
    let text: String = client
        .query_one("SHOW server_version_num", &[])
        .await?
        .get(0);
    text.parse().map_err(|_| {
        CatalogError::misconfigured(
            format!("the server reports server_version_num {text:?}"),
            "report this as a bug",
        )
    })
}

/// `ALTER_REPLICATION_SLOT`, for a replication connection (17+): no SQL function alters a slot.
pub(crate) fn enable_command(slot: &str) -> String {
    format!(
        "ALTER_REPLICATION_SLOT {} (FAILOVER true)",
        escape_identifier(slot)
    )
}
