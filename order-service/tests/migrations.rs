//! Schema migrations: applied once, a rerun is a no-op, concurrent runs apply once, an edited migration
//! is refused, and the outbox migration stays the relay's DDL.

use std::fs;
use std::path::Path;

use order_service::store::{self, Migration, MigrationError, MIGRATIONS};

async fn schema_of(client: &tokio_postgres::Client) -> Vec<(String, String, String)> {
    client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn running_twice_is_a_no_op() {
    let postgres = harness::Postgres::start().unwrap();
    let mut client = postgres.client().await.unwrap();
    assert_eq!(
        store::migrate(&mut client).await.unwrap(),
        [1, 2, 3, 4, 5, 6]
    );
    let schema = schema_of(&client).await;
    assert!(schema.iter().any(|(table, ..)| table == "outbox"));
    assert!(schema.iter().any(|(table, ..)| table == "order_lines"));
    let recorded: Vec<(i32, String)> = client
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        recorded,
        [
            (1, "orders".to_owned()),
            (2, "outbox".to_owned()),
            (3, "outbox_polling".to_owned()),
            (4, "saga".to_owned()),
            (5, "processed_events".to_owned()),
            (6, "order_correlation".to_owned())
        ]
    );

    assert!(store::migrate(&mut client).await.unwrap().is_empty());
    assert_eq!(schema_of(&client).await, schema);
    let count: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 6);
}

#[tokio::test]
async fn concurrent_runs_apply_each_migration_once() {
    let postgres = harness::Postgres::start().unwrap();
    let mut a = postgres.client().await.unwrap();
    let mut b = postgres.client().await.unwrap();
    let (first, second) = tokio::join!(store::migrate(&mut a), store::migrate(&mut b));
    let mut applied = [first.unwrap(), second.unwrap()];
    applied.sort();
    assert_eq!(applied, [vec![], vec![1, 2, 3, 4, 5, 6]]);
}

#[tokio::test]
async fn an_edited_migration_is_refused_and_nothing_runs() {
    let postgres = harness::Postgres::start().unwrap();
    let mut client = postgres.client().await.unwrap();
    store::run_migrations(&mut client, &MIGRATIONS[..1])
        .await
        .unwrap();
    let edited = [
        Migration {
            sql: "CREATE TABLE sneaky (id int);",
            ..MIGRATIONS[0]
        },
        MIGRATIONS[1],
    ];
    let error = store::run_migrations(&mut client, &edited)
        .await
        .unwrap_err();
    assert!(
        matches!(error, MigrationError::Changed { version: 1, .. }),
        "{error:?}"
    );
    let outbox: Option<String> = client
        .query_one("SELECT to_regclass('outbox')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, None, "migration 2 must not run after a refusal");
}

#[tokio::test]
async fn a_failing_migration_leaves_the_schema_as_it_was() {
    let postgres = harness::Postgres::start().unwrap();
    let mut client = postgres.client().await.unwrap();
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE fine (id int); SELECT * FROM no_such_table;",
        },
    ];
    let error = store::run_migrations(&mut client, &broken)
        .await
        .unwrap_err();
    assert!(
        matches!(error, MigrationError::Failed { version: 2, .. }),
        "{error:?}"
    );
    assert!(schema_of(&client).await.is_empty());
}

/// The relay's DDL in relay/sql/ is the wire contract for the outbox table; the migrations carry
/// copies (after their comment lines) so this crate builds on its own.
#[test]
fn the_outbox_migrations_are_the_relays_ddl() {
    for (name, file) in [
        ("outbox", "outbox.sql"),
        ("outbox_polling", "outbox_polling.sql"),
    ] {
        let relay = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../relay/sql")
                .join(file),
        )
        .unwrap();
        let migration = MIGRATIONS.iter().find(|m| m.name == name).unwrap().sql;
        let ddl: String = migration
            .lines()
            .skip_while(|line| line.starts_with("--"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(ddl, relay, "{file}");
    }
}

/// V4 replaces V1's status checks on a database that already holds orders: INVOICED is a status, a
/// cancelled order may have been confirmed, and the other rules still hold.
#[tokio::test]
async fn the_saga_migration_widens_the_status_checks_and_keeps_the_rest() {
    let postgres = harness::Postgres::start().unwrap();
    let mut client = postgres.client().await.unwrap();
    store::run_migrations(&mut client, &MIGRATIONS[..3])
        .await
        .unwrap();
    let insert = "INSERT INTO orders (id, customer_id, status, currency, version, created_at, \
                  confirmed_at, cancelled_at) VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'USD', 1, \
                  now(), CASE WHEN $2 THEN now() END, CASE WHEN $3 THEN now() END)";
    client
        .execute(insert, &[&"CONFIRMED", &true, &false])
        .await
        .unwrap();
    assert_eq!(store::migrate(&mut client).await.unwrap(), [4, 5, 6]);

    for (status, confirmed, cancelled, allowed) in [
        ("INVOICED", true, false, true),
        ("CANCELLED", true, true, true),
        ("CANCELLED", false, true, true),
        ("CREATED", false, false, true),
        ("INVOICED", false, false, false),
        ("CONFIRMED", false, false, false),
        ("CREATED", true, false, false),
        ("CANCELLED", true, false, false),
        ("INVOICED", true, true, false),
        ("SHIPPED", false, false, false),
    ] {
        let result = client
            .execute(insert, &[&status, &confirmed, &cancelled])
            .await;
        assert_eq!(
            result.is_ok(),
            allowed,
            "{status} confirmed={confirmed} cancelled={cancelled}: {result:?}"
        );
    }
}
