//! `outbox-relay status`: where the slot stands (with its `failover` and `synced` flags on PostgreSQL
//! 17+) and what waits behind it, or, in polling mode, the table's unpublished rows.
//!
//! Pending events are counted by peeking at the slot (decoding without consuming), which PostgreSQL
//! allows only while no relay streams from it; with a relay running, its `/metrics` has the live view.
//! With a checkpoint table, the slot's checkpoint is shown too: what gap repair would start from.

use std::fmt::Write;
use std::time::SystemTime;

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use crate::checkpoint::{self, Checkpoint, Server};
use crate::config::Config;
use crate::lsn::Lsn;
use crate::pg::catalog::CatalogError;
use crate::pg::failover::{self, SlotFailover};
use crate::pg::pgoutput::{self, LogicalMessage};
use crate::source::message;
use crate::source::mode::{self, Mode};

/// Peeking decodes the backlog; past this many changes the count is reported as a lower bound.
const PEEK_LIMIT: i32 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub mode: Mode,
    pub slot: String,
    pub confirmed: Option<Lsn>,
    pub lag_bytes: Option<i64>,
    pub active_pid: Option<i32>,
    /// The slot's `failover` and `synced` columns, from PostgreSQL 17 on.
    pub failover: Option<SlotFailover>,
    pub pending: Pending,
    /// `None` without a checkpoint table.
    pub checkpoint: Option<CheckpointStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointStatus {
    /// No relay recorded a position for this slot yet.
    Missing,
    /// The slot's row, and the server this status was read from.
    Found(Checkpoint, Server),
    /// The table cannot be read (missing, no SELECT on it): why.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// No slot yet: nothing is retained, nothing pending.
    NoSlot,
    /// A relay streams from the slot right now.
    SlotInUse,
    /// PostgreSQL removed WAL the slot needed: what it held back can no longer be read.
    Invalidated,
    /// A standby's synced copy of a failover slot, which cannot be decoded before a promotion.
    Synced,
    Counted {
        events: u64,
        oldest_commit: Option<SystemTime>,
        complete: bool,
    },
}

pub async fn read(client: &Client, config: &Config) -> Result<Status, CatalogError> {
    let (mode, _) = mode::resolve(
        config.mode,
        client,
        &config.slot,
        &config.outbox,
        config.cleanup,
        config.messages.enabled,
    )
    .await?;
    if mode == Mode::Polling {
        return unpublished(client, config).await;
    }
    let checkpoint = match &config.checkpoint_table {
        Some(table) => Some(read_checkpoint(client, table, &config.slot).await),
        None => None,
    };
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text,
                    ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)
                     - confirmed_flush_lsn)::bigint,
                    active_pid, wal_status = 'lost', pg_is_in_recovery()
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Status {
            mode,
            slot: config.slot.clone(),
            confirmed: None,
            lag_bytes: None,
            active_pid: None,
            failover: None,
            pending: Pending::NoSlot,
            checkpoint,
        });
    };
    let confirmed: Option<String> = row.get(0);
    let active_pid: Option<i32> = row.get(2);
    let invalidated: Option<bool> = row.get(3);
    let standby: bool = row.get(4);
    let failover = failover::slot_state(client, &config.slot).await?;
    let pending = if invalidated == Some(true) {
        Pending::Invalidated
    } else if active_pid.is_some() {
        Pending::SlotInUse
    } else if standby && failover.is_some_and(|state| state.synced) {
        Pending::Synced
    } else {
        peek(client, config).await?
    };
    Ok(Status {
        mode,
        slot: config.slot.clone(),
        confirmed: confirmed.and_then(|text| text.parse().ok()),
        lag_bytes: row.get(1),
        active_pid,
        failover,
        pending,
        checkpoint,
    })
}

async fn read_checkpoint(client: &Client, table: &str, slot: &str) -> CheckpointStatus {
    let read = async {
        let found = checkpoint::read(client, table, slot).await?;
        let server = checkpoint::server(client).await?;
        Ok::<_, CatalogError>(found.map(|found| (found, server)))
    };
    match read.await {
        Ok(Some((found, server))) => CheckpointStatus::Found(found, server),
        Ok(None) => CheckpointStatus::Missing,
        Err(error) => CheckpointStatus::Unreadable(error.to_string()),
    }
}

/// Polling: rows not yet relayed, and the oldest one's `created_at`.
async fn unpublished(client: &Client, config: &Config) -> Result<Status, CatalogError> {
    let c = &config.outbox.columns;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), min({}::timestamptz) FROM {} WHERE {} IS NULL",
                escape_identifier(&c.created_at),
                config.outbox.quoted_name(),
                escape_identifier(&c.published_at)
            ),
            &[],
        )
        .await?;
    Ok(Status {
        mode: Mode::Polling,
        slot: config.slot.clone(),
        confirmed: None,
        lag_bytes: None,
        active_pid: None,
        failover: None,
        pending: Pending::Counted {
            events: row.get::<_, i64>(0) as u64,
            oldest_commit: row.get(1),
            complete: true,
        },
        checkpoint: None,
    })
}

