//! Versioned schema migrations, embedded in the binary and applied at start.
//!
//! `schema_migrations` records each applied version. All pending migrations run in one transaction
//! under an advisory lock, so instances starting together neither race nor leave a half-migrated
//! schema behind.

use tokio_postgres::Client;

/// Taken for the whole migration transaction; any constant unique to this service would do.
const LOCK_KEY: i64 = 0x1_7e01_ce5e;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// In version order; a released migration is never edited, only followed by a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "outbox",
        sql: include_str!("../migrations/0002_outbox.sql"),
    },
    Migration {
        version: 3,
        name: "saga",
        sql: include_str!("../migrations/0003_saga.sql"),
    },
];

/// Applies the migrations the database lacks and returns their versions.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "create table if not exists schema_migrations (
             version integer primary key,
             name text not null,
             applied_at timestamptz not null default now()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("select version from schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut newly_applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "insert into schema_migrations (version, name) values ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        newly_applied.push(migration.version);
    }
    tx.commit().await?;
    Ok(newly_applied)
}
