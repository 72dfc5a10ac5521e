//! What the relay does about its slot before streaming: resume from it, create it, repair the gap a
//! lost slot left (from the durable checkpoint), or refuse to create it (`slot_create = never`).
//!
//! A new slot streams only what commits after it. When the checkpoint shows that a slot of this
//! name streamed on this cluster before (same system identifier: a promoted standby keeps it), the
//! rows committed since its last acknowledged position were never relayed: they are the rows created
//! after the checkpoint's last commit time minus `gap_repair_margin`, which the new slot's snapshot
//! republishes. Consumers dedupe by id, so the rows the margin takes in twice are harmless.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::checkpoint::{self, Checkpoint, Server};
use crate::lsn::Lsn;
use crate::outbox::quote_literal;
use crate::pg::catalog::{self, CatalogError};

/// Whether the relay may create its slot when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SlotCreate {
    /// Create it, repairing the gap when the checkpoint shows one.
    #[default]
    Auto,
    /// Stop with the steps to create it by hand, for operators who repair gaps themselves.
    Never,
}

/// The slot as the catalog shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub confirmed: Lsn,
    /// Synchronized from a primary (PostgreSQL 17's failover slots): it carried its position across
    /// the promotion.
    pub synced: bool,
}

/// The relay's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Stream from the slot as it is.
    Resume,
    /// Create the slot; no checkpoint of this cluster says a relay streamed here before.
    /// `foreign` is the system identifier of a checkpoint row another cluster wrote.
    Create { foreign: Option<i64> },
    /// Create the slot with a snapshot and republish the rows created after `since`.
    /// `stale` is set when a slot exists but began after a failover, past the checkpoint: it never
    /// held the rows in between, so it is dropped first.
    Repair {
        since: SystemTime,
        checkpoint: Checkpoint,
        stale: Option<Lsn>,
    },
    /// `slot_create = never`: stop, saying how to repair by hand.
    Refuse { problem: String, fix: String },
    /// `slot_create = never` and a slot that began after a failover, past the checkpoint: streamed
    /// from, with a warning, as the operator who made it may have republished the gap already.
    Unverified {
        confirmed: Lsn,
        since: SystemTime,
        checkpoint: Checkpoint,
    },
}

/// Decides from the slot, its checkpoint and the server; pure, so that every case is unit-tested.
pub fn decide(
    slot_name: &str,
    slot: Option<Slot>,
    checkpoint: Option<&Checkpoint>,
    server: Server,
    margin: Duration,
    slot_create: SlotCreate,
) -> Plan {
    let ours = checkpoint.filter(|c| c.server.system_identifier == server.system_identifier);
    let repair = |stale: Option<Lsn>, checkpoint: &Checkpoint| {
        let since = checkpoint.committed_before() - margin;
        match slot_create {
            SlotCreate::Auto => Plan::Repair {
                since,
                checkpoint: checkpoint.clone(),
                stale,
            },
            // Slots are the operator's under `never`: one made after the failover may be theirs,
            // made once they republished the gap by hand.
            SlotCreate::Never => match stale {
                Some(confirmed) => Plan::Unverified {
                    confirmed,
                    since,
                    checkpoint: checkpoint.clone(),
                },
                None => refuse(slot_name, Some((checkpoint, since))),
            },
        }
    };
    match (slot, ours) {
        // A slot of a failover (a new timeline) that is past the checkpoint and was not synced from
        // the old primary was created on the new one: the rows between are in neither.
        (Some(slot), Some(checkpoint))
            if checkpoint.server.timeline != server.timeline
                && slot.confirmed > checkpoint.position
                && !slot.synced =>
        {
            repair(Some(slot.confirmed), checkpoint)
        }
        (Some(_), _) => Plan::Resume,
        (None, Some(checkpoint)) => repair(None, checkpoint),
        (None, None) => create(
            slot_name,
            slot_create,
            checkpoint.map(|c| c.server.system_identifier),
        ),
    }
}

