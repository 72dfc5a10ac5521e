//! The correlation id without a caller's: an order placed, confirmed and cancelled by requests that
//! carry no `X-Correlation-Id`, on a system of its own, for the test that greps that one id across
//! both services' logs (`scripts/demo.sh` does not run it).

use anyhow::{ensure, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use crate::api::{Api, CORRELATION_ID};
use crate::saga::wait_for_status;
use crate::stack::Stack;
use crate::{start_system, text, Binaries, BrokerKind, INVOICE_TIMEOUT, POLL};

/// What the uncorrelated requests were answered, and what both services logged.
#[derive(Debug)]
pub struct CorrelationOutcome {
    /// The id `POST /orders` answered with: the order's own.
    pub order_correlation_id: String,
    /// The ids the confirmation and the cancellation answered with.
    pub confirm_correlation_id: String,
    pub cancel_correlation_id: String,
    pub order_service_log: String,
    pub invoice_service_log: String,
}

/// Runs the invoiced-then-cancelled saga with `broker` without correlation headers; everything it
/// started is stopped when it returns.
pub async fn run_uncorrelated(
    broker: BrokerKind,
    binaries: &Binaries,
) -> Result<CorrelationOutcome> {
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

async fn flow(
    stack: &mut Stack,
    kind: BrokerKind,
    binaries: &Binaries,
) -> Result<CorrelationOutcome> {
    let system = start_system(stack, kind, binaries, None).await?;
    let api = Api::default();
    let base = format!("http://{}", system.order_service);
    let request = json!({
        "customerId": uuid::Uuid::new_v4(),
        "lines": [{"productId": uuid::Uuid::new_v4(), "quantity": 1, "unitPrice": "10.00", "currency": "USD"}]
    });
    let created = api
        .call(
            Method::POST,
            &format!("{base}/orders"),
            None,
            Some(&request),
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        created.status == StatusCode::CREATED,
        "POST /orders answered {}",
        created.status
    );
    let order_id = text(&created.body["id"], "the order's id")?;
    let answered = |reply: &crate::api::Reply| {
        reply
            .header(CORRELATION_ID)
            .map(str::to_owned)
            .context("an answer without X-Correlation-Id")
    };
    let order_correlation_id = answered(&created)?;
    let confirmed = api
        .call(
            Method::POST,
            &format!("{base}/orders/{order_id}/confirm"),
            None,
            None,
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        confirmed.status == StatusCode::OK,
        "confirm answered {}",
        confirmed.status
    );
    wait_for_status(&api, &base, &order_id, "INVOICED").await?;
    let cancelled = api
        .call(
            Method::POST,
            &format!("{base}/orders/{order_id}/cancel"),
            None,
            None,
            &[CORRELATION_ID],
        )
        .await?;
    ensure!(
        cancelled.status == StatusCode::ACCEPTED,
        "cancel answered {}",
        cancelled.status
    );
    wait_for_status(&api, &base, &order_id, "CANCELLED").await?;
    // The order-service logs a reply as taken just after the commit that GET /orders/{id} reads.
    let started = Instant::now();
    while stack.log("order-service").matches("reply taken").count() < 2 {
        ensure!(
            started.elapsed() < INVOICE_TIMEOUT,
            "the order-service did not log both replies as taken"
        );
        tokio::time::sleep(POLL).await;
    }
    Ok(CorrelationOutcome {
        order_correlation_id,
        confirm_correlation_id: answered(&confirmed)?,
        cancel_correlation_id: answered(&cancelled)?,
        order_service_log: stack.log("order-service"),
        invoice_service_log: stack.log("invoice-service"),
    })
}
