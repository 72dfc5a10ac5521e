//! Polling until a condition holds, for servers and brokers that give no readiness notification.

use std::future::Future;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

const INTERVAL: Duration = Duration::from_millis(20);

/// Blocks until `ready` returns true; fails naming `what` once `timeout` has passed.
pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, what, || Ok(ready()))
}

/// Like [`wait_until`] for async checks, e.g. "the consumer has seen 100 messages".
pub async fn poll_until<F, Fut>(timeout: Duration, what: &str, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !ready().await {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(())
}

/// Like [`wait_until`], but an error from `ready` (e.g. "the server exited") ends the wait at once.
pub(crate) fn wait_for(
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready()? {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(INTERVAL);
    }
    Ok(())
}
