//! Self-tests of `harness::Postgres` against real clusters.

use std::time::Instant;

use harness::Postgres;

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
