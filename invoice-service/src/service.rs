//! The whole service: migrate the database, then serve HTTP and consume from the configured broker
//! until shut down. A broker failure drops the consumer and connects again with backoff; the HTTP API
//! keeps serving meanwhile.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Messaging, Mode};
use crate::store::{Store, StoreError};
use crate::{http, worker};
use brokers::{kafka, rabbitmq, redis, Consumer, ConsumerError};

const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs until `shutdown` is cancelled. `listener` is bound by the caller, so that tests can use a
/// free port and the binary can report a bind error against `addr`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let store = Store::connect(&config.database_url, config.database_pool_size)
        .await?
        .with_credit_limit(config.credit_limit);
    let consumer = tokio::spawn(consume(config.messaging, store.clone(), shutdown.clone()));
    let served = http::serve(listener, store, shutdown.clone()).await;
    // The HTTP server only stops early on an error; the consumer must not outlive it.
    shutdown.cancel();
    if let Err(error) = consumer.await {
        tracing::error!(%error, "the consumer task failed");
    }
    Ok(served?)
}

/// Consumes until shut down, reconnecting after broker failures.
async fn consume(messaging: Messaging, store: Store, shutdown: CancellationToken) {
    let mut delay = FIRST_RECONNECT;
    loop {
        let started = Instant::now();
        let result = match messaging.mode {
            Mode::Kafka => session(kafka::connect(&messaging), &messaging, &store, &shutdown).await,
            Mode::Rabbitmq => {
                session(rabbitmq::connect(&messaging), &messaging, &store, &shutdown).await
            }
            Mode::Redis => session(redis::connect(&messaging), &messaging, &store, &shutdown).await,
        };
        let Err(error) = result else {
            return;
        };
        // A session that ran a while was healthy: start the backoff over.
        if started.elapsed() > MAX_RECONNECT {
            delay = FIRST_RECONNECT;
        }
        tracing::error!(%error, retry_in = ?delay, "consumer failed; connecting again");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RECONNECT);
    }
}

async fn session<C: Consumer>(
    connect: impl Future<Output = Result<C, ConsumerError>>,
    messaging: &Messaging,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<(), ConsumerError> {
    let mut consumer = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        consumer = connect => consumer?,
    };
    tracing::info!(
        mode = ?messaging.mode,
        destination = messaging.destination,
        dead_letters = messaging.dead_letter_destination,
        "consuming"
    );
    worker::consume(&mut consumer, store, shutdown).await
}
