//! The README's main job, the seed's demo end to end: [`run`] starts a throwaway PostgreSQL with
//! logical replication (databases `orders` and `invoices`), a broker, `order-service`, the relay on
//! the orders database, `invoice-service` and a second relay on the invoices database; creates and
//! confirms an order over HTTP as the seed's curl commands do; waits for the invoice; runs the saga's
//! paths (invoiced, cancelled after the void, rejected over the credit limit); prints what flowed; and
//! stops everything again. [`run_timeout`] runs the saga's timeout path on a system of its own, for
//! the test, and [`run_uncorrelated`] a saga whose requests carry no correlation id.
//!
//! The `demo` binary (run by `scripts/demo.sh`) and the crate's integration test both call [`run`],
//! so the test proves the command keeps working. Every step checks what it sees, so a run that
//! returns `Ok` is a run in which the order, both events, the invoice and the correlation id all
//! agree.

mod api;
mod chaos;
mod correlation;
mod report;
mod saga;
mod stack;
mod timeout;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_postgres::NoTls;

use api::{Api, CORRELATION_ID};
pub use chaos::{run_chaos, ChaosOutcome};
pub use correlation::{run_uncorrelated, CorrelationOutcome};
pub use saga::SagaOutcome;
use stack::Stack;
pub use stack::{Binaries, BrokerKind};
pub use timeout::{run_timeout, TimeoutOutcome};

/// From the confirmation to the invoice; generous, as a Kafka consumer group join alone can take seconds.
const INVOICE_TIMEOUT: Duration = Duration::from_secs(60);
/// From the invoice to the relay's log line about the events, written once the broker confirmed.
const RELAY_LOG_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// What a successful run saw, for the integration test to check.
#[derive(Debug)]
pub struct Outcome {
    /// The order as `POST /orders/{id}/confirm` answered it.
    pub order: Value,
    /// The invoice as `GET /invoices?orderId=` answered it.
    pub invoice: Value,
    /// Sent with both requests.
    pub correlation_id: String,
    /// The order's outbox rows in commit order, as the relay published them.
    pub events: Vec<Relayed>,
    /// The event the invoice-service recorded as the invoice's origin.
    pub invoice_event_id: String,
    /// The correlation id the invoice-service stored with the invoice.
    pub invoice_correlation_id: String,
    /// Where the demo's servers listened; nothing listens there once [`run`] has returned.
    pub addresses: Vec<SocketAddr>,
    /// The saga's three paths: invoiced, cancelled after the void, rejected.
    pub saga: SagaOutcome,
}

/// One outbox row and where the relay published it.
#[derive(Debug)]
pub struct Relayed {
    pub id: String,
    pub event_type: String,
    /// From the row's headers.
    pub correlation_id: String,
    pub destination: String,
    pub lsn: String,
}

/// Runs the demo with `broker`, printing as it goes. Whether it succeeds or fails, everything it
/// started is stopped and deleted when it returns; dropping the future (Ctrl-C) does the same.
pub async fn run(broker: BrokerKind, binaries: &Binaries) -> Result<Outcome> {
    let mut stack = Stack::default();
    match flow(&mut stack, broker, binaries).await {
        Ok(outcome) => {
            println!("\nCleaning up:");
            stack.stop()?;
            println!("Everything the demo started is stopped and its temp dirs are deleted.");
            Ok(outcome)
        }
        Err(error) => {
            stack.print_logs();
            Err(error)
        }
    }
}