/// A missing slot no checkpoint of this cluster knows about.
fn create(slot_name: &str, slot_create: SlotCreate, foreign: Option<i64>) -> Plan {
    match slot_create {
        SlotCreate::Auto => Plan::Create { foreign },
        SlotCreate::Never => refuse(slot_name, None),
    }
}

fn refuse(slot_name: &str, checkpoint: Option<(&Checkpoint, SystemTime)>) -> Plan {
    let create = format!(
        "SELECT pg_create_logical_replication_slot({}, 'pgoutput');",
        quote_literal(slot_name)
    );
    let (problem, fix) = match checkpoint {
        Some((checkpoint, since)) => (
            format!(
                "replication slot {slot_name} does not exist and slot_create = never; the checkpoint shows it stood at {}, \
                 after a transaction committed at {}: rows committed since were not relayed",
                checkpoint.position,
                humantime::format_rfc3339_seconds(checkpoint.committed_before())
            ),
            format!(
                "create it: `{create}`, republish what the old slot missed: `outbox-relay replay --since {}` \
                 (that commit time minus gap_repair_margin), then start the relay; or start with --slot-create auto to have \
                 the relay repair it",
                humantime::format_rfc3339_seconds(since)
            ),
        ),
        None => (
            format!("replication slot {slot_name} does not exist and slot_create = never"),
            format!(
                "on a first start, start once with --slot-create auto; otherwise create it: `{create}`, republish the rows \
                 committed since the old slot was lost: `outbox-relay replay --since <when>`, then start the relay"
            ),
        ),
    };
    Plan::Refuse { problem, fix }
}

/// Reads what [`decide`] needs and decides. A checkpoint that cannot be read does not stop a relay
/// whose slot exists; without the slot it does, as creating one would give up the repair.
pub async fn plan(
    client: &Client,
    slot_name: &str,
    checkpoint_table: Option<&str>,
    margin: Duration,
    slot_create: SlotCreate,
) -> Result<Plan, CatalogError> {
    let slot = read_slot(client, slot_name).await?;
    let Some(table) = checkpoint_table else {
        return Ok(match slot {
            Some(_) => Plan::Resume,
            None => create(slot_name, slot_create, None),
        });
    };
    let found = match (checkpoint::read(client, table, slot_name).await, slot) {
        (Ok(found), _) => found,
        (Err(error), Some(_)) => {
            tracing::warn!(%error, table, "cannot read the checkpoint; streaming from the slot as it is");
            return Ok(Plan::Resume);
        }
        (Err(error), None) => return Err(error),
    };
    let server = checkpoint::server(client).await?;
    Ok(decide(
        slot_name,
        slot,
        found.as_ref(),
        server,
        margin,
        slot_create,
    ))
}

/// What a session does with its slot once [`prepare`] carried out the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Stream from the slot, which must still exist.
    Stream,
    /// Create the slot.
    Create,
    /// Republish the rows created since this time through a snapshot, which creates the slot.
    Repair(SystemTime),
}

