//! Watches the replication slot from the outside: how much WAL it holds back, and whether it is
//! about to cost the primary its disk. Runs beside the pipeline on its own connection, so that it
//! keeps reporting while the pipeline is down.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::pg::catalog;
use crate::pg::database::Database;

const INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(database: Database, slot: String, warning_bytes: u64, metrics: Arc<Metrics>) {
    let mut ticker = tokio::time::interval(INTERVAL);
    let mut client = None;
    loop {
        ticker.tick().await;
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = catalog::connect(&database).await.ok();
        }
        let Some(connected) = &client else { continue };
        match catalog::slot_lag_bytes(connected, &slot).await {
            Ok(Some(bytes)) => {
                metrics.slot_lag_bytes.set(bytes);
                if warning_bytes > 0 && bytes as u64 >= warning_bytes {
                    tracing::warn!(
                        slot,
                        lag_bytes = bytes,
                        threshold = warning_bytes,
                        "the replication slot holds back more WAL than slot_lag_warning_bytes; the primary keeps it on disk until the relay catches up (see max_slot_wal_keep_size)"
                    );
                }
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot read the slot's lag"),
        }
    }
}
