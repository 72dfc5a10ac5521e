//! The connection pool every request takes its database connection from.

use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use pgconn::Database;

use super::StoreError;

pub use deadpool_postgres::Pool;

/// A pool of up to `size` connections to `url` (a libpq-style URL or key=value string, with libpq's
/// `sslmode`, `sslrootcert`, `sslcert` and `sslkey`). Connections are opened on demand, so this
/// does not touch the server; the certificate files are read here, though.
pub fn connect(url: &str, size: usize) -> Result<Pool, StoreError> {
    let database = Database::parse(url)?.with_default_application_name("order-service");
    let manager = database.deadpool_manager(
        // A broken connection shows as an error on its next query; checking each one out with a
        // round trip first would cost every request that round trip.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(size).build()?)
}
