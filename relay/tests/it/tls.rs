//! TLS to PostgreSQL with libpq's sslmode semantics, on both the catalog and the replication session.

use crate::support;

use std::time::Duration;

use harness::Reader;
use support::scenarios::Target;

const DEADLINE: Duration = Duration::from_secs(60);

async fn tls_database() -> harness::Postgres {
    let pg = harness::Postgres::start_with_tls().unwrap();
    support::create_outbox(&pg).await;
    pg
}

/// Whether every replication session on the server runs over TLS.
async fn replication_is_encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The relay logs why it cannot connect (`reason` appears in its log) and never streams.
fn assert_refused(relay: &harness::Process, reason: &str) {
    harness::wait_until(DEADLINE, "the relay to refuse the connection", || {
        relay.log().contains(reason)
    })
    .unwrap();
    assert!(
        !relay.log().contains("streaming the outbox"),
        "{}",
        relay.log()
    );
}

/// The relay streams an event from `pg` through `url`, and its replication session is encrypted.
async fn assert_streams_encrypted(pg: &harness::Postgres, url: &str) {
    let redis = harness::Redis::shared().unwrap();
    let target = Target::new(&["--sink", "redis", "--redis-url", &redis]);
    let mut reader = Reader::redis(&redis, &target.destinations());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    cmd.args([
        "run",
        "--database-url",
        url,
        "--sink",
        "redis",
        "--redis-url",
        &redis,
        "--destination",
        &destination,
    ]);
    let mut relay = harness::Process::start(cmd).unwrap();
    support::scenarios::wait_streaming(&relay);

    let client = pg.client().await.unwrap();
    client
        .batch_execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', 'o-1', 'OrderConfirmed', '{}')")
        .await
        .unwrap();
    let received = reader.collect_until(DEADLINE, |r| !r.is_empty()).await;
    assert_eq!(received[0].headers["type"], "OrderConfirmed");
    assert!(
        replication_is_encrypted(&client).await,
        "the replication session runs over TLS"
    );
    support::stop_relay(&mut relay);
}

fn relay_with_url(url: &str) -> harness::Process {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.args(["run", "--sink", "stdout", "--database-url", url]);
    harness::Process::start(cmd).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_verified_tls() {
    let pg = tls_database().await;
    let ca = pg.ca_cert().unwrap().display().to_string();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        pg.port()
    );
    assert_streams_encrypted(&pg, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_server_it_cannot_trust() {
    let pg = tls_database().await;
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    // A CA that did not sign the server's certificate: the relay's own test CA from another cluster.
    let stranger = harness::Postgres::start_with_tls().unwrap();
    std::fs::copy(stranger.ca_cert().unwrap(), other_ca.path()).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        other_ca.path().display()
    );
    assert_refused(&relay_with_url(&url), "certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_server_without_tls() {
    let pg = support::outbox_database().await;
    assert_refused(
        &relay_with_url(&format!("{}?sslmode=require", pg.url())),
        "TLS",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_without_a_root_certificate() {
    let pg = tls_database().await;
    let relay = relay_with_url(&format!("{}?sslmode=require", pg.url()));
    support::scenarios::wait_streaming(&relay);
    assert!(replication_is_encrypted(&pg.client().await.unwrap()).await);
}

/// As managed services run PostgreSQL: over TCP only `hostssl` lines with SCRAM-SHA-256 and a client
/// certificate. The relay streams with verify-full, its certificate and its password; without the
/// certificate, or without TLS, it is refused and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_from_a_cluster_that_demands_tls_scram_and_a_client_certificate() {
    let pg = harness::Postgres::start_with_tls_only().unwrap();
    support::create_outbox(&pg).await;
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE ROLE relay LOGIN SUPERUSER PASSWORD 'scram-pw-51'")
        .await
        .unwrap();
    let ca = pg.ca_cert().unwrap();
    let url = |password: &str, query: &str| pg.url_as("relay", password, "postgres", query);
    let with_identity = url("scram-pw-51", &pg.verify_full_query(ca));
    assert_streams_encrypted(&pg, &with_identity).await;

    let without_identity = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let relay = relay_with_url(&url("scram-pw-51", &without_identity));
    assert_refused(&relay, "certificate");
    assert!(!relay.log().contains("scram-pw-51"), "{}", relay.log());
    assert_refused(
        &relay_with_url(&url("scram-pw-51", "sslmode=disable")),
        "no encryption",
    );

    let relay = relay_with_url(&url("not-the-pw-73", &pg.verify_full_query(ca)));
    assert_refused(&relay, "password authentication failed");
    assert!(!relay.log().contains("not-the-pw-73"), "{}", relay.log());
}

/// verify-full checks the host name the URL names, not only the chain: connecting to the right
/// address (`hostaddr`) under a name the certificate does not carry is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_host_name() {
    let pg = tls_database().await;
    let ca = pg.ca_cert().unwrap().display().to_string();
    let misnamed = format!(
        "postgres://postgres@db.example.invalid:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}",
        pg.port()
    );
    assert_refused(&relay_with_url(&misnamed), "not valid for name");
    // The same address under a name the certificate carries streams: the refusal was the name's.
    let named = format!(
        "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}",
        pg.port()
    );
    assert_streams_encrypted(&pg, &named).await;
}