/// Carries out the plan as far as the slot's creation: says what it found, drops a slot that began
/// after a failover past the checkpoint, or refuses.
pub async fn prepare(
    client: &Client,
    slot_name: &str,
    checkpoint_table: Option<&str>,
    margin: Duration,
    slot_create: SlotCreate,
) -> Result<Prepared, CatalogError> {
    match plan(client, slot_name, checkpoint_table, margin, slot_create).await? {
        Plan::Resume => Ok(Prepared::Stream),
        Plan::Create { foreign: None } => Ok(Prepared::Create),
        Plan::Create {
            foreign: Some(system_identifier),
        } => {
            tracing::warn!(
                slot = slot_name,
                system_identifier,
                "the checkpoint row of this slot was written by another cluster (a copied table?); ignoring it"
            );
            Ok(Prepared::Create)
        }
        Plan::Refuse { problem, fix } => Err(CatalogError::Misconfigured { problem, fix }),
        Plan::Unverified {
            confirmed,
            since,
            checkpoint,
        } => {
            tracing::warn!(
                slot = slot_name,
                %confirmed,
                checkpoint = %checkpoint.position,
                checkpoint_timeline = checkpoint.server.timeline,
                "the slot began after a failover, past the checkpoint, so it never held the rows committed in between; \
                 slot_create = never leaves them to you: unless you republished them already, run `outbox-relay replay --since {}`",
                humantime::format_rfc3339_seconds(since)
            );
            Ok(Prepared::Stream)
        }
        Plan::Repair {
            since,
            checkpoint,
            stale,
        } => {
            if let Some(confirmed) = stale {
                tracing::warn!(
                    slot = slot_name,
                    %confirmed,
                    checkpoint = %checkpoint.position,
                    checkpoint_timeline = checkpoint.server.timeline,
                    "the slot began after a failover, past the checkpoint, so it never held the rows committed in between; dropping it to repair from the checkpoint"
                );
                catalog::drop_slot(client, slot_name).await?;
            }
            tracing::warn!(
                slot = slot_name,
                checkpoint = %checkpoint.position,
                checkpoint_timeline = checkpoint.server.timeline,
                last_commit = %humantime::format_rfc3339_seconds(checkpoint.committed_before()),
                since = %humantime::format_rfc3339_seconds(since),
                "the slot was lost (failover, dropped); the checkpoint shows where it stood: repairing the gap from rows created since then"
            );
            Ok(Prepared::Repair(since))
        }
    }
}

/// Records the slot a repair created in the checkpoint, at its position on this server's timeline
/// (the last commit time stays): from here on the slot holds everything the repair did not
/// republish. Until this is written, the slot looks like one made after a failover, past the
/// checkpoint, and the next session repairs again: duplicates, never a loss.
pub async fn repaired(client: &Client, slot_name: &str, table: &str) -> Result<(), CatalogError> {
    let Some(slot) = read_slot(client, slot_name).await? else {
        return Ok(());
    };
    let server = checkpoint::server(client).await?;
    checkpoint::write(client, table, slot_name, slot.confirmed, None, server).await?;
    Ok(())
}

