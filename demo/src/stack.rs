//! What the demo runs: one PostgreSQL cluster, one broker and the workspace's three binaries as
//! child processes, with their start-up waits and their orderly stop.
//!
//! Everything is owned by a [`Stack`]. Dropping it kills whatever still runs and deletes the temp
//! dirs (the harness types do that on Drop), which is how a failed or interrupted demo cleans up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use harness::{Kafka, Postgres, Process, RabbitMq, Redis};
use tokio::time::Instant;

/// How long a binary may take to become ready: migrations, slot creation, a consumer group join.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the relay's default shutdown grace would ever need for one order's events.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines shown per binary when the demo fails.
const LOG_TAIL: usize = 25;

/// The broker the relay publishes to and the invoice-service consumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Kafka,
    RabbitMq,
    Redis,
}

impl FromStr for BrokerKind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<BrokerKind> {
        match name {
            "kafka" => Ok(BrokerKind::Kafka),
            "rabbitmq" => Ok(BrokerKind::RabbitMq),
            "redis" => Ok(BrokerKind::Redis),
            _ => bail!("the broker must be kafka, rabbitmq or redis, not {name:?}"),
        }
    }
}

/// The name the relay's `--sink` and the invoice-service's `MESSAGING_MODE` both use.
impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::RabbitMq => "rabbitmq",
            BrokerKind::Redis => "redis",
        })
    }
}

/// The workspace's binaries the demo runs.
pub struct Binaries {
    pub(crate) relay: PathBuf,
    pub(crate) order_service: PathBuf,
    pub(crate) invoice_service: PathBuf,
}

impl Binaries {
    /// The binaries `cargo build --workspace --bins` puts next to the running executable: in its own
    /// directory for the demo binary, one level up for tests (`deps/`) and examples (`examples/`).
    pub fn next_to_current_exe() -> Result<Binaries> {
        let exe = std::env::current_exe().context("locating the running executable")?;
        let mut dir = exe.parent().context("the executable has no directory")?;
        if dir.ends_with("deps") || dir.ends_with("examples") {
            dir = dir.parent().context("the target directory has no parent")?;
        }
        Ok(Binaries {
            relay: binary(dir, "outbox-relay")?,
            order_service: binary(dir, "order-service")?,
            invoice_service: binary(dir, "invoice-service")?,
        })
    }
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the workspace's binaries first with `cargo build --workspace --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// A broker of the demo's own on a free port, so that its default names (`outbox.event.order`, the
/// `outbox` exchange, the `invoice-service` group) collide with nothing and vanish with it.
pub enum Broker {
    Kafka(Kafka),
    RabbitMq(RabbitMq),
    Redis(Redis),
}

impl Broker {
    pub fn start(kind: BrokerKind) -> Result<Broker> {
        Ok(match kind {
            BrokerKind::Kafka => Broker::Kafka(Kafka::start().context("starting Tansu")?),
            BrokerKind::RabbitMq => {
                Broker::RabbitMq(RabbitMq::start().context("starting a RabbitMQ node")?)
            }
            BrokerKind::Redis => Broker::Redis(Redis::start().context("starting Redis")?),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Broker::Kafka(kafka) => format!("Tansu (Kafka protocol) on {}", kafka.brokers()),
            Broker::RabbitMq(rabbitmq) => format!("RabbitMQ on {}", rabbitmq.url()),
            Broker::Redis(redis) => format!("Redis on {}", redis.url()),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Broker::Kafka(kafka) => kafka.port(),
            Broker::RabbitMq(rabbitmq) => rabbitmq.port(),
            Broker::Redis(redis) => redis.port(),
        }
    }

    /// The relay's connection flag and its value.
    pub fn relay_args(&self) -> [String; 2] {
        match self {
            Broker::Kafka(kafka) => ["--kafka-brokers".into(), kafka.brokers()],
            Broker::RabbitMq(rabbitmq) => ["--rabbitmq-url".into(), rabbitmq.url()],
            Broker::Redis(redis) => ["--redis-url".into(), redis.url()],
        }
    }

    /// The invoice-service's connection variable and its value.
    pub fn invoice_env(&self) -> (&'static str, String) {
        match self {
            Broker::Kafka(kafka) => ("KAFKA_BOOTSTRAP_SERVERS", kafka.brokers()),
            Broker::RabbitMq(rabbitmq) => ("RABBITMQ_URL", rabbitmq.url()),
            Broker::Redis(redis) => ("REDIS_URL", redis.url()),
        }
    }

    fn stop(&mut self) -> Result<()> {
        match self {
            Broker::Kafka(kafka) => kafka.stop(),
            Broker::RabbitMq(rabbitmq) => rabbitmq.stop(),
            Broker::Redis(redis) => redis.stop(),
        }
    }
}

/// A binary the demo started, under the name the output shows, with what starts it again.
struct Service {
    name: &'static str,
    process: Process,
    /// A copy of its command, and the log line that says it is ready.
    command: Command,
    ready_line: String,
}

/// A copy of `command`, for a command started with a cleared environment as every binary of the demo
/// is (`Command` is not `Clone`, and the cleared environment is not readable back).
fn copy(command: &Command) -> Command {
    let mut copy = Command::new(command.get_program());
    copy.env_clear().args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            copy.env(key, value);
        }
    }
    copy
}

/// Everything the demo started. Fields drop in declaration order: the binaries go before the
/// servers they use.
#[derive(Default)]
pub struct Stack {
    /// In start order.
    services: Vec<Service>,
    broker: Option<Broker>,
    postgres: Option<Postgres>,
}

impl Stack {
    pub fn start_postgres(&mut self) -> Result<&Postgres> {
        let postgres = Postgres::start().context("starting PostgreSQL")?;
        Ok(self.postgres.insert(postgres))
    }

