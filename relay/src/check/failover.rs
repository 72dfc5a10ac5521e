//! The failover lines of `outbox-relay check` (PostgreSQL 17+): whether the relay's slot is, or will be,
//! a failover slot that standbys keep a copy of, and whether the primary holds the relay back until its
//! standbys have flushed the WAL (`synchronized_standby_slots`). Without that, the relay may publish
//! changes that a standby promoted a moment later never received.

use tokio_postgres::Client;

use super::Finding;
use crate::config::Config;
use crate::pg::catalog::CatalogError;
use crate::pg::failover;

const SLOT: &str = "slot failover";
/// Short: the item column is as wide as the longest item.
const STANDBY_SLOTS: &str = "standby slots";

pub(super) async fn check(client: &Client, config: &Config) -> Result<Vec<Finding>, CatalogError> {
    let major = failover::server_version(client).await? / 10_000;
    let wanted = match failover::wanted(client, config.slot_failover).await {
        Ok(wanted) => wanted,
        Err(CatalogError::Unsupported { reason, .. }) => {
            return Ok(vec![Finding::fail(
                SLOT,
                format!("slot_failover = {reason}"),
                "set slot_failover = false or leave it unset",
            )])
        }
        Err(other) => return Err(other),
    };
    if !wanted {
        let why = if config.slot_failover == Some(false) {
            "off (slot_failover = false)".to_owned()
        } else {
            format!("PostgreSQL {major} has no failover slots (17 and later have)")
        };
        return Ok(vec![Finding::ok(
            SLOT,
            format!("{why}: a promoted standby has no copy of the slot; see docs/OPERATIONS.md, PostgreSQL failover"),
        )]);
    }
    let slot = &config.slot;
    let state = match failover::slot_state(client, slot).await? {
        None => format!("the relay creates {slot} with failover at start"),
        Some(state) if state.failover => format!("{slot} is a failover slot"),
        Some(_) => format!("{slot} has no failover yet; the relay turns it on at start"),
    };
    Ok(vec![Finding::ok(SLOT, state), standby_slots(client).await?])
}

/// The primary must name each standby's physical slot, or the relay may run ahead of the standbys.
async fn standby_slots(client: &Client) -> Result<Finding, CatalogError> {
    let named = failover::synchronized_standby_slots(client)
        .await?
        .unwrap_or_default();
    let missing: Vec<&str> = named
        .iter()
        .filter(|(_, exists)| !exists)
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        return Ok(Finding::fail(
            STANDBY_SLOTS,
            format!(
                "synchronized_standby_slots names {}, which is not a physical slot here: logical decoding waits for it",
                missing.join(", ")
            ),
            "create the standby's slot (SELECT pg_create_physical_replication_slot('NAME')) or remove the name: \
             ALTER SYSTEM SET synchronized_standby_slots = '...'; SELECT pg_reload_conf();",
        ));
    }
    if !named.is_empty() {
        let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
        return Ok(Finding::ok(
            STANDBY_SLOTS,
            format!(
                "synchronized_standby_slots = {}: the relay receives what those standbys have flushed",
                names.join(", ")
            ),
        ));
    }
    let physical: Vec<String> = client
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let fix = if physical.is_empty() {
        "give each standby a physical slot (its primary_slot_name) and name them on the primary: \
         ALTER SYSTEM SET synchronized_standby_slots = 'SLOT'; SELECT pg_reload_conf();"
            .to_owned()
    } else {
        format!(
            "ALTER SYSTEM SET synchronized_standby_slots = '{}'; SELECT pg_reload_conf(); (the standbys' \
             physical slots; see docs/OPERATIONS.md, PostgreSQL failover)",
            physical.join(",")
        )
    };
    Ok(Finding::warn(
        STANDBY_SLOTS,
        "synchronized_standby_slots is empty: the relay may receive and publish changes before a standby \
         has them, and a standby promoted then lacks them",
        fix,
    ))
}
