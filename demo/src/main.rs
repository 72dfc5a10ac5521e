//! The `demo` binary behind `scripts/demo.sh [--broker kafka|rabbitmq|redis]`: parses the broker,
//! finds the workspace's binaries, and runs [`demo::run`] until it ends or a signal arrives.

use std::io;
use std::process::ExitCode;

use anyhow::{bail, Result};
use demo::{Binaries, BrokerKind};
use tokio::signal::unix::{signal, Signal, SignalKind};

const USAGE: &str = "usage: demo [--broker kafka|rabbitmq|redis]";

#[tokio::main]
async fn main() -> ExitCode {
    let broker = match parse_broker(std::env::args().skip(1).collect()) {
        Ok(broker) => broker,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let binaries = match Binaries::next_to_current_exe() {
        Ok(binaries) => binaries,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot handle signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Leaving the select drops the run future, which stops what the demo started.
    let result = tokio::select! {
        result = demo::run(broker, &binaries) => result,
        (name, code) = signals.next() => return stopped_by(name, code),
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            // A helper the harness runs in this process group (cp, initdb) may have died of the
            // Ctrl-C first and failed the run before the signal was seen here.
            if let Some((name, code)) = signals.pending().await {
                return stopped_by(name, code);
            }
            eprintln!("\nThe demo failed: {error:#}\nEverything it started is stopped.");
            ExitCode::FAILURE
        }
    }
}

fn stopped_by(name: &str, code: u8) -> ExitCode {
    eprintln!("\nStopped by {name}; everything the demo started is stopped.");
    ExitCode::from(code)
}

fn parse_broker(args: Vec<String>) -> Result<BrokerKind> {
    match args.as_slice() {
        [] => Ok(BrokerKind::Kafka),
        [flag, value] if flag == "--broker" => value.parse(),
        [flag] if flag.starts_with("--broker=") => flag["--broker=".len()..].parse(),
        _ => bail!("unexpected arguments {args:?}"),
    }
}

/// Ctrl-C, SIGTERM and SIGHUP, handled instead of fatal so that the demo can clean up. Installed
/// before anything starts.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal's name and the exit code a shell reports for a process it killed.
    async fn next(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", 130),
            _ = self.terminate.recv() => ("SIGTERM", 143),
            _ = self.hangup.recv() => ("SIGHUP", 129),
        }
    }

    /// A signal that has already arrived, without waiting for one.
    async fn pending(&mut self) -> Option<(&'static str, u8)> {
        tokio::select! {
            biased;
            signal = self.next() => Some(signal),
            () = std::future::ready(()) => None,
        }
    }
}
