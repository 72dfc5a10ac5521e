//! The `checkpoint table` line of `outbox-relay check`: whether the relay can keep its durable
//! checkpoint, and whether it could repair a gap from it, which reads the outbox.

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use super::Finding;
use crate::config::Config;
use crate::outbox::quote_table;
use crate::pg::catalog::CatalogError;

const ITEM: &str = "checkpoint table";

/// The line when `checkpoint_table` is set.
pub async fn check(client: &Client, config: &Config, table: &str) -> Result<Finding, CatalogError> {
    let quoted = quote_table(table);
    let row = client
        .query_one(
            "SELECT current_user::text, to_regclass($1) IS NOT NULL",
            &[&quoted],
        )
        .await?;
    let (user, exists): (String, bool) = (row.get(0), row.get(1));
    let grant = |privileges: &str, on: &str| {
        format!(
            "GRANT {privileges} ON {on} TO {};",
            escape_identifier(&user)
        )
    };
    if !exists {
        return Ok(Finding::fail(
            ITEM,
            format!("{table} does not exist"),
            format!(
                "create it with the SQL printed by `outbox-relay ddl --checkpoint-table {table}`, then {}",
                grant("SELECT, INSERT, UPDATE", &quoted)
            ),
        ));
    }
    let row = client
        .query_one(
            "SELECT has_table_privilege($1, 'SELECT'), has_table_privilege($1, 'INSERT'),
                    has_table_privilege($1, 'UPDATE'), has_table_privilege($2, 'SELECT')",
            &[&quoted, &config.outbox.quoted_name()],
        )
        .await?;
    let lacking: Vec<&str> = ["SELECT", "INSERT", "UPDATE"]
        .into_iter()
        .zip([row.get::<_, bool>(0), row.get(1), row.get(2)])
        .filter(|(_, granted)| !granted)
        .map(|(privilege, _)| privilege)
        .collect();
    if !lacking.is_empty() {
        return Ok(Finding::fail(
            ITEM,
            format!("role {user} lacks {} on {table}", lacking.join(", ")),
            grant(&lacking.join(", "), &quoted),
        ));
    }
    if !row.get::<_, bool>(3) {
        return Ok(Finding::warn(
            ITEM,
            format!(
                "{table} is kept, but a gap repair reads {} and role {user} lacks SELECT on it",
                config.outbox.table
            ),
            grant("SELECT", &config.outbox.quoted_name()),
        ));
    }
    let written: Option<String> = client
        .query_opt(
            &format!(
                "SELECT format('at %s, written %s', confirmed_lsn, date_trunc('second', updated_at)) FROM {quoted} WHERE slot_name = $1"
            ),
            &[&config.slot],
        )
        .await?
        .map(|row| row.get(0));
    Ok(Finding::ok(
        ITEM,
        match written {
            Some(written) => format!("{table}: {} {written}", config.slot),
            None => format!(
                "{table}: no row for {} yet; the relay writes one",
                config.slot
            ),
        },
    ))
}
