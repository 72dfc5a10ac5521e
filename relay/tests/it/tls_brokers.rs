//! TLS to the brokers: the relay streams through `rediss://`, `amqps://` and Kafka's `SSL` and
//! `SASL_SSL` when it can verify the server, and refuses (retrying, streaming nothing, keeping the
//! password out of its log) a server signed by another CA, one without the CA configured, or one
//! reached under a name its certificate does not hold. Real servers with TLS listeners and throwaway
//! CAs (Kafka: Tansu behind a TLS-terminating socat); the tests read what arrived through the
//! servers' plain ports, or as a trusted Kafka client.

use crate::support;

use std::path::Path;
use std::time::Duration;

use harness::{Certificates, Process, Reader, UNNAMED_HOST};
use support::check::check;
use support::scenarios::{self, Target};
use support::workload::{self, Workload};

const DEADLINE: Duration = Duration::from_secs(60);

/// Enough transactions, some rolled back, to show events arrive whole and in order; the full
/// scenario runs once per broker.
const SMALL: Workload = Workload {
    writers: 2,
    transactions_per_writer: 10,
    events_per_transaction: 5,
    aggregates_per_writer: 3,
    rollback_every: 4,
    padding: 32,
    pause: Duration::ZERO,
};

/// A configuration file setting `[section]` keys to paths, for `--config`.
fn config_file(section: &str, paths: &[(&str, &Path)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: String = paths
        .iter()
        .map(|(key, path)| format!("{key} = \"{}\"\n", path.display()))
        .collect();
    std::fs::write(file.path(), format!("[{section}]\n{lines}")).unwrap();
    file
}

fn ca(certificates: &Certificates) -> [(&'static str, &Path); 1] {
    [("ca_file", &certificates.ca_cert)]
}

fn ca_and_client(certificates: &Certificates) -> [(&'static str, &Path); 3] {
    [
        ("ca_file", &certificates.ca_cert),
        ("client_cert_file", &certificates.client_cert),
        ("client_key_file", &certificates.client_key),
    ]
}

/// Certificates of a CA that signed none of the servers' certificates.
fn stranger() -> (tempfile::TempDir, Certificates) {
    let dir = tempfile::tempdir().unwrap();
    let certificates = Certificates::make(dir.path()).unwrap();
    (dir, certificates)
}

fn redis_target(url: &str, config: &tempfile::NamedTempFile) -> Target {
    Target::new(&[
        "--sink",
        "redis",
        "--redis-url",
        url,
        "--config",
        config.path().to_str().unwrap(),
    ])
}

/// The target and a reader on the node's plain port, its queue bound before the relay publishes.
async fn rabbitmq_target(
    rabbitmq: &harness::RabbitMq,
    url: &str,
    config: &tempfile::NamedTempFile,
) -> (Target, Reader) {
    let exchange = support::unique("outbox");
    let target = Target::new(&[
        "--sink",
        "rabbitmq",
        "--rabbitmq-url",
        url,
        "--rabbitmq-exchange",
        &exchange,
        "--config",
        config.path().to_str().unwrap(),
    ]);
    let reader = Reader::rabbitmq(&rabbitmq.url(), &exchange, &target.destinations()).await;
    (target, reader)
}

/// A small workload through a relay on a fresh database: everything arrives, in order.
async fn streams_small_workload(target: Target, mut reader: Reader) {
    let pg = support::outbox_database().await;
    let mut relay = target.relay(&pg, &[]);
    let written = workload::write(&pg.url(), &SMALL).await;
    let received = reader
        .collect_until(DEADLINE, |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    assert_no_secret(&relay);
    support::stop_relay(&mut relay);
}

/// The relay on a fresh database cannot connect to its broker: each attempt logs `sink`'s connect
/// error with every one of `reasons`, an event committed meanwhile never arrives, and the log never
/// shows the URL's password.
async fn refuses(target: Target, mut reader: Reader, sink: &str, reasons: &[&str]) {
    let pg = support::outbox_database().await;
    let relay = target.start_relay(&pg, &[]);
    let refused = format!("cannot connect to {sink}");
    let attempts = |relay: &Process| {
        relay
            .log()
            .lines()
            .filter(|line| line.contains(&refused) && reasons.iter().all(|r| line.contains(r)))
            .count()
    };
    harness::wait_until(DEADLINE, "the relay to refuse the broker", || {
        attempts(&relay) >= 1
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    pg.client()
        .await
        .unwrap()
        .batch_execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', 'o-1', 'OrderConfirmed', '{}')")
        .await
        .unwrap();
    // The relay has retried since the event was committed, and still refuses.
    let before = attempts(&relay);
    harness::wait_until(DEADLINE, "the relay to retry", || attempts(&relay) > before)
        .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    let received = reader.collect_until(DEADLINE, |_| true).await;
    assert!(received.is_empty(), "nothing arrives: {received:?}");
    assert_no_secret(&relay);
}

/// The test URLs carry the password `secret` (Redis) or `guest` (RabbitMQ); Kafka's SASL password
/// is `s3cret-pw`.
fn assert_no_secret(relay: &Process) {
    let log = relay.log();
    assert!(
        !log.contains(":secret@") && !log.contains(":guest@") && !log.contains("s3cret-pw"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_delivers_everything_in_order_verified_against_the_ca() {
    let redis = harness::Redis::start_with_tls().unwrap();
    let config = config_file("redis", &ca(redis.certificates().unwrap()));
    let target = redis_target(&redis.tls_url().unwrap(), &config);
    let (report, ok) = check_target(&target).await;
    assert!(ok, "{report}");
    let reader = Reader::redis(&redis.url(), &target.destinations());
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_refuses_a_server_signed_by_another_ca() {
    let redis = harness::Redis::start_with_tls().unwrap();
    let (_dir, stranger) = stranger();
    let config = config_file("redis", &ca(&stranger));
    let url = redis
        .tls_url()
        .unwrap()
        .replace("rediss://", "rediss://default:secret@");
    let target = redis_target(&url, &config);
    let (report, ok) = check_target(&target).await;
    assert!(!ok && report.contains("UnknownIssuer"), "{report}");
    let reader = Reader::redis(&redis.url(), &target.destinations());
    let trusting = format!("TLS, trusting the CA in {}", stranger.ca_cert.display());
    refuses(
        target,
        reader,
        "redis at rediss://default:***@127.0.0.1",
        &["UnknownIssuer", &trusting],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_refuses_a_host_name_the_certificate_does_not_hold() {
    let redis = harness::Redis::start_with_tls().unwrap();
    let config = config_file("redis", &ca(redis.certificates().unwrap()));
    let url = redis.tls_url().unwrap().replace("127.0.0.1", UNNAMED_HOST);
    let target = redis_target(&url, &config);
    let reader = Reader::redis(&redis.url(), &target.destinations());
    refuses(target, reader, "redis", &["not valid for name", "TLS"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_presents_the_client_certificate_a_server_requires() {
    let redis = harness::Redis::start_with_mutual_tls().unwrap();
    let certificates = redis.certificates().unwrap();

    let without = config_file("redis", &ca(certificates));
    let target = redis_target(&redis.tls_url().unwrap(), &without);
    let reader = Reader::redis(&redis.url(), &target.destinations());
    refuses(target, reader, "redis", &["TLS"]).await;

    let with = config_file("redis", &ca_and_client(certificates));
    let target = redis_target(&redis.tls_url().unwrap(), &with);
    let reader = Reader::redis(&redis.url(), &target.destinations());
    streams_small_workload(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_delivers_everything_in_order_verified_against_the_ca() {
    let rabbitmq = harness::RabbitMq::start_with_tls().unwrap();
    let config = config_file("rabbitmq", &ca(rabbitmq.certificates().unwrap()));
    let (target, reader) = rabbitmq_target(&rabbitmq, &rabbitmq.tls_url().unwrap(), &config).await;
    let (report, ok) = check_target(&target).await;
    assert!(ok, "{report}");
    scenarios::delivers_everything_in_order(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_refuses_servers_it_cannot_trust() {
    let rabbitmq = harness::RabbitMq::start_with_tls().unwrap();
    let url = rabbitmq.tls_url().unwrap();
    let (_dir, stranger) = stranger();

    let config = config_file("rabbitmq", &ca(&stranger));
    let (target, reader) = rabbitmq_target(&rabbitmq, &url, &config).await;
    let (report, ok) = check_target(&target).await;
    assert!(!ok && report.contains("UnknownIssuer"), "{report}");
    let trusting = format!(
        "TLS, trusting the system roots and the CA in {}",
        stranger.ca_cert.display()
    );
    refuses(
        target,
        reader,
        "rabbitmq at amqps://guest:***@127.0.0.1",
        &["UnknownIssuer", &trusting],
    )
    .await;

    // Without a CA file only the system roots count, and they do not hold the test CA.
    let config = config_file("rabbitmq", &[]);
    let (target, reader) = rabbitmq_target(&rabbitmq, &url, &config).await;
    refuses(
        target,
        reader,
        "rabbitmq",
        &["UnknownIssuer", "TLS, trusting the system roots)"],
    )
    .await;

    let config = config_file("rabbitmq", &ca(rabbitmq.certificates().unwrap()));
    let (target, reader) =
        rabbitmq_target(&rabbitmq, &url.replace("127.0.0.1", UNNAMED_HOST), &config).await;
    refuses(target, reader, "rabbitmq", &["not valid for name", "TLS"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_presents_the_client_certificate_a_server_requires() {
    let rabbitmq = harness::RabbitMq::start_with_mutual_tls().unwrap();
    let certificates = rabbitmq.certificates().unwrap();
    let url = rabbitmq.tls_url().unwrap();

    let without = config_file("rabbitmq", &ca(certificates));
    let (target, reader) = rabbitmq_target(&rabbitmq, &url, &without).await;
    refuses(target, reader, "rabbitmq", &["TLS"]).await;

    let with = config_file("rabbitmq", &ca_and_client(certificates));
    let (target, reader) = rabbitmq_target(&rabbitmq, &url, &with).await;
    streams_small_workload(target, reader).await;
}

/// Settings for one sink that must stop the relay, and the key the error must name.
struct Unusable<'a> {
    sink: &'static str,
    flag: &'static str,
    url: &'static str,
    paths: Vec<(&'static str, &'a Path)>,
    key: &'static str,
}

/// TLS files that cannot work stop the relay at start (exit 2) naming the key, without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_relay_naming_the_key() {
    let pg = support::outbox_database().await;
    let (_dir, certificates) = stranger();
    let missing = Path::new("/nonexistent/ca.pem");
    let ca_key = certificates.ca_cert.with_file_name("ca.key");
    let redis = |url, paths, key| Unusable {
        sink: "redis",
        flag: "--redis-url",
        url,
        paths,
        key,
    };
    let rabbitmq = |paths, key| Unusable {
        sink: "rabbitmq",
        flag: "--rabbitmq-url",
        url: "amqps://guest:secret@127.0.0.1:1/%2f",
        paths,
        key,
    };
    let cases = [
        // A CA file with a plain URL: the operator expects encryption the URL does not ask for.
        redis(
            "redis://default:secret@127.0.0.1:1",
            ca(&certificates).to_vec(),
            "redis.ca_file",
        ),
        rabbitmq(vec![("ca_file", missing)], "rabbitmq.ca_file"),
        rabbitmq(
            vec![("client_cert_file", &certificates.client_cert)],
            "rabbitmq.client_key_file",
        ),
        // A key where the CA belongs.
        redis(
            "rediss://default:secret@127.0.0.1:1",
            vec![("ca_file", &ca_key)],
            "redis.ca_file",
        ),
    ];
    for Unusable {
        sink,
        flag,
        url,
        paths,
        key,
    } in cases
    {
        let config = config_file(sink, &paths);
        let mut relay = support::start_relay(
            &pg,
            &[
                "--sink",
                sink,
                flag,
                url,
                "--config",
                config.path().to_str().unwrap(),
            ],
        );
        let status = relay
            .wait_timeout(DEADLINE)
            .unwrap()
            .expect("unusable TLS files are fatal");
        let log = relay.log();
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains(key), "the error names {key}:\n{log}");
        assert!(!log.contains("secret"), "{log}");
    }
}

/// librdkafka's TLS settings for a client of `kafka` trusting `ca`, with SASL/SCRAM when
/// `password` is given and the broker's client certificate when `client`.
fn kafka_tls_properties(
    ca: &Path,
    client: Option<&Certificates>,
    password: Option<&str>,
) -> Vec<(String, String)> {
    let protocol = if password.is_some() {
        "SASL_SSL"
    } else {
        "SSL"
    };
    let mut properties = vec![
        ("security.protocol", protocol.to_owned()),
        ("ssl.ca.location", ca.display().to_string()),
    ];
    if let Some(client) = client {
        properties.push((
            "ssl.certificate.location",
            client.client_cert.display().to_string(),
        ));
        properties.push(("ssl.key.location", client.client_key.display().to_string()));
    }
    if let Some(password) = password {
        properties.push(("sasl.mechanisms", "SCRAM-SHA-256".to_owned()));
        properties.push(("sasl.username", "relay".to_owned()));
        properties.push(("sasl.password", password.to_owned()));
    }
    properties
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn borrowed(properties: &[(String, String)]) -> Vec<(&str, &str)> {
    properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The relay with `properties` in its `kafka.properties`, and a reader that `reader` lets in.
fn kafka_target(
    kafka: &harness::Kafka,
    properties: &[(String, String)],
    reader: &[(String, String)],
) -> (Target, Reader, tempfile::NamedTempFile) {
    scenarios::kafka_target(&kafka.brokers(), &borrowed(properties), &borrowed(reader))
}

/// `outbox-relay check` of `target` against a fresh outbox: its report, and whether it exited 0.
async fn check_target(target: &Target) -> (String, bool) {
    let pg = support::outbox_database().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["check", "--database-url", &pg.url()])
        .args(&target.sink_args)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !report.contains(":secret@") && !report.contains("s3cret-pw"),
        "{report}"
    );
    (report, output.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_ssl_delivers_everything_in_order_verified_against_the_ca() {
    let kafka = harness::Kafka::start_with_tls(false).unwrap();
    let properties = kafka_tls_properties(&kafka.certificates().unwrap().ca_cert, None, None);
    let (target, reader, _config) = kafka_target(&kafka, &properties, &properties);
    let (report, ok) = check_target(&target).await;
    assert!(ok, "{report}");
    streams_small_workload(target, reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_ssl_refuses_a_server_signed_by_another_ca() {
    let kafka = harness::Kafka::start_with_tls(false).unwrap();
    let (_dir, stranger) = stranger();
    let trusted = kafka_tls_properties(&kafka.certificates().unwrap().ca_cert, None, None);
    let properties = kafka_tls_properties(&stranger.ca_cert, None, None);
    let (target, reader, _config) = kafka_target(&kafka, &properties, &trusted);
    let (report, ok) = check_target(&target).await;
    assert!(
        !ok && report.contains("certificate verify failed"),
        "{report}"
    );
    refuses(
        target,
        reader,
        "kafka",
        &[
            "certificate verify failed",
            "check the TLS and SASL settings",
        ],
    )
    .await;
}

/// SASL_SSL with SCRAM through a TLS front that demands a client certificate, as managed clusters
/// with mutual TLS do: without the certificate the relay is refused, with it everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sasl_ssl_presents_the_client_certificate_a_server_requires() {
    let kafka = harness::Kafka::start_with_tls(true)
        .unwrap()
        .with_scram("relay", "s3cret-pw")
        .unwrap();
    let certificates = kafka.certificates().unwrap();
    let ca = &certificates.ca_cert;
    let reader = kafka_tls_properties(ca, Some(certificates), Some("s3cret-pw"));

    let without = kafka_tls_properties(ca, None, Some("s3cret-pw"));
    let (target, reader_without, _config) = kafka_target(&kafka, &without, &reader);
    refuses(
        target,
        reader_without,
        "kafka",
        &["SSL", "check the TLS and SASL settings"],
    )
    .await;

    let wrong_password = kafka_tls_properties(ca, Some(certificates), Some("wrong"));
    let (target, reader_wrong, _config) = kafka_target(&kafka, &wrong_password, &reader);
    refuses(
        target,
        reader_wrong,
        "kafka",
        &["SASL", "check the TLS and SASL settings"],
    )
    .await;

    let with = kafka_tls_properties(ca, Some(certificates), Some("s3cret-pw"));
    let (target, reader, _config) = kafka_target(&kafka, &with, &reader);
    streams_small_workload(target, reader).await;
}
