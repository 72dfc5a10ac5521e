//! The README's main job: a relay run from an outbox table to a broker on local servers, printing
//! what it relayed. Starts a throwaway PostgreSQL with logical replication and the chosen broker,
//! runs the `outbox-relay` binary against them, writes orders the way a service does (business row
//! and outbox row in one transaction, one transaction rolled back), reads the broker back, and
//! cleans everything up. Run it with `scripts/demo.sh [--broker kafka|rabbitmq|redis]`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use harness::{Postgres, Process, Reader};

const ORDERS: usize = 3;

#[tokio::main]
async fn main() -> Result<()> {
    let broker = parse_broker()?;
    let relay_bin = relay_binary()?;

    let pg = Postgres::start().context("starting PostgreSQL")?;
    println!("PostgreSQL (wal_level=logical) on {}", pg.url());
    let client = pg.client().await?;
    let ddl = Command::new(&relay_bin).arg("ddl").output()?;
    client
        .batch_execute(std::str::from_utf8(&ddl.stdout)?)
        .await?;
    client
        .batch_execute("CREATE TABLE orders (id uuid PRIMARY KEY, customer text NOT NULL, status text NOT NULL)")
        .await?;

    let prefix = harness::unique("demo");
    let destination = format!("{prefix}.{{aggregatetype}}");
    let destinations = vec![format!("{prefix}.order")];
    let _kafka;
    let (sink_args, mut reader) = match broker.as_str() {
        "kafka" => {
            let kafka = harness::Kafka::start()?;
            let brokers = kafka.brokers();
            _kafka = kafka;
            println!("Kafka protocol broker (Tansu) on {brokers}");
            (
                vec![
                    "--sink".into(),
                    "kafka".into(),
                    "--kafka-brokers".into(),
                    brokers.clone(),
                ],
                Reader::kafka(&brokers, &destinations),
            )
        }
        "rabbitmq" => {
            let url = harness::RabbitMq::shared()?;
            let exchange = harness::unique("demo-outbox");
            println!("RabbitMQ on 127.0.0.1:5672, exchange {exchange}");
            let reader = Reader::rabbitmq(&url, &exchange, &destinations).await;
            (
                vec![
                    "--sink".into(),
                    "rabbitmq".into(),
                    "--rabbitmq-url".into(),
                    url,
                    "--rabbitmq-exchange".into(),
                    exchange,
                ],
                reader,
            )
        }
        _ => {
            let url = harness::Redis::shared()?;
            println!("Redis on {url}");
            (
                vec![
                    "--sink".into(),
                    "redis".into(),
                    "--redis-url".into(),
                    url.clone(),
                ],
                Reader::redis(&url, &destinations),
            )
        }
    };

    let mut cmd = Command::new(&relay_bin);
    // Relays run side by side here: each serves its metrics on a port of its own.
    cmd.env("OUTBOX_RELAY_METRICS_ADDR", "127.0.0.1:0");
    cmd.args([
        "run",
        "--database-url",
        &pg.url(),
        "--destination",
        &destination,
    ])
    .args(&sink_args);
    println!(
        "\n$ outbox-relay run --database-url {} --destination '{destination}' {}",
        pg.url(),
        sink_args.join(" ")
    );
    let mut relay = Process::start(cmd)?;
    harness::wait_until(Duration::from_secs(60), "the relay to stream", || {
        relay.log().contains("streaming the outbox")
    })?;

    println!("\nA service writes {ORDERS} orders, creating and confirming each in its own transaction, and rolls one back:");
    for n in 1..=ORDERS {
        let correlation = uuid::Uuid::new_v4().to_string();
        let headers = serde_json::json!({"correlation_id": correlation}).to_string();
        let order = uuid::Uuid::new_v4().to_string();
        for (status, event_type) in [("CREATED", "OrderCreated"), ("CONFIRMED", "OrderConfirmed")] {
            let sql = format!(
                "BEGIN;
                 INSERT INTO orders VALUES ('{order}', 'customer-{n}', '{status}') ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
                 INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
                   VALUES (gen_random_uuid(), 'order', '{order}', '{event_type}', '{{\"orderId\": \"{order}\", \"status\": \"{status}\"}}', '{headers}');
                 COMMIT;"
            );
            client.batch_execute(&sql).await?;
        }
        println!("  order {order} created and confirmed (correlation id {correlation})");
    }
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', 'never', 'OrderCreated', '{}');
             ROLLBACK;",
        )
        .await?;
    println!("  one more order rolled back: its event must never reach the broker");

    let received = reader
        .collect_until(Duration::from_secs(60), |r| r.len() >= ORDERS * 2)
        .await;
    // A moment more, so that anything that should not arrive (the rolled-back event) would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = reader.collect_until(Duration::from_secs(5), |_| true).await;

    println!("\nWhat the relay published to {broker}:");
    for message in received.iter().chain(&late) {
        println!(
            "  {:<32} key={} type={:<15} id={} correlation_id={}\n      payload={}",
            message.destination,
            message.key,
            message
                .headers
                .get("type")
                .map(String::as_str)
                .unwrap_or("?"),
            message.headers.get("id").map(String::as_str).unwrap_or("?"),
            message
                .headers
                .get("correlation_id")
                .map(String::as_str)
                .unwrap_or("-"),
            message.payload
        );
    }
    let total = received.len() + late.len();
    if total != ORDERS * 2 || received.iter().chain(&late).any(|m| m.key == "never") {
        bail!(
            "expected exactly {} events and none from the rolled-back transaction, got {total}",
            ORDERS * 2
        );
    }

    relay.terminate()?;
    let status = relay
        .wait_timeout(Duration::from_secs(30))?
        .context("the relay did not stop")?;
    let row = client
        .query_one("SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots", &[])
        .await?;
    let (confirmed, current): (String, String) = (row.get(0), row.get(1));
    println!("\nRelay stopped on SIGTERM ({status}); slot confirmed up to {confirmed} (server WAL at {current}).");
    println!("Relayed {total} events, none from the rolled-back transaction. Everything started here is stopped now.");
    Ok(())
}

fn parse_broker() -> Result<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let broker = match args.as_slice() {
        [] => "kafka".to_owned(),
        [flag, value] if flag == "--broker" => value.clone(),
        [flag] if flag.starts_with("--broker=") => flag["--broker=".len()..].to_owned(),
        _ => bail!("usage: demo [--broker kafka|rabbitmq|redis]"),
    };
    if !["kafka", "rabbitmq", "redis"].contains(&broker.as_str()) {
        bail!("--broker must be kafka, rabbitmq or redis, not {broker:?}");
    }
    Ok(broker)
}

/// The relay binary next to this example's target directory (`cargo build` puts it there).
fn relay_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("outbox-relay"))
        .context("locating the target directory")?;
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with `cargo build -p outbox-relay`",
            bin.display()
        );
    }
    Ok(bin)
}
