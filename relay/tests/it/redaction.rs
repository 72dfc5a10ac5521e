//! No secret in any output: runs with every secret set (database password, Redis and RabbitMQ
//! passwords, a Kafka SASL password, the metrics token), relaying events, failing to log in to
//! brokers, and the operator commands, with debug logging on; then every log, every command's
//! output, `--help` and a `/metrics` scrape are searched for each secret.

use crate::support;

use std::process::Command;
use std::time::Duration;

use harness::{Postgres, Process, Reader};
use support::check::check;
use support::scenarios::{Target, CLEAN};
use support::workload::{self, Workload};

const PG_SECRET: &str = "pg-s3cret-9f2";
const REDIS_SECRET: &str = "redis-s3cret-4ac";
const AMQP_SECRET: &str = "amqp-s3cret-77d";
const KAFKA_SECRET: &str = "kafka-s3cret-e10";
const TOKEN_SECRET: &str = "metrics-s3cret-b3b";
const SECRETS: [&str; 5] = [
    PG_SECRET,
    REDIS_SECRET,
    AMQP_SECRET,
    KAFKA_SECRET,
    TOKEN_SECRET,
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

/// Every secret set, through every channel the relay reads: URL, environment, a file, a TOML file.
struct Secrets {
    database_url: String,
    config: tempfile::NamedTempFile,
    token_file: tempfile::NamedTempFile,
}

impl Secrets {
    async fn new(pg: &Postgres) -> Secrets {
        pg.client()
            .await
            .unwrap()
            .batch_execute(&format!(
                "CREATE ROLE relay LOGIN SUPERUSER PASSWORD '{PG_SECRET}'"
            ))
            .await
            .unwrap();
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!(
                "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-256\"\n\"sasl.username\" = \"relay\"\n\"sasl.password\" = \"{KAFKA_SECRET}\"\n"
            ),
        )
        .unwrap();
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), TOKEN_SECRET).unwrap();
        Secrets {
            database_url: pg
                .url()
                .replace("postgres@", &format!("relay:{PG_SECRET}@")),
            config,
            token_file,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
        cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0")
            .env("OUTBOX_RELAY_DATABASE_URL", &self.database_url)
            .env(
                "OUTBOX_RELAY_REDIS__URL",
                harness::Redis::shared()
                    .unwrap()
                    .replace("redis://", &format!("redis://default:{REDIS_SECRET}@")),
            )
            .env(
                "OUTBOX_RELAY_RABBITMQ__URL",
                harness::RabbitMq::shared()
                    .unwrap()
                    .replace("guest:guest@", &format!("guest:{AMQP_SECRET}@")),
            )
            .env("OUTBOX_RELAY_METRICS_TOKEN_FILE", self.token_file.path())
            .args(["--log-level", "debug", "--config"])
            .arg(self.config.path())
            .args(args);
        cmd
    }

    fn output(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

/// Runs the relay until its log shows `marker`, then stops it; returns the log.
fn run_until(secrets: &Secrets, args: &[&str], marker: &str) -> String {
    let mut relay = Process::start(secrets.command(args)).unwrap();
    harness::wait_until(Duration::from_secs(60), marker, || {
        relay.log().contains(marker)
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", relay.log()));
    relay.terminate().unwrap();
    relay.wait_timeout(Duration::from_secs(30)).unwrap();
    relay.log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_an_output_or_a_metric() {
    let pg = support::outbox_database().await;
    let secrets = Secrets::new(&pg).await;

    // A full run that relays a workload to Redis, with the token guarding /metrics.
    let target = Target::new(&["--sink", "redis"]);
    let mut reader = Reader::redis(&harness::Redis::shared().unwrap(), &target.destinations());
    let destination = format!("{}.{{aggregatetype}}", target.prefix);
    let mut relay =
        Process::start(secrets.command(&["run", "--sink", "redis", "--destination", &destination]))
            .unwrap();
    support::scenarios::wait_streaming(&relay);
    let small = Workload {
        writers: 2,
        transactions_per_writer: 10,
        ..CLEAN
    };
    let written = workload::write(&pg.url(), &small).await;
    let received = reader
        .collect_until(Duration::from_secs(60), |r| check(&written, r).lost == 0)
        .await;
    check(&written, &received).assert_lossless();
    let addr = support::metrics_addr(&relay);
    let (status, body) = support::http_get(&addr, "/metrics");
    assert_eq!(status, 401);
    assert_no_secret("the 401 body", &body);
    support::stop_relay(&mut relay);
    assert_no_secret("the relay's log", &relay.log());

    // Brokers refusing the credentials: their errors must be redacted too.
    let log = run_until(
        &secrets,
        &["run", "--sink", "rabbitmq"],
        "relay session failed",
    );
    assert_no_secret("a RabbitMQ login failure", &log);
    let kafka = harness::Kafka::start().unwrap();
    let log = run_until(
        &secrets,
        &[
            "run",
            "--sink",
            "kafka",
            "--kafka-brokers",
            &kafka.brokers(),
        ],
        "relay session failed",
    );
    assert_no_secret("a Kafka SASL failure", &log);

    // The operator commands, a failing one among them, and the help texts.
    for args in [
        vec!["check", "--sink", "redis"],
        vec!["check", "--sink", "rabbitmq"],
        vec!["status"],
        vec!["run", "--help"],
        vec!["check", "--help"],
    ] {
        let output = secrets.output(&args);
        assert!(!output.is_empty(), "{args:?} printed nothing");
        assert_no_secret(&format!("`{}`", args.join(" ")), &output);
    }
    let unreachable = secrets.output(&[
        "status",
        "--database-url",
        &format!("postgres://relay:{PG_SECRET}@127.0.0.1:1/db"),
    ]);
    assert!(unreachable.contains("error"), "{unreachable}");
    assert_no_secret("`status` against an unreachable database", &unreachable);
}
