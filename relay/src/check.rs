//! `outbox-relay check`: every prerequisite of the relay, checked against a database it may never
//! have seen, reported as a table with the SQL or setting that fixes each failing line.

mod checkpoint;
mod failover;
mod publish;

use std::fmt::Write;
use std::time::Duration;

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;

use crate::config::Config;
use crate::pg::catalog::{self, CatalogError};
use crate::pg::publication::{self, Coverage};
use crate::sink;
use crate::source::mode::{self, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but deserves the operator's attention.
    Warn,
    /// The relay cannot run until this is fixed.
    Fail,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub item: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(item: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            item,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(item: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            item,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(item: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            item,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `check` waits for Kafka metadata: brokers that answer at all answer in milliseconds.
const KAFKA_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check; a failing one never hides the others.
pub async fn run(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let client = match config.database() {
        Err(error) => {
            findings.push(Finding::fail(
                "database",
                error.to_string(),
                "fix database_url",
            ));
            None
        }
        Ok(database) => match catalog::connect(&database).await {
            Err(error) => {
                let fix = match error {
                    CatalogError::PasswordMissing => {
                        "put the password in database_url, or the whole URL in a file named by --database-url-file"
                    }
                    _ => "check database_url, the network path and pg_hba.conf",
                };
                findings.push(Finding::fail("database", error.to_string(), fix));
                None
            }
            Ok(client) => {
                findings.push(Finding::ok("database", "connected"));
                if let Err(error) = database_checks(&client, config, &mut findings).await {
                    findings.push(Finding::fail(
                        "database",
                        error.to_string(),
                        "see the error",
                    ));
                }
                Some(client)
            }
        },
    };
    let broker = broker_check(config).await;
    let reachable = broker.status == Status::Ok;
    findings.push(broker);
    // An unreachable broker cannot be asked, and its line already fails.
    if reachable {
        findings.extend(publish::check(config, client.as_ref()).await);
    }
    findings
}

async fn database_checks(
    client: &Client,
    config: &Config,
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let polling = match config.mode {
        Mode::Logical => false,
        Mode::Polling => true,
        Mode::Auto => {
            let blocker = mode::logical_blocker(client, &config.slot).await?;
            let Some(logical) = blocker else {
                let backlog = mode::polling_backlog(
                    client,
                    &config.outbox,
                    &config.slot,
                    &config.publication,
                )
                .await?;
                findings.push(match backlog {
                    None => Finding::ok("mode", "auto: logical replication"),
                    Some(rows) => Finding::ok(
                        "mode",
                        format!("auto: logical replication, once polling has relayed the {rows} rows it has not relayed yet (published_at IS NULL)"),
                    ),
                });
                return checks_of(false, client, config, findings).await;
            };
            match mode::polling_blocker(client, &config.outbox, config.cleanup).await? {
                None => {
                    findings.push(Finding::warn(
                        "mode",
                        format!("auto: polling the table, because {}", logical.problem),
                        "nothing if polling suits you; for logical replication, run `check --mode logical` and follow its fixes",
                    ));
                    true
                }
                // Logical replication is what the Quick Start sets up: its checks say what is left.
                Some(polling) => {
                    let mode::Blocker { problem, fix } = mode::neither(&logical, &polling);
                    findings.push(Finding::fail("mode", problem, fix));
                    false
                }
            }
        }
    };
    checks_of(polling, client, config, findings).await
}

/// The checks of the table and of the mode's prerequisites.
async fn checks_of(
    polling: bool,
    client: &Client,
    config: &Config,
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let columns = table_columns(client, config).await?;
    outbox_table_check(config, &columns, findings);
    if polling {
        polling_checks(client, config, &columns, findings).await
    } else {
        logical_checks(client, config, findings).await
    }
}

/// Replication prerequisites: wal_level, the role, the publication, the slot and its failover, the WAL
/// guard.
async fn logical_checks(
    client: &Client,
    config: &Config,
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    findings.push(if wal_level == "logical" {
        Finding::ok("wal_level", "logical")
    } else {
        Finding::fail(
            "wal_level",
            format!("'{wal_level}': logical decoding is off"),
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        )
    });

    let row = client
        .query_one(
            "SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let (user, replication): (String, bool) = (row.get(0), row.get(1));
    findings.push(if replication {
        Finding::ok(
            "replication privilege",
            format!("role {user} may replicate"),
        )
    } else {
        Finding::fail(
            "replication privilege",
            format!("role {user} lacks REPLICATION"),
            format!("ALTER ROLE {} WITH REPLICATION;", escape_identifier(&user)),
        )
    });

    let outbox = &config.outbox;
    let publication = &config.publication;
    let slot = &config.slot;
    // The same reading and the same words as the relay's own refusal.
    let query = Coverage::prepare(client).await?;
    let coverage = Coverage::read(client, &query, publication, outbox).await?;
    if coverage.oid.is_some() {
        if let Some(finding) = misconfigured("outbox table", coverage.table_problem(outbox))? {
            findings.push(finding);
        }
    }
    let finding = if coverage.publication_exists() {
        misconfigured(
            "publication",
            coverage.publication_problem(publication, outbox),
        )?
        .unwrap_or_else(|| {
            Finding::ok(
                "publication",
                format!("{publication} includes {}", outbox.table),
            )
        })
    } else if let Some(confirmed) = catalog::slot_confirmed(client, slot).await? {
        match publication::dropped(publication, slot, confirmed) {
            CatalogError::Misconfigured { problem, fix } => {
                Finding::fail("publication", problem, fix)
            }
            other => return Err(other),
        }
    } else {
        let create = format!(
            "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert', publish_via_partition_root = true);",
            escape_identifier(publication),
            outbox.quoted_name()
        );
        // Creating a publication for a table takes ownership of it and CREATE on the database.
        // No row: the table does not exist.
        let may_create: Option<Option<bool>> = client
            .query_opt(
                "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                     OR (pg_has_role(current_user, relowner, 'USAGE')
                         AND has_database_privilege(current_database(), 'CREATE'))
                 FROM pg_class WHERE oid = to_regclass($1)",
                &[&outbox.quoted_name()],
            )
            .await
            .ok()
            .map(|row| row.and_then(|row| row.get(0)));
        if may_create == Some(None) {
            Finding::fail(
                "publication",
                format!("{publication} does not exist, and cannot before the outbox table does"),
                format!("create the outbox table first (see `outbox table`); the relay then creates the publication at start, or its owner runs: {create}"),
            )
        } else if may_create == Some(Some(true)) {
            Finding::warn(
                "publication",
                format!("{publication} does not exist; the relay creates it at start"),
                format!("nothing; or create it yourself: {create}"),
            )
        } else {
            Finding::fail(
                "publication",
                format!("{publication} does not exist and role {user} may not create it"),
                format!("as the owner of {}: {create}", outbox.table),
            )
        }
    };
    findings.push(finding);

    let row = client
        .query_opt(
            "SELECT plugin::text, coalesce(wal_status, ''), active, active_pid, database::text = current_database(),
                    (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, database::text
             FROM pg_replication_slots WHERE slot_name = $1",
            &[slot],
        )
        .await?;
    findings.push(match row {
        None => {
            let free: i64 = client
                .query_one(
                    "SELECT current_setting('max_replication_slots')::bigint - count(*) FROM pg_replication_slots",
                    &[],
                )
                .await?
                .get(0);
            if free > 0 {
                Finding::warn(
                    "replication slot",
                    format!("{slot} does not exist; the relay creates it at start ({free} free)"),
                    "nothing: rows committed after its creation are relayed",
                )
            } else {
                Finding::fail(
                    "replication slot",
                    format!("{slot} does not exist and max_replication_slots is used up"),
                    "raise max_replication_slots (restart needed) or drop an unused slot",
                )
            }
        }
        Some(row) => {
            let (plugin, wal_status, active, pid, same_database, lag): (
                Option<String>,
                String,
                bool,
                Option<i32>,
                Option<bool>,
                Option<i64>,
            ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
            let lag = lag.map_or_else(|| "unknown".to_owned(), |b| format!("{b} bytes"));
            if plugin.as_deref() != Some("pgoutput") || same_database != Some(true) {
                Finding::fail(
                    "replication slot",
                    format!(
                        "{slot} is not a pgoutput slot of this database: {}",
                        catalog::slot_kind(plugin.as_deref(), row.get(6))
                    ),
                    "choose another --slot, or drop that slot if nothing uses it",
                )
            } else if wal_status == "lost" {
                Finding::fail(
                    "replication slot",
                    format!("{slot} was invalidated: WAL it needed is gone"),
                    format!("outbox-relay drop-slot --slot {slot}, start the relay, re-publish rows committed meanwhile"),
                )
            } else if active {
                Finding::warn(
                    "replication slot",
                    format!("{slot} is in use by backend {} (lag {lag})", pid.unwrap_or_default()),
                    "nothing if that is this relay; a second relay waits until the slot is free",
                )
            } else {
                Finding::ok("replication slot", format!("{slot} exists, wal_status {wal_status}, lag {lag}"))
            }
        }
    });

    findings.extend(failover::check(client, config).await?);

    let keep: String = client
        .query_one("SHOW max_slot_wal_keep_size", &[])
        .await?
        .get(0);
    findings.push(if keep == "-1" {
        Finding::warn(
            "max_slot_wal_keep_size",
            "unlimited: a stalled relay keeps WAL until the disk is full",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT pg_reload_conf(); (size it to your disk)",
        )
    } else {
        Finding::ok("max_slot_wal_keep_size", keep)
    });
    if let Some(table) = &config.checkpoint_table {
        findings.push(checkpoint::check(client, config, table).await?);
    }
    Ok(())
}

/// A failing line for a condition the relay refuses to run with; other errors end the checks.
fn misconfigured(
    item: &'static str,
    result: Result<(), CatalogError>,
) -> Result<Option<Finding>, CatalogError> {
    match result {
        Ok(()) => Ok(None),
        Err(CatalogError::Misconfigured { problem, fix }) => {
            Ok(Some(Finding::fail(item, problem, fix)))
        }
        Err(other) => Err(other),
    }
}

/// The outbox table and its event columns, which both modes read.
fn outbox_table_check(config: &Config, columns: &[String], findings: &mut Vec<Finding>) {
    let outbox = &config.outbox;
    findings.push(if columns.is_empty() {
        Finding::fail(
            "outbox table",
            format!("{} does not exist", outbox.table),
            "create it with the SQL from `outbox-relay ddl`, or set --table",
        )
    } else {
        match outbox.layout(columns) {
            Ok(_) => Finding::ok(
                "outbox table",
                format!("{} has the configured columns", outbox.table),
            ),
            Err(missing) => Finding::fail(
                "outbox table",
                format!("{} lacks {:?}", outbox.table, missing.missing),
                "add the columns (see `outbox-relay ddl`) or map existing ones in [outbox.columns]",
            ),
        }
    });
}

/// pg_attribute rather than information_schema, which hides tables the role cannot read.
async fn table_columns(client: &Client, config: &Config) -> Result<Vec<String>, CatalogError> {
    Ok(client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&config.outbox.quoted_name()],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Polling prerequisites: the ordering and marking columns, the privileges to claim and settle
/// rows, and the trigger that wakes the relay on inserts.
async fn polling_checks(
    client: &Client,
    config: &Config,
    columns: &[String],
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let outbox = &config.outbox;
    if columns.is_empty() {
        return Ok(());
    }
    let c = &outbox.columns;
    let missing: Vec<&String> = [&c.sequence, &c.published_at]
        .into_iter()
        .filter(|n| !columns.contains(n))
        .collect();
    findings.push(if missing.is_empty() {
        Finding::ok(
            "polling columns",
            format!("{} orders rows, {} marks them", c.sequence, c.published_at),
        )
    } else {
        Finding::fail(
            "polling columns",
            format!("{} lacks {missing:?}", outbox.table),
            format!(
                "as the table's owner: {}",
                outbox.polling_columns_ddl().trim_end()
            ),
        )
    });
    let privileges = mode::polling_privileges(client, outbox, config.cleanup).await?;
    findings.push(if privileges.lacking.is_empty() {
        Finding::ok(
            "table privileges",
            format!(
                "role {} may {}",
                privileges.user,
                privileges.needed.join(", ")
            ),
        )
    } else {
        Finding::fail(
            "table privileges",
            format!(
                "role {} lacks {}",
                privileges.user,
                privileges.lacking.join(", ")
            ),
            privileges.grant(outbox),
        )
    });
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = 'outbox_relay_notify'),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                      OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = $1::text::regclass), 'USAGE')",
            &[&outbox.quoted_name()],
        )
        .await?;
    let (trigger, owner): (bool, Option<bool>) = (row.get(0), row.get(1));
    findings.push(if trigger {
        Finding::ok("notify trigger", "present: inserts wake the relay")
    } else if config.polling.install_trigger && owner == Some(true) {
        Finding::ok("notify trigger", "missing; the relay installs it at start")
    } else {
        Finding::warn(
            "notify trigger",
            format!(
                "missing: the relay polls every {:?}",
                config.polling.interval
            ),
            format!(
                "as the table's owner: {}",
                outbox
                    .notify_trigger_ddl(&config.polling.channel)
                    .replace('\n', " ")
            ),
        )
    });
    Ok(())
}

async fn broker_check(config: &Config) -> Finding {
    let name = format!("{:?}", config.sink).to_lowercase();
    // librdkafka keeps retrying a refused broker until message_timeout; a shorter wait lets the
    // Kafka connect fail with the refused address rather than be cut off without it.
    let mut config = config.clone();
    config.kafka.message_timeout = config.kafka.message_timeout.min(KAFKA_PROBE_TIMEOUT);
    match tokio::time::timeout(BROKER_TIMEOUT, sink::connect(&config)).await {
        Ok(Ok(_)) if name == "stdout" => Finding::ok("broker", "stdout: events are printed"),
        Ok(Ok(_)) => Finding::ok("broker", format!("{name} reachable")),
        Ok(Err(error)) => Finding::fail(
            "broker",
            error.to_string(),
            format!("check the {name} settings and that the broker runs"),
        ),
        Err(_) => Finding::fail(
            "broker",
            format!("{name} did not answer within {BROKER_TIMEOUT:?}"),
            format!("check the {name} settings and that the broker runs"),
        ),
    }
}

/// A table for people, then the fixes for what is not ok.
pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.item.len()).max().unwrap_or(0);
    let mut out = String::new();
    for finding in findings {
        let status = match finding.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(
            out,
            "{:<width$}  {status:<4}  {}",
            finding.item, finding.detail
        );
    }
    let fixes: Vec<&Finding> = findings.iter().filter(|f| f.status != Status::Ok).collect();
    if !fixes.is_empty() {
        out.push_str("\nHow to fix:\n");
        for finding in fixes {
            let _ = writeln!(
                out,
                "  {}: {}",
                finding.item,
                finding.fix.as_deref().unwrap_or("-")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table_and_the_fixes() {
        let text = render(&[
            Finding::ok("database", "connected"),
            Finding::fail(
                "wal_level",
                "'replica'",
                "ALTER SYSTEM SET wal_level = logical",
            ),
        ]);
        assert_eq!(
            text,
            "database   ok    connected\nwal_level  FAIL  'replica'\n\nHow to fix:\n  wal_level: ALTER SYSTEM SET wal_level = logical\n"
        );
    }
}
