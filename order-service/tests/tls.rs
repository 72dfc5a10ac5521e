//! The order-service against a cluster run as managed services run them: over TCP only `hostssl`
//! with SCRAM-SHA-256 and a client certificate. With `verify-full`, its certificate and its password
//! it serves orders; a server signed by another CA and a plain session are refused with the reason,
//! never with the password.

mod support;

use harness::{Certificates, Postgres};
use order_service::store;
use pgconn::report;
use support::App;

const PASSWORD: &str = "scram-pw-orders-7";

/// The cluster, with `order_service` owning `orders` and no other privilege, as in the demo.
async fn cluster() -> Postgres {
    let pg = Postgres::start_with_tls_only().unwrap();
    pg.create_owned_database("order_service", PASSWORD, "orders")
        .await
        .unwrap();
    pg
}

fn url(pg: &Postgres, query: &str) -> String {
    pg.url_as("order_service", PASSWORD, "orders", query)
}

fn verify_full(pg: &Postgres, ca: &std::path::Path) -> String {
    url(pg, &pg.verify_full_query(ca))
}

/// Why the pool cannot hand out a connection to `url`.
async fn refusal(url: &str) -> String {
    let pool = store::connect(url, 2).unwrap();
    let error = report::chain(&pool.get().await.expect_err("the server refuses"));
    assert!(!error.contains(PASSWORD), "{error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_orders_over_verify_full_with_a_client_certificate_and_scram() {
    let pg = cluster().await;
    let pool_url = verify_full(&pg, pg.ca_cert().unwrap());
    // The harness's superuser keeps a plain line, for reading the tables.
    let tables_url = format!("postgres://postgres@127.0.0.1:{}/orders", pg.port());
    let app = App::serve(pg, &pool_url, &tables_url).await;

    let order = app.create_order().await;
    assert_eq!(app.count("orders").await, 1);
    let events = app.events_of(order["id"].as_str().unwrap()).await;
    assert_eq!(events[0].event_type, "OrderCreated");

    harness::assert_sessions_encrypted(&app.db, "order-service", "order_service").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_server_signed_by_another_ca() {
    let pg = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = Certificates::make(dir.path()).unwrap();
    let error = refusal(&verify_full(&pg, &stranger.ca_cert)).await;
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_session_is_refused() {
    let pg = cluster().await;
    let error = refusal(&url(&pg, "sslmode=disable")).await;
    assert!(error.contains("no encryption"), "{error}");
}

#[test]
fn a_bad_url_is_reported_without_the_password() {
    for (tls, reason) in [
        (
            "sslmode=verify-everything",
            "sslmode=verify-everything is not one of",
        ),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
        ),
    ] {
        let url = format!("postgres://order_service:{PASSWORD}@db/orders?{tls}");
        let error = report::chain(&store::connect(&url, 2).expect_err("a bad URL"));
        assert!(error.contains(reason), "{error}");
        assert!(!error.contains(PASSWORD), "{error}");
    }
}
