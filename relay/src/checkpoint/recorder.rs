//! Writes acknowledged positions to the checkpoint table from a task of its own, at most about once
//! a second and always the newest: a slow or failing write never holds up relaying, and a failed
//! one is retried with whatever position is newest by then.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Server};
use crate::lsn::Lsn;
use crate::pg::catalog;
use crate::pg::database::Database;
use crate::pg::error_chain;

/// Writes are this far apart at least.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long a stop waits for the last write.
const LAST_WRITE: Duration = Duration::from_secs(3);

/// A position acknowledged to the slot, and the commit time of the last transaction before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    pub position: Lsn,
    pub last_commit: Option<SystemTime>,
}

/// The handle sources report acknowledged positions to.
#[derive(Clone)]
pub struct Recorder {
    acknowledged: Arc<watch::Sender<Option<Acknowledged>>>,
}

impl Recorder {
    /// Call only after `position` reached the slot: the row must never be ahead of it.
    pub fn acknowledged(&self, position: Lsn, last_commit: Option<SystemTime>) {
        self.acknowledged.send_if_modified(|current| {
            let last_commit = last_commit.or(current.and_then(|c| c.last_commit));
            let next = Some(Acknowledged {
                position,
                last_commit,
            });
            let changed = *current != next;
            *current = next;
            changed
        });
    }
}

/// The writing task; [`Writer::stop`] writes the last position before it ends.
pub struct Writer {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Writer {
    pub fn spawn(database: Database, table: String, slot: String) -> (Recorder, Writer) {
        let (sender, receiver) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(database, table, slot, receiver, stop.clone()));
        (
            Recorder {
                acknowledged: Arc::new(sender),
            },
            Writer { task, stop },
        )
    }

    /// Writes what is not written yet, waiting a few seconds at most.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(LAST_WRITE, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("the last checkpoint was not written in time; the next start repairs from the one before, re-sending more");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    database: Database,
    table: String,
    slot: String,
    mut acknowledged: watch::Receiver<Option<Acknowledged>>,
    stop: CancellationToken,
) {
    let mut session: Option<(tokio_postgres::Client, Server)> = None;
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            changed = acknowledged.changed() => match changed {
                Ok(()) => false,
                Err(_) => return,
            },
            _ = stop.cancelled() => true,
        };
        let next = *acknowledged.borrow_and_update();
        if let Some(next) = next {
            match write(&database, &mut session, &table, &slot, next).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(position = %next.position, "the checkpoint is written again");
                    }
                    failing = false;
                }
                Err(error) => {
                    session = None;
                    // Once per episode at warning level, then quietly until it works again.
                    if failing {
                        tracing::debug!(%error, "the checkpoint still cannot be written");
                    } else {
                        tracing::warn!(%error, table, "cannot write the checkpoint; relaying goes on and the write is retried");
                    }
                    failing = true;
                    if !stopping {
                        acknowledged.mark_changed();
                    }
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.cancelled() => {}
        }
    }
}

async fn write(
    database: &Database,
    session: &mut Option<(tokio_postgres::Client, Server)>,
    table: &str,
    slot: &str,
    acknowledged: Acknowledged,
) -> Result<(), String> {
    let connected = match session.take() {
        Some((client, server)) if !client.is_closed() => (client, server),
        _ => {
            let client = catalog::connect(database)
                .await
                .map_err(|e| e.to_string())?;
            // Per connection: a multi-host URL may have reached a newly promoted primary.
            let server = checkpoint::server(&client)
                .await
                .map_err(|e| e.to_string())?;
            (client, server)
        }
    };
    let (client, server) = session.insert(connected);
    checkpoint::write(
        client,
        table,
        slot,
        acknowledged.position,
        acknowledged.last_commit,
        *server,
    )
    .await
    .map_err(|e| error_chain(&e))?;
    tracing::debug!(position = %acknowledged.position, "checkpoint written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_past_no_commit_keeps_the_last_commit_time() {
        let (sender, receiver) = watch::channel(None);
        let recorder = Recorder {
            acknowledged: Arc::new(sender),
        };
        let committed = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        recorder.acknowledged(Lsn(10), Some(committed));
        // A keepalive's position: no transaction relayed since.
        recorder.acknowledged(Lsn(20), None);
        assert_eq!(
            *receiver.borrow(),
            Some(Acknowledged {
                position: Lsn(20),
                last_commit: Some(committed)
            })
        );
    }
}