async fn flow(stack: &mut Stack, kind: BrokerKind, binaries: &Binaries) -> Result<Outcome> {
    println!("The seed's demo with {kind}: order-service -> outbox -> outbox-relay -> {kind} -> invoice-service\n");
    let system = start_system(stack, kind, binaries, None).await?;
    let api = Api::default();
    let correlation_id = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let order = order_and_confirm(&api, &system, &correlation_id).await?;
    let order_id = text(&order["id"], "the order's id")?;
    let invoice = wait_for_invoice(&api, &system, &order_id).await?;
    let events = relayed_events(stack, &system, &order_id).await?;
    let invoices_db = connect(&system.invoices_url).await?;
    let row = invoices_db
        .query_one(
            "SELECT event_id::text, coalesce(correlation_id, '') FROM invoices WHERE order_id::text = $1",
            &[&order_id],
        )
        .await
        .context("reading the invoice's row")?;
    let outcome = Outcome {
        order,
        invoice,
        correlation_id,
        events,
        invoice_event_id: row.get(0),
        invoice_correlation_id: row.get(1),
        addresses: system.addresses,
        saga: saga::run(&api, &format!("http://{}", system.order_service), &order_id).await?,
    };
    report::check_and_print(&outcome)?;
    Ok(outcome)
}

/// Where the started system answers.
struct System {
    orders_url: String,
    invoices_url: String,
    order_service: SocketAddr,
    invoice_service: SocketAddr,
    /// The invoice-service's broker variable and value, to start it again.
    invoice_broker: (&'static str, String),
    /// Every server's, for [`Outcome::addresses`].
    addresses: Vec<SocketAddr>,
}

/// PostgreSQL and the broker, then the binaries in the order their dependencies need: the
/// order-service migrates the orders database (outbox table included) before the relay creates its
/// publication and slot; the invoice-service subscribes before any event is written.
async fn start_system(
    stack: &mut Stack,
    kind: BrokerKind,
    binaries: &Binaries,
    saga_timeout_secs: Option<u32>,
) -> Result<System> {
    let postgres = stack.start_postgres()?;
    let postgres_port = postgres.port();
    let admin = postgres.client().await?;
    // Each process with a role of its own, as in production: the services own their databases and
    // may not replicate; the relay may replicate and nothing else.
    admin
        .batch_execute(
            "CREATE ROLE order_service LOGIN; CREATE ROLE invoice_service LOGIN; \
             CREATE ROLE outbox_relay LOGIN REPLICATION;",
        )
        .await
        .context("creating the roles")?;
    // CREATE DATABASE refuses to run in the implicit transaction of a multi-statement query.
    for (database, owner) in [("orders", "order_service"), ("invoices", "invoice_service")] {
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER {owner}"))
            .await
            .with_context(|| format!("creating database {database}"))?;
    }
    let orders_url = database_url(postgres_port, "order_service", "orders");
    let invoices_url = database_url(postgres_port, "invoice_service", "invoices");
    println!("PostgreSQL (wal_level=logical) on 127.0.0.1:{postgres_port}, databases orders and invoices, each owned by its service's role");

    let broker = stack.start_broker(kind)?;
    let broker_port = broker.port();
    let relay_broker_args = broker.relay_args();
    let (invoice_broker_variable, invoice_broker_value) = broker.invoice_env();
    println!("{}", broker.describe());

    let order_service = loopback_addr()?;
    let mut command = Command::new(&binaries.order_service);
    // Only what the demo sets: a developer's DATABASE_URL or LOG_FORMAT must not leak in.
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .env("ORDER_SERVICE_ADDR", order_service.to_string())
        .env("DATABASE_URL", &orders_url)
        .env("MESSAGING_MODE", kind.to_string())
        .env(invoice_broker_variable, &invoice_broker_value);
    if let Some(secs) = saga_timeout_secs {
        command
            .env("SAGA_TIMEOUT_SECS", secs.to_string())
            .env("SAGA_SWEEP_INTERVAL_MS", "200");
    }
    // Logged once subscribed to the replies (after "serving HTTP"), so that none is missed.
    stack
        .start("order-service", command, "consuming replies")
        .await?;
    println!("order-service on http://{order_service}, its migrations ran on database orders (outbox table included), consuming {} for its sagas", contracts::INVOICE_DESTINATION);
    // The relay's role owns nothing, so the publication is the administrator's to create.
    connect(&database_url(postgres_port, "postgres", "orders"))
        .await?
        .batch_execute(
            "CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert', publish_via_partition_root = true)",
        )
        .await
        .context("creating the publication")?;
    let relay_url = database_url(postgres_port, "outbox_relay", "orders");

    let relay_args = [
        "run",
        "--database-url",
        &relay_url,
        "--sink",
        &kind.to_string(),
        &relay_broker_args[0],
        &relay_broker_args[1],
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut command = Command::new(&binaries.relay);
    command
        .env_clear()
        .args(relay_args)
        // JSON, so that the demo can read back the debug line naming each relayed event.
        .args(["--log-format", "json"])
        .args(["--log-level", "info,outbox_relay::pipeline=debug"]);
    println!("$ outbox-relay {}", relay_args.join(" "));
    stack
        .start("outbox-relay", command, "streaming the outbox")
        .await?;
    println!("  the relay (role outbox_relay: LOGIN REPLICATION, no table privilege) created its slot and streams the outbox to {kind}");

    let invoice_service = loopback_addr()?;
    let invoice_broker = (invoice_broker_variable, invoice_broker_value);
    let command = invoice_service_command(
        binaries,
        invoice_service,
        &invoices_url,
        kind,
        &invoice_broker,
    );
    // Logged once subscribed (RabbitMQ: queue bound), so nothing published from now on is missed.
    stack.start("invoice-service", command, "consuming").await?;
    println!(
        "invoice-service on http://{invoice_service}, MESSAGING_MODE={kind}, consuming {}, credit limit {} per customer",
        contracts::ORDER_DESTINATION,
        saga::CREDIT_LIMIT
    );

    // The invoice-service's migrations created its own outbox: a second relay, with a slot of its own
    // (slots are per cluster), publishes the saga's replies from it.
    connect(&database_url(postgres_port, "postgres", "invoices"))
        .await?
        .batch_execute(
            "CREATE PUBLICATION outbox_relay_pub FOR TABLE outbox WITH (publish = 'insert', publish_via_partition_root = true)",
        )
        .await
        .context("creating the invoices publication")?;
    let invoices_relay_url = database_url(postgres_port, "outbox_relay", "invoices");
    let mut command = Command::new(&binaries.relay);
    command
        .env_clear()
        .args([
            "run",
            "--database-url",
            &invoices_relay_url,
            "--slot",
            "outbox_relay_invoices_slot",
        ])
        .args([
            "--sink",
            &kind.to_string(),
            &relay_broker_args[0],
            &relay_broker_args[1],
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    stack
        .start("outbox-relay (invoices)", command, "streaming the outbox")
        .await?;
    println!(
        "  a second relay streams the invoices database's outbox to {kind} ({})",
        contracts::INVOICE_DESTINATION
    );

    Ok(System {
        orders_url,
        invoices_url,
        order_service,
        invoice_service,
        invoice_broker,
        addresses: vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, postgres_port)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, broker_port)),
            order_service,
            invoice_service,
        ],
    })
}

