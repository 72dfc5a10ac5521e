//! `relay-check`: writes a workload through a real outbox table and checks what reached the broker.
//! Exit status: 0 when nothing was lost or reordered, 1 when something was, 2 when the check could
//! not be made (bad arguments, database or broker unreachable).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use relay_check::broker::{self, Broker, KafkaReader, RabbitMqReader, Reader, RedisReader};
use relay_check::expected::{self, Expected};
use relay_check::table::Table;
use relay_check::workload::{self, Workload};
use relay_check::{report, verify};

#[derive(Parser)]
#[command(name = "relay-check", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes K aggregates x N events into the outbox table and prints the run id.
    Write(WriteArgs),
    /// RabbitMQ only: declares a durable queue bound to the destination, to run before `write`
    /// (RabbitMQ drops what no queue is bound for).
    Bind(BindArgs),
    /// Reads what arrived at the broker and counts lost, duplicated and out-of-order events.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct WriteArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Number of aggregates (K).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    aggregates: u64,
    /// Events per aggregate (N).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// The outbox table, `name` or `schema.name`.
    #[arg(long, default_value = "public.outbox")]
    table: String,
    /// Run id; a fresh one by default.
    #[arg(long)]
    run_id: Option<String>,
    /// Events per transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The rows' aggregatetype, which the relay's destination template usually contains.
    #[arg(long, default_value = workload::AGGREGATE_TYPE)]
    aggregate_type: String,
}

/// The queue `bind` binds and `verify` reads (RabbitMQ).
#[derive(Args)]
struct QueueArgs {
    /// The queue bound to the destination (RabbitMQ) [default: relay-check.<destination>].
    #[arg(long)]
    queue: Option<String>,
}

impl QueueArgs {
    fn queue(&self, destination: &str) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("relay-check.{destination}"))
    }
}

#[derive(Args)]
struct BindArgs {
    /// AMQP URI, e.g. amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long)]
    broker_url: String,
    /// The routing key the relay publishes the run's events with.
    #[arg(long)]
    destination: String,
    /// The relay's exchange.
    #[arg(long, default_value = "outbox")]
    exchange: String,
    #[command(flatten)]
    queue: QueueArgs,
}

#[derive(Args)]
struct VerifyArgs {
    /// Where the run's rows are; not needed with --expect.
    #[arg(long, env = "DATABASE_URL", required_unless_present = "expect")]
    database_url: Option<String>,
    /// The run id `write` printed.
    #[arg(long)]
    run_id: String,
    /// The run's shape, `K x N`, when its rows were deleted from the outbox table.
    #[arg(long)]
    expect: Option<String>,
    /// The outbox table, `name` or `schema.name`.
    #[arg(long, default_value = "public.outbox")]
    table: String,
    /// kafka, rabbitmq or redis.
    #[arg(long)]
    broker: Broker,
    /// Kafka bootstrap servers (host:port,...), AMQP URI, or Redis URL.
    #[arg(long)]
    broker_url: String,
    /// Kafka topic, RabbitMQ routing key or Redis stream the run's events go to.
    #[arg(long)]
    destination: String,
    #[command(flatten)]
    queue: QueueArgs,
    /// How long to wait for missing events.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Write(args) => write_run(args).await,
        Command::Bind(args) => {
            let queue = args.queue.queue(&args.destination);
            broker::bind_queue(&args.broker_url, &args.exchange, &args.destination, &queue).await?;
            println!("{queue}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify_run(args).await,
    }
}

async fn write_run(args: WriteArgs) -> anyhow::Result<ExitCode> {
    let table = Table::parse(&args.table)?;
    let mut workload = Workload::new(args.aggregates, args.events);
    workload.batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    workload.aggregate_type = args.aggregate_type;
    if let Some(run) = args.run_id {
        workload.run = run;
    }
    let mut client = workload::connect(&args.database_url)
        .await
        .context("cannot connect to the database")?;
    let written = workload::write(&mut client, &table, &workload)
        .await
        .with_context(|| format!("cannot write the run into {table}"))?;
    eprintln!(
        "wrote {written} events ({} aggregates x {} events) into {table}",
        workload.aggregates, workload.events
    );
    println!("{}", workload.run);
    Ok(ExitCode::SUCCESS)
}

async fn verify_run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let table = Table::parse(&args.table)?;
    let expected = match (&args.expect, &args.database_url) {
        (Some(shape), _) => {
            let (aggregates, events) = expected::parse_shape(shape)?;
            Expected::from_shape(&args.run_id, aggregates, events)
        }
        (None, Some(url)) => {
            let client = workload::connect(url)
                .await
                .context("cannot connect to the database")?;
            Expected::from_table(&client, &table, &args.run_id).await?
        }
        (None, None) => anyhow::bail!("either --database-url or --expect is needed"),
    };
    let mut reader = match args.broker {
        Broker::Kafka => Reader::Kafka(KafkaReader::new(&args.broker_url, &args.destination)),
        Broker::RabbitMq => Reader::RabbitMq(Box::new(
            RabbitMqReader::connect(&args.broker_url, &args.queue.queue(&args.destination)).await?,
        )),
        Broker::Redis => {
            Reader::Redis(RedisReader::connect(&args.broker_url, &args.destination).await?)
        }
    };
    let outcome = verify::verify(&args.run_id, &expected, &mut reader, args.timeout).await;
    reader.close().await;
    let verification = outcome?;
    print!("{}", report::render(&verification));
    Ok(if verification.tally.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
