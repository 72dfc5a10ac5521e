//! The saga part of the demo, after the invoice exists: the order-service takes `InvoiceIssued` (the
//! second relay publishes it from the invoices database) and the order becomes INVOICED; cancelling it
//! voids the invoice first and then cancels it; and an order over the customer's credit limit is
//! rejected and cancelled. Each step is printed with the saga's history and correlation id.

use anyhow::{ensure, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::api::{Api, CORRELATION_ID};
use crate::{text, INVOICE_TIMEOUT, POLL};

/// The invoice-service's credit limit in the demo; the rejected order is over it.
pub const CREDIT_LIMIT: &str = "100.00";

/// The orders as `GET /orders/{id}` showed them at the end of each path.
#[derive(Debug)]
pub struct SagaOutcome {
    /// The demo's order once INVOICED.
    pub invoiced: Value,
    /// The same order after `POST /orders/{id}/cancel`, once its invoice was voided.
    pub cancelled: Value,
    /// An order over the credit limit, once rejected.
    pub rejected: Value,
    /// Sent with the rejected order's requests.
    pub rejected_correlation_id: String,
}

pub async fn run(api: &Api, base: &str, order_id: &str) -> Result<SagaOutcome> {
    println!("\nThe second relay publishes InvoiceIssued from the invoices database; the order-service takes it:");
    let invoiced = wait_for_status(api, base, order_id, "INVOICED").await?;
    print_saga(&invoiced);

    println!("\nThe customer cancels the invoiced order: the saga voids the invoice first (202), then cancels:");
    let cancel = api
        .call(
            Method::POST,
            &format!("{base}/orders/{order_id}/cancel"),
            None,
            None,
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        cancel.status == StatusCode::ACCEPTED,
        "POST /orders/{order_id}/cancel answered {}",
        cancel.status
    );
    let cancelled = wait_for_status(api, base, order_id, "CANCELLED").await?;
    print_saga(&cancelled);

    let correlation_id = format!("demo-rejected-{}", uuid::Uuid::new_v4().simple());
    println!("\nAn order of 200.00 USD for a customer with a credit limit of {CREDIT_LIMIT} USD is rejected:");
    let request = json!({
        "customerId": uuid::Uuid::new_v4(),
        "lines": [{"productId": uuid::Uuid::new_v4(), "quantity": 20, "unitPrice": "10.00", "currency": "USD"}]
    });
    let created = api
        .call(
            Method::POST,
            &format!("{base}/orders"),
            Some(&correlation_id),
            Some(&request),
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        created.status == StatusCode::CREATED,
        "POST /orders answered {}",
        created.status
    );
    let rejected_id = text(&created.body["id"], "the order's id")?;
    let confirmed = api
        .send(
            Method::POST,
            &format!("{base}/orders/{rejected_id}/confirm"),
            Some(&correlation_id),
            None,
        )
        .await?;
    ensure!(
        confirmed.status == StatusCode::OK,
        "POST /orders/{rejected_id}/confirm answered {}",
        confirmed.status
    );
    let rejected = wait_for_status(api, base, &rejected_id, "CANCELLED").await?;
    print_saga(&rejected);
    println!("  correlation  {correlation_id}  sent with both requests of this order");
    Ok(SagaOutcome {
        invoiced,
        cancelled,
        rejected,
        rejected_correlation_id: correlation_id,
    })
}

/// Polls `GET /orders/{id}` until the order has `status`, then shows that call and returns the order.
pub(crate) async fn wait_for_status(
    api: &Api,
    base: &str,
    order_id: &str,
    status: &str,
) -> Result<Value> {
    let url = format!("{base}/orders/{order_id}");
    let started = Instant::now();
    loop {
        let reply = api.send(Method::GET, &url, None, None).await?;
        if reply.body["status"] == status {
            return Ok(reply.body);
        }
        ensure!(
            started.elapsed() < INVOICE_TIMEOUT,
            "order {order_id} not {status} within {INVOICE_TIMEOUT:?} (last answer: {} {})",
            reply.status,
            reply.body
        );
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) fn print_saga(order: &Value) {
    println!(
        "  order {}  {}  saga {} {}",
        order["id"].as_str().unwrap_or("?"),
        order["status"].as_str().unwrap_or("?"),
        order["saga"]["step"].as_str().unwrap_or("?"),
        order["saga"]["status"].as_str().unwrap_or("?"),
    );
    for entry in order["saga"]["history"].as_array().into_iter().flatten() {
        println!(
            "    {:<16} {:<9} -> {}",
            entry["input"].as_str().unwrap_or("?"),
            entry["outcome"].as_str().unwrap_or("?"),
            entry["to"].as_str().unwrap_or("?"),
        );
    }
}