/// `POST /orders`, then `POST /orders/{id}/confirm`, both with `correlation_id`; returns the
/// confirmed order.
async fn order_and_confirm(api: &Api, system: &System, correlation_id: &str) -> Result<Value> {
    let base = format!("http://{}", system.order_service);
    let request = json!({
        "customerId": uuid::Uuid::new_v4(),
        "lines": [
            {"productId": uuid::Uuid::new_v4(), "quantity": 2, "unitPrice": "10.00", "currency": "USD"},
            {"productId": uuid::Uuid::new_v4(), "quantity": 1, "unitPrice": "5.50", "currency": "USD"}
        ]
    });
    println!("\nA customer orders, and the order is confirmed:");
    let created = api
        .call(
            Method::POST,
            &format!("{base}/orders"),
            Some(correlation_id),
            Some(&request),
            &["Location", CORRELATION_ID],
        )
        .await?;
    ensure!(
        created.status == StatusCode::CREATED,
        "POST /orders answered {}",
        created.status
    );
    let order_id = text(&created.body["id"], "the order's id")?;
    let confirmed = api
        .call(
            Method::POST,
            &format!("{base}/orders/{order_id}/confirm"),
            Some(correlation_id),
            None,
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        confirmed.status == StatusCode::OK,
        "POST /orders/{order_id}/confirm answered {}",
        confirmed.status
    );
    Ok(confirmed.body)
}

