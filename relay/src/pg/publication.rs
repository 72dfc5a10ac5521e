//! What the publication streams of the outbox table, read from the catalog.
//!
//! pgoutput sends only what the publication carries, decided per WAL record: rows of a table the
//! publication lacks, or inserts it does not publish, never reach the relay, and nothing in the
//! stream says they existed. So the relay reads these facts at start and again before each
//! acknowledgement that would pass new WAL, and `check` prints the same diagnosis.

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::{Client, Statement};

use crate::lsn::Lsn;
use crate::outbox::OutboxTable;
use crate::pg::catalog::CatalogError;

/// How to bring back rows that were committed but never streamed.
const REPUBLISH: &str =
    "`outbox-relay replay --since <time>` (or --aggregate-id, --id) publishes them again with their ids, so consumers still dedup";

const QUERY: &str = "SELECT c.oid, coalesce(c.relkind::text, ''), coalesce(c.relpersistence = 'u', false),
        p.oid IS NOT NULL, coalesce(p.pubinsert, false), coalesce(p.pubupdate, false),
        coalesce(p.pubdelete, false), coalesce(p.pubtruncate, false),
        coalesce(p.puballtables, false), coalesce(p.pubviaroot, false),
        EXISTS (SELECT 1 FROM pg_publication_tables t
                WHERE t.pubname = $2 AND t.schemaname = $3 AND t.tablename = $4),
        -- Only the diagnosis of a partitioned outbox published without its root needs this.
        CASE WHEN c.relkind = 'p' AND NOT coalesce(p.pubviaroot, true) THEN
            EXISTS (SELECT 1 FROM pg_publication_tables t
                    JOIN pg_namespace n ON n.nspname = t.schemaname
                    JOIN pg_class k ON k.relnamespace = n.oid AND k.relname = t.tablename
                    WHERE t.pubname = $2
                      AND k.oid IN (SELECT relid FROM pg_partition_tree(c.oid) WHERE relid <> c.oid))
        ELSE false END
 FROM (SELECT to_regclass($1) AS reg) r
 LEFT JOIN pg_class c ON c.oid = r.reg
 LEFT JOIN pg_publication p ON p.pubname = $2";

/// The catalog's answer about the outbox table and the publication, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The table's oid, `None` when no relation has the configured name.
    pub oid: Option<u32>,
    /// `pg_class.relkind`: `r` table, `p` partitioned table, `v` view, ...
    relkind: String,
    unlogged: bool,
    /// `None` when the publication does not exist.
    publication: Option<Publication>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Publication {
    insert: bool,
    update: bool,
    delete: bool,
    truncate: bool,
    all_tables: bool,
    via_root: bool,
    /// The publication streams the table under its own name.
    covers: bool,
    /// The publication streams some of the table's partitions under their own names.
    covers_partitions: bool,
}

impl Coverage {
    /// The reading, planned once: planning it costs about ten times running it, and the source
    /// runs it before acknowledgements.
    pub async fn prepare(client: &Client) -> Result<Statement, CatalogError> {
        Ok(client.prepare(QUERY).await?)
    }

    pub async fn read(
        client: &Client,
        query: &Statement,
        publication: &str,
        outbox: &OutboxTable,
    ) -> Result<Coverage, CatalogError> {
        let (schema, table) = outbox.qualified_name();
        let row = client
            .query_one(
                query,
                &[&outbox.quoted_name(), &publication, &schema, &table],
            )
            .await?;
        let exists: bool = row.get(3);
        Ok(Coverage {
            oid: row.get(0),
            relkind: row.get(1),
            unlogged: row.get(2),
            publication: exists.then(|| Publication {
                insert: row.get(4),
                update: row.get(5),
                delete: row.get(6),
                truncate: row.get(7),
                all_tables: row.get(8),
                via_root: row.get(9),
                covers: row.get(10),
                covers_partitions: row.get(11),
            }),
        })
    }

    pub fn publication_exists(&self) -> bool {
        self.publication.is_some()
    }

    /// A new table under the outbox's name joins a `FOR ALL TABLES` publication at its creation;
    /// any other publication gets it only when someone adds it, after rows may have been written.
    pub fn follows_new_tables(&self) -> bool {
        self.publication.as_ref().is_some_and(|p| p.all_tables)
    }

