//! Shared pieces of the relay's end-to-end tests: a database with an outbox, a workload of concurrent
//! writers, the relay binary as a child process, and the delivery check.

pub mod check;
pub mod scenarios;
pub mod workload;

use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Process};

/// A throwaway cluster with `wal_level=logical` and the default outbox table.
pub async fn outbox_database() -> Postgres {
    let pg = Postgres::start().expect("PostgreSQL starts");
    create_outbox(&pg).await;
    pg
}

/// Creates the default outbox table with the shipped DDL (which `ddl` prints, as a test checks),
/// polling's columns included.
pub async fn create_outbox(pg: &Postgres) {
    pg.client()
        .await
        .unwrap()
        .batch_execute(OUTBOX_DDL)
        .await
        .unwrap();
}

pub const OUTBOX_DDL: &str = concat!(
    include_str!("../../../sql/outbox.sql"),
    include_str!("../../../sql/outbox_polling.sql")
);

/// A configuration file setting librdkafka `properties`, for `--config`.
pub fn kafka_properties(properties: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: String = properties
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect();
    std::fs::write(file.path(), format!("[kafka.properties]\n{lines}")).unwrap();
    file
}

pub use harness::unique;

/// Starts `outbox-relay run` against `pg` with extra flags; small batches so that kill tests hit
/// the middle of the stream.
pub fn start_relay(pg: &Postgres, args: &[&str]) -> Process {
    start_relay_at(&pg.url(), args)
}

/// [`start_relay`] against a database URL of the test's making, e.g. one naming several hosts.
pub fn start_relay_at(url: &str, args: &[&str]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.args([
        "--log-level",
        "outbox_relay=debug,info",
        "run",
        "--database-url",
        url,
    ]);
    cmd.args(args);
    Process::start(cmd).expect("relay starts")
}

/// Waits for the relay to exit after SIGTERM and checks it exited 0.
pub fn stop_relay(relay: &mut Process) {
    relay.terminate().unwrap();
    let status = relay
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("relay exits within 30 s of SIGTERM");
    assert!(
        status.success(),
        "relay exited with {status}:\n{}",
        relay.log()
    );
}

/// The address the relay serves /metrics on, from its start-up log line.
pub fn metrics_addr(relay: &Process) -> String {
    let mut addr = None;
    harness::wait_until(Duration::from_secs(30), "the metrics endpoint", || {
        addr = relay
            .log()
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|line| {
                let start = line.find("addr=")? + "addr=".len();
                let rest = &line[start..];
                Some(
                    rest.split_whitespace()
                        .next()?
                        .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
                        .to_owned(),
                )
            });
        addr.is_some()
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    addr.unwrap()
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).expect("the metrics endpoint accepts connections");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    status_and_body(&response)
}

/// An HTTP/1.1 response's status code (0 if there is none) and body.
fn status_and_body(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The sum of every sample of `name` whose labels contain each of `labels` (Prometheus text format).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let samples: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| label_text.contains(l)))
                .then(|| value.parse().ok())?
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

/// An HTTP/1.1 GET over TLS, trusting only `ca`, with an optional bearer token: the status code and
/// the body.
pub async fn https_get(
    addr: &str,
    ca: &std::path::Path,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    for cert in tlsfiles::pem::certificates(&std::fs::read(ca).unwrap()).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the metrics endpoint");
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    // A server may close without close_notify; what arrived before that is the response.
    let _ = stream.read_to_end(&mut response).await;
    status_and_body(&String::from_utf8_lossy(&response))
}
