//! The saga under kill -9, for the demo's test: many sagas at once on a system with a 5 s deadline,
//! while the order-service, the invoice-service and both relays are killed with SIGKILL at random
//! points and started again; then a check across both databases that every saga ended in exactly one
//! terminal state that its order and the invoices agree with.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::stack::Stack;
use crate::{connect, start_system, Binaries, BrokerKind, System};

const SAGA_TIMEOUT_SECS: u32 = 5;
/// Until every saga has settled after the last kill.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
const KILLED: [&str; 4] = [
    "order-service",
    "invoice-service",
    "outbox-relay",
    "outbox-relay (invoices)",
];

/// What the run did and what the check found.
#[derive(Debug)]
pub struct ChaosOutcome {
    pub sagas: usize,
    /// The binaries killed, in order.
    pub kills: Vec<&'static str>,
    pub invoiced: usize,
    pub cancelled: usize,
    /// Empty when both databases agree; otherwise one line per broken rule.
    pub violations: Vec<String>,
}

/// Starts `sagas` sagas (every fourth over the credit limit) and kills a binary `kills` times while
/// they run; everything it started is stopped when it returns.
pub async fn run_chaos(
    broker: BrokerKind,
    binaries: &Binaries,
    sagas: usize,
    kills: usize,
) -> Result<ChaosOutcome> {
    let mut stack = Stack::default();
    match flow(&mut stack, broker, binaries, sagas, kills).await {
        Ok(outcome) => {
            stack.stop()?;
            Ok(outcome)
        }
        Err(error) => {
            stack.print_logs();
            Err(error)
        }
    }
}

async fn flow(
    stack: &mut Stack,
    kind: BrokerKind,
    binaries: &Binaries,
    sagas: usize,
    kills: usize,
) -> Result<ChaosOutcome> {
    let system = start_system(stack, kind, binaries, Some(SAGA_TIMEOUT_SECS)).await?;
    let base = format!("http://{}", system.order_service);
    let http = reqwest::Client::new();
    let confirmations = confirm_orders(&http, &base, sagas);
    let noise = uuid::Uuid::new_v4();
    let mut killed = Vec::new();
    // Each binary in turn from a random one, so that every one is killed once `kills` reaches four,
    // after a random pause of up to half a second.
    let first = usize::from(noise.as_bytes()[15]);
    let chaos = async {
        for (round, byte) in noise.as_bytes().iter().cycle().take(kills).enumerate() {
            tokio::time::sleep(Duration::from_millis(u64::from(*byte) * 2)).await;
            let name = KILLED[(first + round) % KILLED.len()];
            println!("  kill -9 {name}");
            stack.kill_and_restart(name).await?;
            killed.push(name);
        }
        anyhow::Ok(())
    };
    let (confirmed, chaos) = tokio::join!(confirmations, chaos);
    chaos?;
    ensure!(confirmed? == sagas, "not every order was confirmed");
    settle(&system, sagas, killed).await
}

/// Creates and confirms `count` orders one after another while the binaries are killed, retrying
/// while the order-service restarts; returns how many were confirmed.
async fn confirm_orders(http: &reqwest::Client, base: &str, count: usize) -> Result<usize> {
    let mut confirmed = 0;
    for i in 0..count {
        // Every fourth customer orders 200.00 USD, over the demo's credit limit of 100.00.
        let quantity = if i % 4 == 3 { 20 } else { 2 };
        let request = json!({
            "customerId": uuid::Uuid::new_v4(),
            "lines": [{"productId": uuid::Uuid::new_v4(), "quantity": quantity, "unitPrice": "10.00", "currency": "USD"}]
        });
        let id = retry(|| async {
            let response = http
                .post(format!("{base}/orders"))
                .json(&request)
                .send()
                .await?;
            ensure!(
                response.status() == StatusCode::CREATED,
                "{}",
                response.status()
            );
            let body: serde_json::Value = response.json().await?;
            body["id"].as_str().map(str::to_owned).context("no id")
        })
        .await?;
        retry(|| async {
            let response = http
                .post(format!("{base}/orders/{id}/confirm"))
                .send()
                .await?;
            ensure!(response.status() == StatusCode::OK, "{}", response.status());
            Ok(())
        })
        .await?;
        confirmed += 1;
    }
    Ok(confirmed)
}

/// `attempt` until it succeeds, for at most a minute: the order-service may be restarting.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Polls both databases until every saga is terminal and they agree, or [`SETTLE_TIMEOUT`] passed.
async fn settle(system: &System, sagas: usize, kills: Vec<&'static str>) -> Result<ChaosOutcome> {
    let started = Instant::now();
    loop {
        let (violations, invoiced, cancelled, count) = check(system).await?;
        let settled = violations.is_empty() && count == sagas;
        if settled || started.elapsed() >= SETTLE_TIMEOUT {
            return Ok(ChaosOutcome {
                sagas: count,
                kills,
                invoiced,
                cancelled,
                violations,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The rules across both databases: each saga terminal (INVOICED or CANCELLED, no deadline) and equal
/// to its order's status; one `OrderCancelled` exactly for a cancelled order (no double
/// compensation); an invoiced order has one open invoice; a cancelled order has none open.
async fn check(system: &System) -> Result<(Vec<String>, usize, usize, usize)> {
    let orders = connect(&system.orders_url)
        .await?
        .query(
            "SELECT o.id::text, o.status, s.step, s.deadline IS NULL, \
             (SELECT count(*) FROM outbox x WHERE x.aggregateid = o.id::text AND x.type = 'OrderCancelled') \
             FROM orders o JOIN saga_instances s ON s.order_id = o.id",
            &[],
        )
        .await?;
    let invoices: BTreeMap<String, Vec<bool>> = connect(&system.invoices_url)
        .await?
        .query(
            "SELECT i.order_id::text, c.id IS NOT NULL FROM invoices i \
             LEFT JOIN credit_notes c ON c.invoice_id = i.id",
            &[],
        )
        .await?
        .iter()
        .fold(BTreeMap::new(), |mut map, row| {
            map.entry(row.get::<_, String>(0))
                .or_insert_with(Vec::new)
                .push(row.get::<_, bool>(1));
            map
        });
    let mut violations = Vec::new();
    let (mut invoiced, mut cancelled) = (0, 0);
    for row in &orders {
        let (id, status, step): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let no_deadline: bool = row.get(3);
        let cancellations: i64 = row.get(4);
        let credited = invoices.get(&id).cloned().unwrap_or_default();
        let open = credited.iter().filter(|c| !**c).count();
        match (status.as_str(), step.as_str(), no_deadline) {
            ("INVOICED", "INVOICED", true) => {
                invoiced += 1;
                if cancellations != 0 || credited.len() != 1 || open != 1 {
                    violations.push(format!("{id} INVOICED: {cancellations} cancellations, invoices (credited?) {credited:?}"));
                }
            }
            ("CANCELLED", "CANCELLED", true) => {
                cancelled += 1;
                if cancellations != 1 || open != 0 || credited.len() > 1 {
                    violations.push(format!("{id} CANCELLED: {cancellations} cancellations, invoices (credited?) {credited:?}"));
                }
            }
            _ => violations.push(format!(
                "{id}: order {status}, saga {step}, waiting for a reply: {}",
                !no_deadline
            )),
        }
    }
    Ok((violations, invoiced, cancelled, orders.len()))
}
