//! Keeps the relay running: connects the sink and the source, runs pipeline sessions, and restarts
//! them with backoff after transient failures until shut down or a fatal error.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{Config, ConfigError};
use crate::lsn::Lsn;
use crate::pipeline::{self, PipelineError};
use crate::router::Router;
use crate::sink;
use crate::source::logical::LogicalSource;

/// A session that ran this long was healthy; the next failure starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Relays until `shutdown` is cancelled (then drains and acknowledges) or a fatal error.
pub async fn run(config: &Config, shutdown: CancellationToken) -> Result<(), RelayError> {
    let router = Router::new(&config.destination).map_err(|e| ConfigError::Invalid {
        key: "destination",
        reason: e.to_string(),
    })?;
    let settings = config.logical()?;
    let mut backoff = Backoff::new(config.backoff.clone());
    loop {
        let started = Instant::now();
        let mut acked = Lsn::ZERO;
        let error = match session(config, &settings, &router, &mut acked, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => e,
        };
        if started.elapsed() >= HEALTHY_SESSION {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(error = %error, acked = %acked, retry_in = ?delay, "relay session failed; resuming from the slot after a pause");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

async fn session(
    config: &Config,
    settings: &crate::source::logical::LogicalSettings,
    router: &Router,
    acked: &mut Lsn,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    let mut sink = sink::connect(config).await?;
    let (mut source, confirmed) = LogicalSource::connect(settings).await?;
    *acked = confirmed;
    match pipeline::run(
        &mut source,
        sink.as_mut(),
        router,
        &config.pipeline,
        acked,
        shutdown,
    )
    .await
    {
        Ok(()) => {
            source.finish(*acked).await?;
            tracing::info!(acked = %acked, "drained and acknowledged; stopped");
            Ok(())
        }
        Err(error) => {
            // The source may still be healthy (a broker failed): report how far we got before leaving.
            if !matches!(error, PipelineError::Source(_)) {
                let _ = source.send_status(*acked, false).await;
            }
            Err(error)
        }
    }
}
