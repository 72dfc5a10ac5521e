//! Versioned schema migrations, embedded in the binary and applied at start-up. Applied versions are
//! recorded in `schema_migrations` with a checksum, so a rerun is a no-op and an edited migration that
//! was already applied is an error instead of a silent difference between databases.

use tokio_postgres::Client;

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration of the order-service, in version order. Append only: never edit a released one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders",
        sql: include_str!("../../migrations/V1__orders.sql"),
    },
    Migration {
        version: 2,
        name: "outbox",
        sql: include_str!("../../migrations/V2__outbox.sql"),
    },
    Migration {
        version: 3,
        name: "outbox_polling",
        sql: include_str!("../../migrations/V3__outbox_polling.sql"),
    },
    Migration {
        version: 4,
        name: "saga",
        sql: include_str!("../../migrations/V4__saga.sql"),
    },
    Migration {
        version: 5,
        name: "processed_events",
        sql: include_str!("../../migrations/V5__processed_events.sql"),
    },
    Migration {
        version: 6,
        name: "order_correlation",
        sql: include_str!("../../migrations/V6__order_correlation.sql"),
    },
];

/// Serializes concurrent start-ups of several instances: an arbitrary constant, unique to this service.
const LOCK_KEY: i64 = 0x6f72_6465_725f_6d67;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("migration {version} ({name}) failed")]
    Failed {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migration {version} ({name}) was changed after it was applied")]
    Changed { version: i32, name: &'static str },
    #[error("cannot read or record the applied migrations")]
    Db(#[from] tokio_postgres::Error),
}

/// Applies [`MIGRATIONS`]; returns the versions it applied, none if the schema was up to date.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrationError> {
    run_migrations(client, MIGRATIONS).await
}

/// Applies those of `migrations` not yet applied, all in one transaction, so a failure leaves the
/// schema as it was.
pub async fn run_migrations(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Vec<i32>, MigrationError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let mut applied = Vec::new();
    for migration in migrations {
        let unchanged: Option<bool> = tx
            .query_opt(
                "SELECT checksum = md5($2) FROM schema_migrations WHERE version = $1",
                &[&migration.version, &migration.sql],
            )
            .await?
            .map(|row| row.get(0));
        match unchanged {
            Some(true) => continue,
            Some(false) => {
                return Err(MigrationError::Changed {
                    version: migration.version,
                    name: migration.name,
                })
            }
            None => {}
        }
        tx.batch_execute(migration.sql)
            .await
            .map_err(|source| MigrationError::Failed {
                version: migration.version,
                name: migration.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3))",
            &[&migration.version, &migration.name, &migration.sql],
        )
        .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        applied.push(migration.version);
    }
    tx.commit().await?;
    Ok(applied)
}
