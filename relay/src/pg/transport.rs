//! The byte stream under a PostgreSQL session: TCP or a Unix socket.
//!
//! Kept as one enum so that a TLS variant slots in beside the others without touching the protocol code,
//! which only needs `AsyncRead + AsyncWrite`.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;

pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Transport {
    /// Connects to the first reachable host of the configuration, as libpq does.
    pub async fn connect(config: &tokio_postgres::Config) -> io::Result<Transport> {
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let hosts = config.get_hosts();
        if hosts.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the database URL names no host",
            ));
        }
        let mut last_error = None;
        for (i, host) in hosts.iter().enumerate() {
            let port = match config.get_ports() {
                [] => 5432,
                [only] => *only,
                ports => ports.get(i).copied().unwrap_or(5432),
            };
            let attempt = async {
                match host {
                    Host::Tcp(name) => {
                        let stream = TcpStream::connect((name.as_str(), port)).await?;
                        stream.set_nodelay(true)?;
                        Ok(Transport::Tcp(stream))
                    }
                    Host::Unix(dir) => UnixStream::connect(socket_path(dir, port))
                        .await
                        .map(Transport::Unix),
                }
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(transport)) => return Ok(transport),
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
                }
            }
        }
        Err(last_error.expect("at least one host was tried"))
    }
}

fn socket_path(dir: &Path, port: u16) -> std::path::PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
