//! The connection pool every request takes its database connection from.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StoreError;

pub use deadpool_postgres::Pool;

/// A pool of up to `size` connections to `url` (a libpq-style URL or key=value string). Connections are
/// opened on demand, so this does not touch the server.
pub fn connect(url: &str, size: usize) -> Result<Pool, StoreError> {
    let config = tokio_postgres::Config::from_str(url).map_err(StoreError::Url)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        // A broken connection shows as an error on its next query; checking each one out with a
        // round trip first would cost every request that round trip.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(size).build()?)
}
