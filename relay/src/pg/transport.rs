//! The byte stream under a replication session: TCP, TLS over TCP, or a Unix socket. The protocol
//! code above it only needs `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::pg::database::{Database, Endpoint};

pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl Transport {
    /// Connects to one endpoint of the connection string and negotiates TLS on TCP as `sslmode`
    /// asks, checking the certificate against that endpoint's host name (Unix sockets are local
    /// and never encrypted, as with libpq).
    pub async fn connect(endpoint: &Endpoint, database: &Database) -> io::Result<Transport> {
        match (
            endpoint.addr,
            endpoint.server_name(),
            endpoint.socket_path(),
        ) {
            (Some(addr), Some(name), _) => {
                let stream = TcpStream::connect((addr, endpoint.server.port)).await?;
                stream.set_nodelay(true)?;
                negotiate_tls(stream, name, database).await
            }
            (_, _, Some(path)) => UnixStream::connect(path).await.map(Transport::Unix),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{endpoint} is neither a TCP address nor a Unix socket"),
            )),
        }
    }
}

async fn negotiate_tls(
    mut stream: TcpStream,
    host: &str,
    database: &Database,
) -> io::Result<Transport> {
    let Some(tls) = &database.tls else {
        return Ok(Transport::Tcp(stream));
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await?;
    match stream.read_u8().await? {
        b'S' => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("host {host}: {e}"))
            })?;
            let stream = TlsConnector::from(tls.clone())
                .connect(name, stream)
                .await?;
            Ok(Transport::Tls(Box::new(stream)))
        }
        b'N' if !database.ssl_mode.requires_tls() => Ok(Transport::Tcp(stream)),
        b'N' => Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "the server does not accept TLS connections, and sslmode requires TLS",
        )),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer {other:#x} to the TLS request"),
        )),
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
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
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
