//! The durable checkpoint: one row per slot in `checkpoint_table`, holding the position the relay
//! acknowledged, the commit time of the last transaction relayed up to it, and the server and
//! timeline it was written on. It is an ordinary table, so physical replication carries it to every
//! standby: after a failover that lost the slot (PostgreSQL before 17 does not carry logical slots),
//! the new primary still knows where the slot stood, and gap repair republishes from there.

pub mod recorder;

use std::time::SystemTime;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::lsn::Lsn;
use crate::outbox::quote_table;
use crate::pg::catalog::{parse_lsn, CatalogError};
use crate::pg::error_chain;

/// A database cluster and its timeline: `initdb` draws the system identifier, which a physical
/// standby shares with its primary; each promotion starts a new timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub system_identifier: i64,
    pub timeline: i32,
}

/// A slot's row in the checkpoint table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Acknowledged to the slot after the broker confirmed every event before it.
    pub position: Lsn,
    /// Commit time of the last transaction relayed up to `position`; `None` until one was.
    pub last_commit: Option<SystemTime>,
    pub server: Server,
    pub updated_at: SystemTime,
}

impl Checkpoint {
    /// Every transaction after `position` committed after this, up to clock and ordering slack.
    pub fn committed_before(&self) -> SystemTime {
        self.last_commit.unwrap_or(self.updated_at)
    }
}

/// The DDL of the checkpoint table; the relay's role needs SELECT, INSERT and UPDATE on it.
pub fn ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    slot_name text PRIMARY KEY,\n    confirmed_lsn pg_lsn NOT NULL,\n    last_commit_at timestamptz,\n    system_identifier bigint NOT NULL,\n    timeline integer NOT NULL,\n    updated_at timestamptz NOT NULL\n);\n",
        quote_table(table)
    )
}

/// The server this session is connected to. Its timeline is the current WAL file's, which a
/// promotion changes at once (`pg_control_checkpoint()` shows it only after the next checkpoint).
pub async fn server(client: &Client) -> Result<Server, CatalogError> {
    let row = client
        .query_one(
            "SELECT system_identifier, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
             FROM pg_control_system()",
            &[],
        )
        .await?;
    Ok(Server {
        system_identifier: row.get(0),
        timeline: row.get(1),
    })
}

/// The slot's checkpoint, `None` when the relay never wrote one for it.
pub async fn read(
    client: &Client,
    table: &str,
    slot: &str,
) -> Result<Option<Checkpoint>, CatalogError> {
    let sql = format!(
        "SELECT confirmed_lsn::text, last_commit_at, system_identifier, timeline, updated_at FROM {} WHERE slot_name = $1",
        quote_table(table)
    );
    let row = match client.query_opt(&sql, &[&slot]).await {
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            return Err(CatalogError::misconfigured(
                format!("checkpoint table {table} does not exist: {}", error_chain(&e)),
                format!(
                    "create it with the SQL printed by `outbox-relay ddl --checkpoint-table {table}`, and grant the relay's role SELECT, INSERT, UPDATE on it"
                ),
            ))
        }
        result => result?,
    };
    row.map(|row| {
        Ok(Checkpoint {
            position: parse_lsn(row.get(0))?,
            last_commit: row.get(1),
            server: Server {
                system_identifier: row.get(2),
                timeline: row.get(3),
            },
            updated_at: row.get(4),
        })
    })
    .transpose()
}

/// Records `position` for `slot`; a `last_commit` of `None` keeps the one recorded before, as no
/// transaction was relayed since.
pub async fn write(
    client: &Client,
    table: &str,
    slot: &str,
    position: Lsn,
    last_commit: Option<SystemTime>,
    server: Server,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {table} AS c (slot_name, confirmed_lsn, last_commit_at, system_identifier, timeline, updated_at)
         VALUES ($1, $2::text::pg_lsn, $3, $4, $5, now())
         ON CONFLICT (slot_name) DO UPDATE SET confirmed_lsn = excluded.confirmed_lsn,
             last_commit_at = coalesce(excluded.last_commit_at, c.last_commit_at),
             system_identifier = excluded.system_identifier, timeline = excluded.timeline,
             updated_at = excluded.updated_at",
        table = quote_table(table)
    );
    client
        .execute(
            &sql,
            &[
                &slot,
                &position.to_string(),
                &last_commit,
                &server.system_identifier,
                &server.timeline,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_quotes_the_table() {
        let ddl = ddl("ops.Relay_Checkpoint");
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS \"ops\".\"Relay_Checkpoint\" ("),
            "{ddl}"
        );
        assert!(ddl.contains("confirmed_lsn pg_lsn NOT NULL"), "{ddl}");
    }

    #[test]
    fn a_checkpoint_without_a_relayed_transaction_counts_from_its_write() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let mut checkpoint = Checkpoint {
            position: Lsn(1),
            last_commit: None,
            server: Server {
                system_identifier: 1,
                timeline: 1,
            },
            updated_at: at,
        };
        assert_eq!(checkpoint.committed_before(), at);
        checkpoint.last_commit = Some(SystemTime::UNIX_EPOCH);
        assert_eq!(checkpoint.committed_before(), SystemTime::UNIX_EPOCH);
    }
}