async fn read_slot(client: &Client, slot_name: &str) -> Result<Option<Slot>, CatalogError> {
    // `synced` exists from PostgreSQL 17 on; through jsonb, older servers read it as absent.
    let row = client
        .query_opt(
            "SELECT coalesce(confirmed_flush_lsn, '0/0')::text, coalesce((to_jsonb(s) ->> 'synced')::boolean, false)
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot_name],
        )
        .await?;
    row.map(|row| {
        Ok(Slot {
            confirmed: catalog::parse_lsn(row.get(0))?,
            synced: row.get(1),
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: Duration = Duration::from_secs(300);
    const SYSTEM: i64 = 7_716_013_373_467_232_434;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn server(timeline: i32) -> Server {
        Server {
            system_identifier: SYSTEM,
            timeline,
        }
    }

    fn checkpoint(position: u64, timeline: i32) -> Checkpoint {
        Checkpoint {
            position: Lsn(position),
            last_commit: Some(at(10_000)),
            server: server(timeline),
            updated_at: at(10_001),
        }
    }

    fn slot(confirmed: u64, synced: bool) -> Option<Slot> {
        Some(Slot {
            confirmed: Lsn(confirmed),
            synced,
        })
    }

    fn decide_auto(slot: Option<Slot>, checkpoint: Option<&Checkpoint>, timeline: i32) -> Plan {
        decide(
            "s",
            slot,
            checkpoint,
            server(timeline),
            MARGIN,
            SlotCreate::Auto,
        )
    }

    #[test]
    fn an_existing_slot_is_resumed() {
        assert_eq!(decide_auto(slot(50, false), None, 1), Plan::Resume);
        assert_eq!(
            decide_auto(slot(50, false), Some(&checkpoint(40, 1)), 1),
            Plan::Resume
        );
    }

    #[test]
    fn a_first_start_creates_the_slot() {
        assert_eq!(decide_auto(None, None, 1), Plan::Create { foreign: None });
    }

    #[test]
    fn a_lost_slot_is_repaired_from_the_checkpoint_commit_time_minus_the_margin() {
        let checkpoint = checkpoint(40, 1);
        // A promoted standby: same system, next timeline.
        for timeline in [1, 2] {
            assert_eq!(
                decide_auto(None, Some(&checkpoint), timeline),
                Plan::Repair {
                    since: at(10_000 - 300),
                    checkpoint: checkpoint.clone(),
                    stale: None
                }
            );
        }
    }

    #[test]
    fn without_a_relayed_transaction_the_repair_counts_from_the_checkpoint_write() {
        let mut checkpoint = checkpoint(40, 1);
        checkpoint.last_commit = None;
        let Plan::Repair { since, .. } = decide_auto(None, Some(&checkpoint), 1) else {
            panic!("a lost slot with a checkpoint is repaired")
        };
        assert_eq!(since, at(10_001 - 300));
    }

    #[test]
    fn another_clusters_checkpoint_is_ignored() {
        let mut foreign = checkpoint(40, 1);
        foreign.server.system_identifier = 42;
        assert_eq!(
            decide_auto(None, Some(&foreign), 1),
            Plan::Create { foreign: Some(42) }
        );
        assert_eq!(
            decide_auto(slot(10, false), Some(&foreign), 2),
            Plan::Resume
        );
    }

    #[test]
    fn a_slot_made_after_a_failover_past_the_checkpoint_is_replaced_by_a_repair() {
        let checkpoint = checkpoint(40, 1);
        assert_eq!(
            decide_auto(slot(90, false), Some(&checkpoint), 2),
            Plan::Repair {
                since: at(10_000 - 300),
                checkpoint: checkpoint.clone(),
                stale: Some(Lsn(90))
            }
        );
    }

    #[test]
    fn a_slot_that_covers_the_checkpoint_after_a_failover_is_resumed() {
        let checkpoint = checkpoint(40, 1);
        // At or before the checkpoint: it re-sends from there, missing nothing.
        assert_eq!(
            decide_auto(slot(40, false), Some(&checkpoint), 2),
            Plan::Resume
        );
        // Synced from the old primary (a failover slot): its position is the old slot's.
        assert_eq!(
            decide_auto(slot(90, true), Some(&checkpoint), 2),
            Plan::Resume
        );
    }

    #[test]
    fn never_refuses_every_slot_it_would_create_with_the_steps() {
        let checkpoint = checkpoint(40, 1);
        for (checkpoint, says) in [
            (None, "--slot-create auto"),
            (
                Some(&checkpoint),
                "outbox-relay replay --since 1970-01-01T02:41:40Z",
            ),
        ] {
            let plan = decide("s", None, checkpoint, server(2), MARGIN, SlotCreate::Never);
            let Plan::Refuse { problem, fix } = plan else {
                panic!("never creates no slot: {plan:?}")
            };
            assert!(problem.contains("slot_create = never"), "{problem}");
            assert!(
                fix.contains("pg_create_logical_replication_slot('s', 'pgoutput')")
                    && fix.contains(says),
                "{fix}"
            );
        }
    }

    #[test]
    fn never_streams_from_an_existing_slot_and_warns_about_one_made_after_a_failover() {
        let never = |slot, checkpoint, timeline| {
            decide(
                "s",
                slot,
                checkpoint,
                server(timeline),
                MARGIN,
                SlotCreate::Never,
            )
        };
        assert_eq!(never(slot(1, false), None, 1), Plan::Resume);
        let checkpoint = checkpoint(40, 1);
        assert_eq!(
            never(slot(90, false), Some(&checkpoint), 2),
            Plan::Unverified {
                confirmed: Lsn(90),
                since: at(10_000 - 300),
                checkpoint: checkpoint.clone()
            }
        );
    }
}