    /// Why the table's rows cannot be in the WAL at all.
    pub fn table_problem(&self, outbox: &OutboxTable) -> Result<(), CatalogError> {
        let name = &outbox.table;
        if self.oid.is_none() {
            return Err(CatalogError::misconfigured(
                format!("outbox table {name} does not exist"),
                "create it with the SQL printed by `outbox-relay ddl`, or point --table at the existing one",
            ));
        }
        if self.relkind != "r" && self.relkind != "p" {
            let kind = match self.relkind.as_str() {
                "v" => "a view",
                "m" => "a materialized view",
                "f" => "a foreign table",
                _ => "not a table",
            };
            return Err(CatalogError::misconfigured(
                format!(
                    "outbox {name} is {kind}: logical replication streams the rows of tables only"
                ),
                "point --table (outbox.table) at the table the services insert into",
            ));
        }
        if self.unlogged {
            return Err(CatalogError::misconfigured(
                format!("outbox table {name} is UNLOGGED: its rows are not written to the WAL, so logical replication cannot stream them"),
                format!("run `ALTER TABLE {} SET LOGGED;` as its owner, or relay it with --mode polling", outbox.quoted_name()),
            ));
        }
        Ok(())
    }

    /// Why the publication would not stream the table's inserts as the outbox's; `Ok` when the
    /// publication does not exist (the caller decides whether to create it).
    pub fn publication_problem(
        &self,
        publication: &str,
        outbox: &OutboxTable,
    ) -> Result<(), CatalogError> {
        let Some(p) = &self.publication else {
            return Ok(());
        };
        let name = &outbox.table;
        let quoted = escape_identifier(publication);
        if !p.insert {
            let actions = [
                (p.insert, "insert"),
                (p.update, "update"),
                (p.delete, "delete"),
                (p.truncate, "truncate"),
            ];
            let list = |with_insert: bool| {
                actions
                    .iter()
                    .filter(|(on, action)| *on || (with_insert && *action == "insert"))
                    .map(|(_, action)| *action)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(CatalogError::misconfigured(
                format!(
                    "publication {publication} does not publish inserts (publish = '{}'), so no outbox row reaches the relay",
                    list(false)
                ),
                format!(
                    "run `ALTER PUBLICATION {quoted} SET (publish = '{}');`; rows committed to {name} while it did not publish inserts are never streamed: re-publish them ({REPUBLISH})",
                    list(true)
                ),
            ));
        }
        if !p.covers && self.relkind == "p" && !p.via_root && p.covers_partitions {
            return Err(CatalogError::misconfigured(
                format!(
                    "publication {publication} publishes the partitions of {name} under their own names (publish_via_partition_root is off), so their rows are not recognised as outbox rows"
                ),
                format!("run `ALTER PUBLICATION {quoted} SET (publish_via_partition_root = true);`"),
            ));
        }
        if !p.covers {
            return Err(CatalogError::misconfigured(
                format!("publication {publication} does not include {name}"),
                format!(
                    "run `ALTER PUBLICATION {quoted} ADD TABLE {};` or choose another --publication; rows inserted into {name} before it joined the publication are never streamed: if the table was re-created or swapped in by a rename while a relay ran, re-publish them after the ALTER ({REPUBLISH})",
                    outbox.quoted_name()
                ),
            ));
        }
        Ok(())
    }

    /// Everything that stops streaming: the table, then the publication, which must exist.
    pub fn problem(
        &self,
        publication: &str,
        slot: &str,
        confirmed: Lsn,
        outbox: &OutboxTable,
    ) -> Result<(), CatalogError> {
        self.table_problem(outbox)?;
        if !self.publication_exists() {
            return Err(dropped(publication, slot, confirmed));
        }
        self.publication_problem(publication, outbox)
    }
}

/// The publication is gone while the slot that streamed it remains: pgoutput reads publications
/// as of the WAL it decodes, so no session of this slot gets past the drop, re-created or not.
pub fn dropped(publication: &str, slot: &str, confirmed: Lsn) -> CatalogError {
    CatalogError::misconfigured(
        format!(
            "publication {publication} was dropped while replication slot {slot} still needs it (confirmed up to {confirmed}): PostgreSQL decodes the slot's WAL with the publications of that time, so it cannot stream past the drop"
        ),
        format!(
            "run `outbox-relay drop-slot --slot {slot}` and start the relay again (it creates the publication and a fresh slot), then re-publish the outbox rows committed after {confirmed} ({REPUBLISH})"
        ),
    )
}

/// The outbox table's oid changed while the relay ran, and the publication only got the new
/// table when someone added it: rows written before that were never streamed.
pub fn replaced(publication: &str, outbox: &OutboxTable, was: u32, now: u32) -> CatalogError {
    CatalogError::misconfigured(
        format!(
            "outbox table {} was replaced while the relay ran (oid {was} is now {now}); rows inserted into the new table before it joined publication {publication} were not streamed",
            outbox.table
        ),
        format!(
            "re-publish the rows {} received before it joined the publication, if any ({REPUBLISH}), then start the relay again",
            outbox.table
        ),
    )
}

/// The relation's columns as pgoutput sends them (no dropped or generated ones, in order), with
/// their type oids; empty when the relation is gone.
pub async fn columns(client: &Client, oid: u32) -> Result<Vec<(String, u32)>, CatalogError> {
    Ok(client
        .query(
            "SELECT attname::text, atttypid FROM pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
             ORDER BY attnum",
            &[&oid],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}
