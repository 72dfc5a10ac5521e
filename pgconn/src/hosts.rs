//! The servers a connection string names, in the order libpq tries them: each host with its port
//! (one port for all hosts, or one per host) and its `hostaddr`, then each address its name
//! resolves to.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use tokio_postgres::config::Host;

/// One host of the string with its port, before name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: Host,
    pub port: u16,
    /// libpq's `hostaddr`: connect here, and keep `host` for TLS.
    pub hostaddr: Option<IpAddr>,
}

/// One place to open a session: a resolved address of a TCP host, or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub server: Server,
    /// `None` for a Unix socket.
    pub addr: Option<IpAddr>,
}

/// The servers of `config` in order; an error when the ports do not pair with the hosts.
pub(crate) fn servers(config: &tokio_postgres::Config) -> Result<Vec<Server>, String> {
    let (hosts, hostaddrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    let count = hosts.len().max(hostaddrs.len());
    if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
        return Err(format!(
            "{} hosts and {} hostaddrs: give one hostaddr per host",
            hosts.len(),
            hostaddrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(format!(
            "{} ports for {count} hosts: give one port for all hosts or one per host",
            ports.len()
        ));
    }
    Ok((0..count)
        .map(|i| {
            let hostaddr = hostaddrs.get(i).copied();
            Server {
                host: hosts.get(i).cloned().unwrap_or_else(|| {
                    Host::Tcp(hostaddr.map(|a| a.to_string()).unwrap_or_default())
                }),
                port: ports.get(i).or(ports.first()).copied().unwrap_or(5432),
                hostaddr,
            }
        })
        .collect())
}

impl Server {
    /// Every endpoint of this server: its `hostaddr`, or each address its name resolves to.
    pub(crate) async fn endpoints(&self) -> io::Result<Vec<Endpoint>> {
        let addrs = match (&self.host, self.hostaddr) {
            (Host::Unix(_), _) => vec![None],
            (_, Some(addr)) => vec![Some(addr)],
            (Host::Tcp(name), None) => tokio::net::lookup_host((name.as_str(), self.port))
                .await?
                .map(|a| Some(a.ip()))
                .collect(),
        };
        Ok(addrs
            .into_iter()
            .map(|addr| Endpoint {
                server: self.clone(),
                addr,
            })
            .collect())
    }
}

impl Endpoint {
    /// The name TLS checks the certificate against (SNI, `verify-full`); `None` for a Unix socket.
    pub fn server_name(&self) -> Option<&str> {
        match &self.server.host {
            Host::Tcp(name) => Some(name),
            Host::Unix(_) => None,
        }
    }

    /// The socket file of a Unix-socket endpoint, `None` for TCP.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.server.host {
            Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.server.port))),
            Host::Tcp(_) => None,
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(name) if name.contains(':') => write!(f, "[{name}]:{}", self.port),
            Host::Tcp(name) => write!(f, "{name}:{}", self.port),
            Host::Unix(dir) => write!(
                f,
                "{}",
                dir.join(format!(".s.PGSQL.{}", self.port)).display()
            ),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.server)?;
        match (self.addr, &self.server.host) {
            (Some(addr), Host::Tcp(name)) if addr.to_string() != *name => write!(f, " ({addr})"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn servers_of(text: &str) -> Result<Vec<String>, String> {
        servers(&tokio_postgres::Config::from_str(text).unwrap())
            .map(|all| all.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn pairs_ports_with_hosts_as_libpq_does() {
        assert_eq!(
            servers_of("postgres://u@h1:5433,h2/db").unwrap(),
            ["h1:5433", "h2:5432"]
        );
        assert_eq!(
            servers_of("host=h1,h2,h3 port=5433 dbname=db").unwrap(),
            ["h1:5433", "h2:5433", "h3:5433"]
        );
        assert_eq!(
            servers_of("host=h1,/run/pg port=5433,5434").unwrap(),
            ["h1:5433", "/run/pg/.s.PGSQL.5434"]
        );
        assert_eq!(
            servers_of("host=::1,h2 port=1,2").unwrap(),
            ["[::1]:1", "h2:2"]
        );
        let err = servers_of("host=h1,h2,h3 port=1,2").unwrap_err();
        assert!(err.contains("3 hosts"), "{err}");
        assert_eq!(servers_of("dbname=db").unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_hostaddr_is_dialled_and_the_name_kept_for_tls() {
        let config = tokio_postgres::Config::from_str(
            "host=db.example,localhost hostaddr=10.1.2.3,127.0.0.1 port=5432",
        )
        .unwrap();
        let all = servers(&config).unwrap();
        let endpoints = all[0].endpoints().await.unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].server_name(), Some("db.example"));
        assert_eq!(endpoints[0].to_string(), "db.example:5432 (10.1.2.3)");
        let local = all[1].endpoints().await.unwrap();
        assert_eq!(local[0].addr, Some("127.0.0.1".parse().unwrap()));
    }
}
