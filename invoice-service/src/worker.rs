//! The consume loop: receive, decide, record, and only then acknowledge or dead-letter.
//!
//! Messages are handled one at a time, in the order the broker delivers them. A database error is
//! retried with backoff on the same message rather than skipping it, since skipping would lose an
//! invoice; the broker keeps the message unacknowledged meanwhile.

use std::time::Duration;

use contracts::CORRELATION_HEADER;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::handler::{decide, Decision};
use crate::store::{Recorded, Store, StoreError};
use brokers::{Consumer, ConsumerError, Received};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Runs until `shutdown` is cancelled (then returns `Ok`) or the broker fails. A message in progress
/// at shutdown is left unacknowledged, so the broker delivers it again.
pub async fn consume<C: Consumer>(
    consumer: &mut C,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<(), ConsumerError> {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            received = consumer.receive() => received?,
        };
        // Every log line about the message, retries included, names the event and its request.
        let span = match &received.envelope {
            Ok(envelope) => tracing::info_span!(
                "event",
                id = envelope.header("id"),
                r#type = envelope.header("type"),
                correlation_id = envelope.header(CORRELATION_HEADER),
            ),
            Err(_) => tracing::info_span!("event"),
        };
        if !handle(consumer, store, shutdown, received)
            .instrument(span)
            .await?
        {
            return Ok(());
        }
    }
}

/// Handles one message; `false` if shut down before it was done.
async fn handle<C: Consumer>(
    consumer: &mut C,
    store: &Store,
    shutdown: &CancellationToken,
    received: Received<C::Message>,
) -> Result<bool, ConsumerError> {
    let decision = match &received.envelope {
        Ok(envelope) => decide(envelope),
        Err(rejection) => Decision::Reject(rejection.clone()),
    };
    match decision {
        Decision::Ignore { event_type } => {
            tracing::debug!(
                event_type,
                "not an event the invoice-service acts on; acknowledged"
            );
            consumer.ack(received.message).await?;
        }
        Decision::Reject(rejection) => {
            tracing::warn!(
                reason = rejection.code,
                detail = rejection.detail,
                "dead-lettering"
            );
            consumer.dead_letter(received.message, &rejection).await?;
        }
        Decision::Invoice { event, draft } => {
            let Some(recorded) = retry(shutdown, || store.record(&event, &draft)).await else {
                return Ok(false);
            };
            log(&recorded);
            consumer.ack(received.message).await?;
        }
        Decision::Void { event, order_id } => {
            let Some(voided) = retry(shutdown, || store.void(&event, order_id)).await else {
                return Ok(false);
            };
            tracing::info!(%order_id, ?voided, "cancellation request handled");
            consumer.ack(received.message).await?;
        }
    }
    Ok(true)
}

/// Runs `write`, retrying database errors until it succeeds; `None` if shut down first.
async fn retry<T, F, Fut>(shutdown: &CancellationToken, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = FIRST_RETRY;
    loop {
        match write().await {
            Ok(done) => return Some(done),
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "cannot write to the database");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

fn log(recorded: &Recorded) {
    match recorded {
        Recorded::Invoiced(invoice) => tracing::info!(
            invoice = invoice.number,
            order_id = %invoice.order_id,
            "invoiced"
        ),
        Recorded::AlreadyProcessed => {
            tracing::info!("event already processed; redelivery ignored")
        }
        Recorded::OrderAlreadyInvoiced { invoice_id } => tracing::warn!(
            %invoice_id,
            "order already invoiced by another event; ignored"
        ),
        Recorded::Rejected(refusal) => tracing::info!(
            reason = refusal.reason,
            detail = refusal.detail,
            "not invoiced; rejection replied"
        ),
    }
}
