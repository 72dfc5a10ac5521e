//! Self-tests of `harness::Postgres` against real clusters.

use std::time::{Duration, Instant};

use harness::{Postgres, Replication};

#[tokio::test]
async fn committed_rows_survive_a_crash_and_a_restart() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pg = Postgres::start()?;
    eprintln!("Postgres::start took {:?}", started.elapsed());
    assert_eq!(pg.psql("show wal_level")?, "logical");
    assert_eq!(pg.psql("show max_replication_slots")?, "10");

    let client = pg.client().await?;
    client
        .batch_execute("create table t (id int primary key); insert into t values (1), (2)")
        .await?;

    pg.crash()?;
    assert!(client.simple_query("select 1").await.is_err());
    let started = Instant::now();
    pg.start_again()?;
    eprintln!("start_again after a crash took {:?}", started.elapsed());
    assert!(pg.log().contains("automatic recovery in progress"));
    assert_eq!(pg.psql("select count(*) from t")?, "2");

    pg.psql("insert into t values (3)")?;
    let started = Instant::now();
    pg.restart_immediate()?;
    eprintln!("a second restart_immediate took {:?}", started.elapsed());
    let client = pg.client().await?;
    let count: i64 = client
        .query_one("select count(*) from t", &[])
        .await?
        .get(0);
    assert_eq!(count, 3);

    pg.stop()?;
    pg.start_again()?;
    assert_eq!(pg.psql("select count(*) from t")?, "3");
    Ok(())
}

#[test]
fn logical_decoding_works_and_needs_wal_level_logical() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    pg.psql("select pg_create_logical_replication_slot('s', 'pgoutput')")?;
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );

    let replica = Postgres::start_with_wal_level("replica")?;
    assert_eq!(replica.psql("show wal_level")?, "replica");
    let err = replica
        .psql("select pg_create_logical_replication_slot('s', 'pgoutput')")
        .unwrap_err();
    assert!(format!("{err:#}").contains("wal_level"), "{err:#}");
    assert_ne!(pg.port(), replica.port());
    Ok(())
}

#[test]
fn dropping_a_cluster_stops_it_and_deletes_its_files() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let port = pg.port();
    let data_dir = pg.psql("show data_directory")?;
    drop(pg);
    assert!(!std::path::Path::new(&data_dir).exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    Ok(())
}

#[test]
fn other_majors_run_from_the_installed_builds() -> anyhow::Result<()> {
    let system = Postgres::start()?;
    let system_major = system.major();
    assert!(
        system
            .psql("show server_version")?
            .starts_with(&format!("{system_major}.")),
        "the default is the system's PostgreSQL {system_major}"
    );
    for major in [13, 17] {
        let pg = Postgres::builder().major(major).start()?;
        assert_eq!(pg.major(), major);
        assert!(pg
            .psql("show server_version")?
            .starts_with(&format!("{major}.")));
        assert_eq!(pg.psql("show wal_level")?, "logical");
        pg.psql("select pg_create_logical_replication_slot('s', 'pgoutput')")?;
    }
    Ok(())
}

#[test]
fn a_major_that_is_not_installed_names_the_install_script() {
    // 12 is neither the system's nor exported by scripts/test.sh.
    let err = match Postgres::builder().major(12).start() {
        Ok(_) => panic!("PostgreSQL 12 started without being installed"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("scripts/install-postgres.sh 12") && err.contains("PG12_BIN"),
        "{err}"
    );
}

/// Rows committed on a synchronous primary are on its standby when the primary crashes, and the
/// promoted standby takes writes.
fn a_synchronous_standby_takes_over(major: Option<u32>) -> anyhow::Result<()> {
    let mut builder = Postgres::builder();
    if let Some(major) = major {
        builder = builder.major(major);
    }
    let mut primary = builder.start()?;
    primary.psql("create table t (id int primary key)")?;
    let standby = primary.start_standby(Replication::Synchronous)?;
    assert_eq!(standby.major(), primary.major());
    assert_ne!(standby.port(), primary.port());
    assert_eq!(standby.psql("select pg_is_in_recovery()")?, "t");
    assert_eq!(primary.psql("select pg_is_in_recovery()")?, "f");
    for i in 0..100 {
        primary.psql(&format!("insert into t values ({i})"))?;
    }
    primary.crash()?;
    let promoted = standby.promote()?;
    assert_eq!(promoted.psql("select pg_is_in_recovery()")?, "f");
    assert_eq!(promoted.psql("select count(*) from t")?, "100");
    promoted.psql("insert into t values (100)")?;
    Ok(())
}

#[test]
fn a_synchronous_standby_of_the_system_major_takes_over() -> anyhow::Result<()> {
    a_synchronous_standby_takes_over(None)
}

#[test]
fn a_synchronous_standby_of_17_takes_over() -> anyhow::Result<()> {
    a_synchronous_standby_takes_over(Some(17))
}

#[test]
fn a_standby_of_17_syncs_failover_slots() -> anyhow::Result<()> {
    let mut primary = Postgres::builder().major(17).start()?;
    let standby = primary.start_standby(Replication::Asynchronous)?;
    assert_eq!(
        standby.psql("show sync_replication_slots")?,
        "on",
        "the standby syncs slots"
    );
    primary
        .psql("select pg_create_logical_replication_slot('f', 'pgoutput', false, false, true)")?;
    primary.psql("select pg_create_logical_replication_slot('local', 'pgoutput')")?;
    primary.psql("create table t (id int); insert into t values (1)")?;
    harness::wait_until(
        Duration::from_secs(60),
        "slot f synced to the standby",
        || {
            standby
                .psql("select synced from pg_replication_slots where slot_name = 'f'")
                .is_ok_and(|synced| synced == "t")
        },
    )?;
    assert_eq!(
        standby.psql("select count(*) from pg_replication_slots where slot_name = 'local'")?,
        "0",
        "a slot without failover stays on the primary"
    );
    Ok(())
}

#[tokio::test]
async fn kill9_leaves_no_process_of_the_cluster() -> anyhow::Result<()> {
    let mut pg = Postgres::start()?;
    let client = pg.client().await?;
    let backend: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await?
        .get(0);
    pg.kill9()?;
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_err());
    // Killed and reaped by init, or at worst a zombie: never still running.
    let state = std::fs::read_to_string(format!("/proc/{backend}/stat")).unwrap_or_default();
    let running = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    assert!(!running, "backend {backend} survived: {state}");
    assert!(client.simple_query("select 1").await.is_err());
    Ok(())
}