/// Polls `GET /invoices?orderId=` until the invoice is there, then shows that call and returns it.
async fn wait_for_invoice(api: &Api, system: &System, order_id: &str) -> Result<Value> {
    println!("\nThe relay publishes the outbox rows; the invoice-service invoices OrderConfirmed:");
    let url = format!(
        "http://{}/invoices?orderId={order_id}",
        system.invoice_service
    );
    let started = Instant::now();
    loop {
        let reply = api.send(Method::GET, &url, None, None).await?;
        if reply.body.as_array().is_some_and(|list| !list.is_empty()) {
            break;
        }
        ensure!(
            started.elapsed() < INVOICE_TIMEOUT,
            "no invoice for order {order_id} within {INVOICE_TIMEOUT:?} (last answer: {} {})",
            reply.status,
            reply.body
        );
        tokio::time::sleep(POLL).await;
    }
    let waited = started.elapsed();
    let reply = api.call(Method::GET, &url, None, None, &[]).await?;
    println!(
        "(the invoice was there {:.1} s after the confirmation)",
        waited.as_secs_f64()
    );
    Ok(reply.body[0].clone())
}

/// The order's outbox rows in commit order, each with where the relay published it.
async fn relayed_events(stack: &Stack, system: &System, order_id: &str) -> Result<Vec<Relayed>> {
    let orders_db = connect(&system.orders_url).await?;
    let rows = orders_db
        .query(
            "SELECT id::text, type, coalesce(headers->>$2, '') FROM outbox \
             WHERE aggregateid = $1 ORDER BY created_at",
            &[&order_id, &contracts::CORRELATION_HEADER],
        )
        .await
        .context("reading the order's outbox rows")?;
    let mut events = Vec::new();
    for row in rows {
        let id: String = row.get(0);
        let (destination, lsn) = relayed(stack, &id).await?;
        events.push(Relayed {
            id,
            event_type: row.get(1),
            correlation_id: row.get(2),
            destination,
            lsn,
        });
    }
    Ok(events)
}

/// The invoice-service on `addr`, consuming from `kind` with the demo's credit limit.
fn invoice_service_command(
    binaries: &Binaries,
    addr: SocketAddr,
    invoices_url: &str,
    kind: BrokerKind,
    (broker_variable, broker_value): &(&'static str, String),
) -> Command {
    let mut command = Command::new(&binaries.invoice_service);
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .env("INVOICE_SERVICE_ADDR", addr.to_string())
        .env("DATABASE_URL", invoices_url)
        .env("MESSAGING_MODE", kind.to_string())
        .env(broker_variable, broker_value)
        .env("INVOICE_SERVICE_CREDIT_LIMIT", saga::CREDIT_LIMIT);
    command
}

/// Where the relay says it published `event_id`, from its debug line written once the broker
/// confirmed the event.
async fn relayed(stack: &Stack, event_id: &str) -> Result<(String, String)> {
    let deadline = Instant::now() + RELAY_LOG_TIMEOUT;
    loop {
        let log = stack.log("outbox-relay");
        let found = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|line| {
                let fields = &line["fields"];
                if fields["message"] != "relayed" || fields["event_id"] != event_id {
                    return None;
                }
                Some((
                    fields["destination"].as_str()?.to_owned(),
                    fields["lsn"].as_str()?.to_owned(),
                ))
            });
        if let Some(found) = found {
            return Ok(found);
        }
        ensure!(
            Instant::now() < deadline,
            "the relay did not log event {event_id} as relayed within {RELAY_LOG_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn database_url(port: u16, role: &str, database: &str) -> String {
    format!("postgres://{role}@127.0.0.1:{port}/{database}")
}

fn loopback_addr() -> Result<SocketAddr> {
    Ok(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        harness::free_port()?,
    )))
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // A lost connection also fails the client's next query, which reports it.
    tokio::spawn(async move { drop(connection.await) });
    Ok(client)
}

fn text(value: &Value, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what} is missing: {value}"))
}
