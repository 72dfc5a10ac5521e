//! The saga's timeout path, which the demo's test runs on a system of its own with a 3 s deadline
//! (`scripts/demo.sh` keeps the default and does not run it): the invoice-service is down when the
//! order is confirmed, the deadline passes and the order is cancelled; started again, the
//! invoice-service invoices the order late, and the saga voids that invoice instead of applying it.

use anyhow::{ensure, Result};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::api::Api;
use crate::saga::{print_saga, wait_for_status};
use crate::stack::Stack;
use crate::{
    connect, invoice_service_command, loopback_addr, order_and_confirm, start_system, text,
    Binaries, BrokerKind, INVOICE_TIMEOUT, POLL,
};

/// Short, so that the test waits little; the success path is not run on this system.
const SAGA_TIMEOUT_SECS: u32 = 3;

/// What the timeout path ended with.
#[derive(Debug)]
pub struct TimeoutOutcome {
    /// The order as `GET /orders/{id}` showed it once the late invoice was voided.
    pub order: Value,
    /// Invoices of the order and credit notes voiding them, in the invoices database.
    pub invoices: i64,
    pub credit_notes: i64,
}

/// Runs the timeout path with `broker`; everything it started is stopped when it returns.
pub async fn run_timeout(broker: BrokerKind, binaries: &Binaries) -> Result<TimeoutOutcome> {
    let mut stack = Stack::default();
    match flow(&mut stack, broker, binaries).await {
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

async fn flow(stack: &mut Stack, kind: BrokerKind, binaries: &Binaries) -> Result<TimeoutOutcome> {
    let system = start_system(stack, kind, binaries, Some(SAGA_TIMEOUT_SECS)).await?;
    println!("\nThe invoice-service goes down, and an order is confirmed:");
    stack.stop_service("invoice-service")?;
    let api = Api::default();
    let correlation_id = format!("demo-timeout-{}", uuid::Uuid::new_v4().simple());
    let order = order_and_confirm(&api, &system, &correlation_id).await?;
    let order_id = text(&order["id"], "the order's id")?;
    let base = format!("http://{}", system.order_service);

    println!("\nNo reply within {SAGA_TIMEOUT_SECS} s: the saga cancels the order");
    print_saga(&wait_for_status(&api, &base, &order_id, "CANCELLED").await?);

    println!("\nThe invoice-service comes back, invoices the order late, and the saga has that invoice voided:");
    let command = invoice_service_command(
        binaries,
        loopback_addr()?,
        &system.invoices_url,
        kind,
        &system.invoice_broker,
    );
    stack.start("invoice-service", command, "consuming").await?;
    let url = format!("{base}/orders/{order_id}");
    let started = Instant::now();
    let order = loop {
        let reply = api.send(Method::GET, &url, None, None).await?;
        let voided = reply.body["saga"]["history"]
            .as_array()
            .is_some_and(|history| history.iter().any(|e| e["input"] == "InvoiceVoided"));
        if voided && reply.body["saga"]["step"] == "CANCELLED" {
            break reply.body;
        }
        ensure!(
            started.elapsed() < INVOICE_TIMEOUT,
            "the late invoice of order {order_id} was not voided within {INVOICE_TIMEOUT:?}: {}",
            reply.body
        );
        tokio::time::sleep(POLL).await;
    };
    print_saga(&order);
    let counts = connect(&system.invoices_url)
        .await?
        .query_one(
            "SELECT count(DISTINCT i.id), count(c.id) FROM invoices i \
             LEFT JOIN credit_notes c ON c.invoice_id = i.id WHERE i.order_id::text = $1",
            &[&order_id],
        )
        .await?;
    Ok(TimeoutOutcome {
        order,
        invoices: counts.get(0),
        credit_notes: counts.get(1),
    })
}
