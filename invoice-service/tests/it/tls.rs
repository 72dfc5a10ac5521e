//! The service's database over TLS, against a cluster that takes only `hostssl` with SCRAM-SHA-256
//! and a client certificate: with `verify-full` it invoices; a server signed by another CA and a plain
//! session are refused with the reason, never with the password.

use std::path::Path;

use harness::{Certificates, Postgres};
use invoice_service::store::Store;

use crate::common::{Setup, WireEvent};

const PASSWORD: &str = "scram-pw-invoices-3";

/// The cluster, with `invoice_service` owning `invoices` and no other privilege, as in the demo.
async fn cluster() -> Postgres {
    let pg = Postgres::start_with_tls_only().unwrap();
    pg.create_owned_database("invoice_service", PASSWORD, "invoices")
        .await
        .unwrap();
    pg
}

fn url(pg: &Postgres, query: &str) -> String {
    pg.url_as("invoice_service", PASSWORD, "invoices", query)
}

fn verify_full(pg: &Postgres, ca: &Path) -> String {
    url(pg, &pg.verify_full_query(ca))
}

/// Why the service cannot open its store on `url`, as one line with the causes.
async fn refusal(url: &str) -> String {
    let Err(error) = Store::connect(url, 2).await else {
        panic!("the server accepted the session");
    };
    let text = pgconn::report::chain(&error);
    assert!(!text.contains(PASSWORD), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_over_verify_full_with_a_client_certificate_and_scram() {
    let pg = cluster().await;
    let database_url = verify_full(&pg, pg.ca_cert().unwrap());
    let mut setup = Setup::redis_on(pg, database_url);
    setup.start().await;
    let event = WireEvent::order_confirmed("2");
    setup.publish(&event).await;
    setup.wait_for_invoice(event.aggregate_id).await;

    let client = setup.pg.client().await.unwrap();
    harness::assert_sessions_encrypted(&client, "invoice-service", "invoice_service").await;
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_database_server_signed_by_another_ca() {
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
async fn a_plain_database_session_is_refused() {
    let pg = cluster().await;
    let error = refusal(&url(&pg, "sslmode=disable")).await;
    assert!(error.contains("no encryption"), "{error}");
}