    pub fn start_broker(&mut self, kind: BrokerKind) -> Result<&Broker> {
        let broker = Broker::start(kind)?;
        Ok(self.broker.insert(broker))
    }

    /// Starts `cmd` and waits until its log shows `ready_line`.
    pub async fn start(
        &mut self,
        name: &'static str,
        cmd: Command,
        ready_line: &str,
    ) -> Result<()> {
        let command = copy(&cmd);
        let process = Process::start(cmd).with_context(|| format!("starting {name}"))?;
        self.services.push(Service {
            name,
            process,
            command,
            ready_line: ready_line.to_owned(),
        });
        let service = self.services.last_mut().expect("just pushed");
        let deadline = Instant::now() + START_TIMEOUT;
        while !service.process.log().contains(ready_line) {
            if let Some(status) = service.process.exited()? {
                bail!("{name} exited ({status}) before it was ready");
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} was not ready within {START_TIMEOUT:?} (no {ready_line:?} in its log)"
                );
            }
            // Async, so that a Ctrl-C is noticed while waiting.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Kills the binary `name` with SIGKILL and starts it again with the same command, waiting until
    /// it is ready.
    pub async fn kill_and_restart(&mut self, name: &'static str) -> Result<()> {
        let index = self
            .services
            .iter()
            .position(|service| service.name == name)
            .with_context(|| format!("{name} is not running"))?;
        let mut service = self.services.remove(index);
        service.process.kill9()?;
        self.start(name, copy(&service.command), &service.ready_line)
            .await
    }

    /// Stops the binary `name` with SIGTERM, as [`Stack::stop`] does; it may be started again.
    pub fn stop_service(&mut self, name: &str) -> Result<()> {
        let index = self
            .services
            .iter()
            .position(|service| service.name == name)
            .with_context(|| format!("{name} is not running"))?;
        let mut service = self.services.remove(index);
        service.process.terminate()?;
        let status = service
            .process
            .wait_timeout(STOP_TIMEOUT)?
            .with_context(|| format!("{name} did not stop within {STOP_TIMEOUT:?}"))?;
        ensure!(status.success(), "{name} exited with {status} on SIGTERM");
        println!("  stopped {name} ({status})");
        Ok(())
    }

    /// Everything `name` has logged so far.
    pub fn log(&self, name: &str) -> String {
        self.services
            .iter()
            .find(|service| service.name == name)
            .map(|service| service.process.log())
            .unwrap_or_default()
    }

    /// Prints the end of each binary's log to stderr, for a failed run.
    pub fn print_logs(&self) {
        for service in &self.services {
            let log = service.process.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("----- last lines of the {} log -----", service.name);
            for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                eprintln!("{line}");
            }
        }
    }

    /// Stops the binaries with SIGTERM in reverse start order (consumer, relay, producer), then the
    /// broker and PostgreSQL, reporting each; a binary that does not exit cleanly fails the demo.
    pub fn stop(mut self) -> Result<()> {
        while let Some(mut service) = self.services.pop() {
            service.process.terminate()?;
            let status = service
                .process
                .wait_timeout(STOP_TIMEOUT)?
                .with_context(|| {
                    format!("{} did not stop within {STOP_TIMEOUT:?}", service.name)
                })?;
            if !status.success() {
                bail!("{} exited with {status} on SIGTERM", service.name);
            }
            println!("  stopped {} ({status})", service.name);
        }
        if let Some(broker) = &mut self.broker {
            broker.stop()?;
            println!("  stopped {}", broker.describe());
        }
        if let Some(postgres) = &mut self.postgres {
            postgres.stop()?;
            println!("  stopped PostgreSQL on 127.0.0.1:{}", postgres.port());
        }
        Ok(())
    }
}
