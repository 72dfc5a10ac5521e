//! The least a relay needs: a role with LOGIN REPLICATION and nothing on the outbox table, once
//! an administrator has created the publication; its database URL read from a mounted file. A
//! clear error, naming the SQL, when the role may not create the publication itself; and a warning
//! when it cannot tell whether a new slot leaves earlier rows behind.

use crate::support;

use std::process::Command;
use std::time::Duration;

use harness::Reader;
use support::scenarios::{self, Target};

const DEADLINE: Duration = Duration::from_secs(60);

/// The relay, with its URL in a file as a mounted secret would hold it; keep the file while it runs.
fn relay_as(role_url: &str, extra: &[&str]) -> (harness::Process, tempfile::NamedTempFile) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
        .arg("run")
        .args(extra);
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{role_url}\n")).unwrap();
    cmd.arg("--database-url-file").arg(secret.path());
    (harness::Process::start(cmd).unwrap(), secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_role_without_table_privileges_relays_from_an_admin_made_publication() {
    let pg = support::outbox_database().await;
    let admin = pg.client().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE relay LOGIN REPLICATION;
             CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert', publish_via_partition_root = true);",
        )
        .await
        .unwrap();
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let mut reader = Reader::redis(&redis, &target.destinations());
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let (mut relay, _secret) = relay_as(
        &pg.url().replace("postgres@", "relay@"),
        &[
            "--sink",
            "redis",
            "--redis-url",
            &redis,
            "--destination",
            &destination,
        ],
    );
    scenarios::wait_streaming(&relay);
    admin
        .batch_execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             VALUES ('00000000-0000-0000-0000-00000000000a', 'order', 'o-1', 'OrderConfirmed', '{}')",
        )
        .await
        .unwrap();
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(
        received[0].headers["id"],
        "00000000-0000-0000-0000-00000000000a"
    );
    let privileges: bool = admin
        .query_one(
            "SELECT has_table_privilege('relay', 'outbox', 'SELECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!privileges, "the relay never reads the table");
    support::stop_relay(&mut relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_create_the_publication_is_told_the_sql() {
    let pg = support::outbox_database().await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE ROLE relay LOGIN REPLICATION")
        .await
        .unwrap();
    let (mut relay, _secret) = relay_as(
        &pg.url().replace("postgres@", "relay@"),
        &["--sink", "stdout"],
    );
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("no retry can grant a privilege");
    assert!(!status.success());
    let log = relay.log();
    assert!(
        log.contains("cannot create publication outbox_relay_pub"),
        "{log}"
    );
    assert!(
        log.contains(
            "run this as the owner of public.outbox: CREATE PUBLICATION \"outbox_relay_pub\""
        ),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_schema_privilege_stops_the_relay_and_names_it() {
    let pg = harness::Postgres::start().unwrap();
    pg.client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE SCHEMA sales;
             CREATE TABLE sales.outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb);
             CREATE ROLE relay LOGIN REPLICATION;
             CREATE PUBLICATION outbox_relay_pub FOR TABLE sales.outbox WITH (publish = 'insert');",
        )
        .await
        .unwrap();
    let (mut relay, _secret) = relay_as(
        &pg.url().replace("postgres@", "relay@"),
        &["--sink", "stdout", "--table", "sales.outbox"],
    );
    let status = relay
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("no retry can grant a privilege");
    assert!(!status.success());
    assert!(
        relay.log().contains("permission denied for schema sales"),
        "{}",
        relay.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_read_the_outbox_says_it_cannot_tell_what_a_new_slot_leaves_behind() {
    let pg = support::outbox_database().await;
    let admin = pg.client().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE relay LOGIN REPLICATION;
             CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert', publish_via_partition_root = true);
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             VALUES (gen_random_uuid(), 'order', 'o-1', 'OrderConfirmed', '{}');",
        )
        .await
        .unwrap();
    let (mut relay, _secret) = relay_as(
        &pg.url().replace("postgres@", "relay@"),
        &["--sink", "stdout"],
    );
    scenarios::wait_streaming(&relay);
    let log = relay.log();
    assert!(
        log.contains(
            "cannot tell whether the outbox already holds rows that this new slot will not relay"
        ) && log.contains("permission denied for table outbox"),
        "{log}"
    );
    support::stop_relay(&mut relay);
}
