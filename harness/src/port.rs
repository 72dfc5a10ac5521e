//! Loopback ports: picking a free one for a new server and telling when a server accepts connections.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

/// A port that was free a moment ago. Another process could still take it before the server binds it;
/// the kernel hands out ephemeral ports in a way that makes that rare enough for tests.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A free port that is none of `taken`: two binds to port 0 in a row may both get the same port.
pub(crate) fn free_port_other_than(taken: &[u16]) -> Result<u16> {
    loop {
        let candidate = free_port()?;
        if !taken.contains(&candidate) {
            return Ok(candidate);
        }
    }
}

pub(crate) fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
