//! The consumer of the invoice-service's replies: reads `outbox.event.invoice` from the configured
//! broker, gives each reply to its saga once (`OrderService::take_reply`) and acknowledges it only after
//! that commit; what is no reply is acknowledged, what cannot be taken is dead-lettered with its reason.
//! A broker failure drops the connection and connects again with backoff; a database error is retried
//! on the same message, which the broker keeps unacknowledged meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use brokers::{kafka, rabbitmq, redis, Consumer, ConsumerError, Messaging, Mode, Rejection};
use contracts::CORRELATION_HEADER;
use pgconn::report;
use tracing::Instrument;

use crate::replies::{self, Reply};
use crate::service::{OrderService, ServiceError};

const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Runs until the task is dropped; a message in progress then stays unacknowledged and is delivered
/// again, to find its reply already processed.
pub async fn run(messaging: Messaging, service: OrderService) {
    let mut delay = FIRST_RECONNECT;
    loop {
        let started = Instant::now();
        let Err(error) = match messaging.mode {
            Mode::Kafka => session(kafka::connect(&messaging), &messaging, &service).await,
            Mode::Rabbitmq => session(rabbitmq::connect(&messaging), &messaging, &service).await,
            Mode::Redis => session(redis::connect(&messaging), &messaging, &service).await,
        };
        // A session that ran a while was healthy: start the backoff over.
        if started.elapsed() > MAX_RECONNECT {
            delay = FIRST_RECONNECT;
        }
        tracing::error!(%error, retry_in = ?delay, "reply consumer failed; connecting again");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT);
    }
}

async fn session<C: Consumer>(
    connect: impl Future<Output = Result<C, ConsumerError>>,
    messaging: &Messaging,
    service: &OrderService,
) -> Result<Infallible, ConsumerError> {
    let mut consumer = connect.await?;
    tracing::info!(
        mode = ?messaging.mode,
        destination = messaging.destination,
        dead_letters = messaging.dead_letter_destination,
        "consuming replies"
    );
    loop {
        let received = consumer.receive().await?;
        let envelope = match received.envelope {
            Ok(envelope) => envelope,
            Err(rejection) => {
                tracing::warn!(
                    reason = rejection.code,
                    detail = rejection.detail,
                    "dead-lettering"
                );
                consumer.dead_letter(received.message, &rejection).await?;
                continue;
            }
        };
        let span = tracing::info_span!(
            "reply",
            id = envelope.header("id"),
            r#type = envelope.header("type"),
            correlation_id = envelope.header(CORRELATION_HEADER),
        );
        let outcome = async {
            match replies::decode(&envelope.headers, &envelope.payload) {
                Ok(None) => Ok(()),
                Ok(Some(reply)) => take(service, &reply).await,
                Err(error) => Err(Rejection::new(error.reason(), error.to_string())),
            }
        }
        .instrument(span.clone())
        .await;
        match outcome {
            Ok(()) => consumer.ack(received.message).await?,
            Err(rejection) => {
                span.in_scope(|| {
                    tracing::warn!(
                        reason = rejection.code,
                        detail = rejection.detail,
                        "dead-lettering"
                    );
                });
                consumer.dead_letter(received.message, &rejection).await?;
            }
        }
    }
}

/// Takes `reply`, retrying what may pass (the database, lost races) until it does; a reply no saga can
/// take is a rejection.
async fn take(service: &OrderService, reply: &Reply) -> Result<(), Rejection> {
    let mut delay = FIRST_RETRY;
    loop {
        match service.take_reply(reply).await {
            Ok(Some(taken)) => {
                tracing::info!(order_id = %reply.order_id, outcome = taken.outcome.as_str(), "reply taken");
                return Ok(());
            }
            Ok(None) => {
                tracing::info!(order_id = %reply.order_id, "reply already processed; redelivery ignored");
                return Ok(());
            }
            Err(error @ (ServiceError::NotFound(_) | ServiceError::NoSaga(_))) => {
                return Err(Rejection::new("unknown-saga", error.to_string()));
            }
            Err(ServiceError::Rejected(rule)) => {
                return Err(Rejection::new("not-applicable", rule.to_string()));
            }
            Err(error @ (ServiceError::Contended(_) | ServiceError::Store(_))) => {
                tracing::warn!(error = %report::chain(&error), retry_in = ?delay, "cannot take the reply");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}
