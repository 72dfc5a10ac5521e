//! deadpool-postgres pools on the same connection strings, for the demo services.

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::NoTls;

use crate::database::Database;

impl Database {
    /// The manager a `deadpool_postgres::Pool` opens its sessions with, each encrypted and checked
    /// as `sslmode` says.
    pub fn deadpool_manager(&self, config: ManagerConfig) -> Manager {
        match self.rustls_connect() {
            Some(tls) => Manager::from_config(self.config.clone(), tls, config),
            None => Manager::from_config(self.config.clone(), NoTls, config),
        }
    }
}