/// Counts the outbox's inserts and, with `messages.enabled`, the messages of its prefix (events or
/// dead letters, both relayed).
async fn peek(client: &Client, config: &Config) -> Result<Pending, CatalogError> {
    let messages = config.messages.enabled
        && failover::server_version(client).await? >= message::FIRST_VERSION;
    let query = if messages {
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3, 'messages', 'true')"
    } else {
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)"
    };
    let rows = client
        .query(
            query,
            &[
                &config.slot,
                &PEEK_LIMIT,
                &format!("\"{}\"", config.publication.replace('"', "\"\"")),
            ],
        )
        .await?;
    let (schema, table) = config.outbox.qualified_name();
    let mut outbox_relations = Vec::new();
    let mut events = 0;
    let mut oldest_commit = None;
    let mut transaction_commit = None;
    for row in &rows {
        let data: Vec<u8> = row.get(0);
        let event = match pgoutput::decode(data.into()) {
            Ok(LogicalMessage::Begin { commit_time, .. }) => {
                transaction_commit = Some(commit_time);
                false
            }
            // A non-transactional message, between transactions, has no commit time.
            Ok(LogicalMessage::Commit { .. }) => {
                transaction_commit = None;
                false
            }
            Ok(LogicalMessage::Relation(relation))
                if relation.namespace == schema && relation.name == table =>
            {
                outbox_relations.push(relation.id);
                false
            }
            Ok(LogicalMessage::Insert { relation_id, .. }) => {
                outbox_relations.contains(&relation_id)
            }
            Ok(LogicalMessage::Message { prefix, .. }) => prefix == config.messages.prefix,
            _ => false,
        };
        if !event {
            continue;
        }
        events += 1;
        if oldest_commit.is_none() {
            oldest_commit = transaction_commit.map(pgoutput::to_system_time);
        }
    }
    Ok(Pending::Counted {
        events,
        oldest_commit,
        complete: rows.len() < PEEK_LIMIT as usize,
    })
}

pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "mode               {}", status.mode.name());
    if status.mode != Mode::Polling {
        render_slot(status, &mut out);
    }
    render_pending(status, &mut out);
    if let Some(checkpoint) = &status.checkpoint {
        render_checkpoint(checkpoint, &mut out);
    }
    out
}

fn render_checkpoint(checkpoint: &CheckpointStatus, out: &mut String) {
    let (found, server) = match checkpoint {
        CheckpointStatus::Missing => {
            let _ = writeln!(out, "checkpoint         none yet for this slot");
            return;
        }
        CheckpointStatus::Unreadable(reason) => {
            let _ = writeln!(out, "checkpoint         unreadable: {reason}");
            return;
        }
        CheckpointStatus::Found(found, server) => (found, server),
    };
    let _ = writeln!(
        out,
        "checkpoint LSN     {} (timeline {})",
        found.position, found.server.timeline
    );
    let _ = writeln!(
        out,
        "last commit        {}",
        found.last_commit.map_or_else(
            || "none relayed yet".to_owned(),
            |at| humantime::format_rfc3339_millis(at).to_string()
        )
    );
    let age = SystemTime::now()
        .duration_since(found.updated_at)
        .map_or_else(
            |_| "0.0 s".to_owned(),
            |d| format!("{:.1} s", d.as_secs_f64()),
        );
    let _ = writeln!(out, "checkpoint age     {age}");
    if found.server.system_identifier != server.system_identifier {
        let _ = writeln!(
            out,
            "checkpoint server  another cluster's (system identifier {}, this one's is {}): gap repair ignores it",
            found.server.system_identifier, server.system_identifier
        );
    } else if found.server.timeline != server.timeline {
        let _ = writeln!(
            out,
            "checkpoint server  this cluster, written before a failover (now timeline {})",
            server.timeline
        );
    }
}

fn render_slot(status: &Status, out: &mut String) {
    let unknown = || "-".to_owned();
    let _ = writeln!(out, "slot               {}", status.slot);
    let _ = writeln!(
        out,
        "confirmed LSN      {}",
        status.confirmed.map_or_else(unknown, |l| l.to_string())
    );
    let _ = writeln!(
        out,
        "slot lag           {}",
        status
            .lag_bytes
            .map_or_else(unknown, |b| format!("{b} bytes"))
    );
    if let Some(state) = status.failover {
        let _ = writeln!(out, "failover           {}", state.failover);
        let _ = writeln!(out, "synced             {}", state.synced);
    }
}

fn render_pending(status: &Status, out: &mut String) {
    let unknown = || "-".to_owned();
    match &status.pending {
        Pending::NoSlot => {
            let _ = writeln!(
                out,
                "pending events     0 (the slot does not exist yet; the relay creates it at start)"
            );
        }
        Pending::Invalidated => {
            let _ = writeln!(
                out,
                "pending events     unknown: the slot was invalidated; see `outbox-relay check` for the recovery steps"
            );
        }
        Pending::Synced => {
            let _ = writeln!(
                out,
                "pending events     unknown: this standby's synced copy of the slot cannot be read before a promotion; ask the primary"
            );
        }
        Pending::SlotInUse => {
            let _ = writeln!(
                out,
                "pending events     unknown: a relay streams from the slot (backend {}); see its /metrics",
                status.active_pid.unwrap_or_default()
            );
        }
        Pending::Counted {
            events,
            oldest_commit,
            complete,
        } => {
            let bound = if *complete { "" } else { "at least " };
            let _ = writeln!(out, "pending events     {bound}{events}");
            let age = oldest_commit
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map_or_else(unknown, |d| format!("{:.1} s", d.as_secs_f64()));
            let _ = writeln!(out, "oldest pending     {age}");
        }
    }
}
