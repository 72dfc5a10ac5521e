//! The `outbox-relay` binary: parses the command line, sets up logging and signals, and hands over
//! to the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use outbox_relay::check;
use outbox_relay::checkpoint;
use outbox_relay::cli::{Cli, Command, LogFormat, ReplayArgs};
use outbox_relay::config::Config;
use outbox_relay::http;
use outbox_relay::metrics::Metrics;
use outbox_relay::pg::catalog;
use outbox_relay::replay::{self, ReplayError, Replayed};
use outbox_relay::status;
use outbox_relay::supervisor;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Exit code for configuration a user must fix, like clap's own usage errors.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = init_logging(cli.log_format, cli.log_level.as_deref());
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match cli.command {
        Command::Ddl(args) => {
            let overrides = args.overrides();
            let tables =
                Config::load_outbox(cli.config.as_deref(), overrides.clone()).and_then(|outbox| {
                    Ok((
                        outbox,
                        Config::load_checkpoint_table(cli.config.as_deref(), overrides)?,
                    ))
                });
            match tables {
                Ok((outbox, checkpoint_table)) => {
                    print!("{}", outbox.ddl());
                    if let Some(table) = checkpoint_table {
                        print!("{}", checkpoint::ddl(&table));
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => config_error(&error),
            }
        }
        Command::DropSlot(args) => {
            let overrides = outbox_relay::cli::RunArgs {
                connection: args,
                ..Default::default()
            }
            .overrides();
            let config = match Config::load(cli.config.as_deref(), overrides) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            match runtime.block_on(drop_slot(&config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check(args) => {
            let config = match Config::load(cli.config.as_deref(), args.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            let findings = runtime.block_on(check::run(&config));
            print!("{}", check::render(&findings));
            if findings.iter().any(|f| f.status == check::Status::Fail) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Status(args) => {
            let config = match Config::load(cli.config.as_deref(), args.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            match runtime.block_on(print_status(&config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay(args) => {
            let config = match Config::load(cli.config.as_deref(), args.run.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            runtime.block_on(replay(&config, &args))
        }
        Command::Run(args) => {
            let config = match Config::load(cli.config.as_deref(), args.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            runtime.block_on(run(config, cli.log_format))
        }
    }
}

fn config_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    eprintln!("See `outbox-relay run --help` for every option.");
    ExitCode::from(EXIT_CONFIG)
}

async fn run(config: Config, log_format: LogFormat) -> ExitCode {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let grace = config.shutdown_grace;
    let sink = format!("{:?}", config.sink).to_lowercase();
    let metrics = Arc::new(Metrics::with_max_destinations(
        &sink,
        config.metrics_max_destinations,
    ));
    let endpoint = match config.endpoint() {
        Ok(endpoint) => endpoint,
        Err(error) => return config_error(&error),
    };
    match http::serve(&endpoint, metrics.clone()).await {
        Ok(addr) => tracing::info!(
            %addr,
            tls = endpoint.tls.is_some(),
            token = endpoint.token.is_some(),
            "serving /metrics, /health/live and /health/ready"
        ),
        Err(error) => {
            eprintln!("error: cannot serve metrics (`metrics_addr`, `metrics_tls_*`): {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let relay = supervisor::run(&config, metrics, shutdown.clone());
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = relay => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if error.is_configuration() => config_error(&error),
            // Once, where its reader looks: a log collector parses JSON lines, a person reads text.
            Err(error) => {
                match log_format {
                    LogFormat::Json => tracing::error!(%error, "relay stopped"),
                    LogFormat::Text => eprintln!("error: {error}"),
                }
                ExitCode::FAILURE
            }
        },
        _ = deadline => {
            tracing::error!(grace = ?grace, "in-flight events were not confirmed within the shutdown grace period; they will be re-sent on the next start");
            ExitCode::FAILURE
        }
    }
}

/// Installs the handlers before returning, so that a signal sent as soon as the relay logs that it
/// serves is a stop, not the default action that kills it; then waits for one in a task.
fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(
            "cannot install signal handlers; stop the relay with SIGKILL (nothing is lost)"
        );
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop signal received");
        shutdown.cancel();
    });
}

async fn replay(config: &Config, args: &ReplayArgs) -> ExitCode {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    match replay::run(config, &args.filter(), args.dry_run, &shutdown).await {
        Ok(Replayed::Counted(rows)) => {
            println!("{rows} rows match; nothing was published (--dry-run)");
            ExitCode::SUCCESS
        }
        Ok(Replayed::Published(rows)) => {
            println!("replayed {rows} events; the broker confirmed every one");
            ExitCode::SUCCESS
        }
        Err(ReplayError::Config(error)) => config_error(&error),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn print_status(config: &Config) -> anyhow::Result<()> {
    let client = catalog::connect(&config.database()?)
        .await
        .context("connecting to PostgreSQL")?;
    let status = status::read(&client, config)
        .await
        .context("reading the slot")?;
    print!("{}", status::render(&status));
    Ok(())
}

async fn drop_slot(config: &Config) -> anyhow::Result<()> {
    let client = catalog::connect(&config.database()?)
        .await
        .context("connecting to PostgreSQL")?;
    if catalog::drop_slot(&client, &config.slot)
        .await
        .context("dropping the slot")?
    {
        println!("dropped replication slot {}", config.slot);
    } else {
        println!(
            "replication slot {} does not exist; nothing to drop",
            config.slot
        );
    }
    Ok(())
}

/// Logs to stderr, filtered by `level` or RUST_LOG; with the `otlp` feature and
/// OTEL_EXPORTER_OTLP_ENDPOINT set, also exports a span per relayed event (the guard flushes them).
fn init_logging(format: LogFormat, level: Option<&str>) -> Option<Box<dyn std::any::Any>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // lapin logs every message RabbitMQ returns as a WARN with its bytes; the sink dead-letters
    // each one and logs why, so that line only repeats it, unreadably. A filter naming lapin wins.
    let names_lapin = level.is_some_and(|l| l.contains("lapin"))
        || std::env::var("RUST_LOG").is_ok_and(|l| l.contains("lapin"));
    let filter = match "lapin::returned_messages=error".parse() {
        Ok(quiet) if !names_lapin => filter.add_directive(quiet),
        _ => filter,
    };
    // Colours only for a person at a terminal, not in files and log collectors.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    // One filter for the whole stack, not one per layer: a per-layer filter drops the event that
    // follows a `log` crate query on the same thread (tokio-rs/tracing#2519), and librdkafka's
    // client logs through `log`. At `outbox_relay=debug` the warning of each failed Kafka connect
    // went missing.
    let registry = tracing_subscriber::registry();
    #[cfg(feature = "otlp")]
    if let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        match outbox_relay::telemetry::init(&endpoint) {
            Ok((layer, guard)) => {
                // The exported spans pass whatever the log level; the relay has no other spans.
                let filter = filter.add_directive(
                    "outbox_relay::telemetry=info"
                        .parse()
                        .expect("a valid directive"),
                );
                registry.with(filter).with(fmt).with(layer).init();
                return Some(Box::new(guard));
            }
            Err(error) => eprintln!("warning: no trace export to {endpoint}: {error}"),
        }
    }
    registry.with(filter).with(fmt).init();
    None
}
