//! The relay's ordinary sessions: the connection string and TLS come from `pgconn`; here is the
//! session that listens for notifications, which only polling mode needs.

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection};

pub use pgconn::{Database, DatabaseUrlError};

/// Opens an ordinary session whose `LISTEN` notifications wake the returned receiver. Wake-ups
/// coalesce: one pending is as good as many. The receiver closes with the session.
pub async fn connect_listening(
    database: &Database,
) -> Result<(Client, mpsc::Receiver<()>), tokio_postgres::Error> {
    let (wake, woken) = mpsc::channel(1);
    let client = match database.rustls_connect() {
        Some(tls) => {
            let (client, connection) = database.config.connect(tls).await?;
            tokio::spawn(drive_listening(connection, wake));
            client
        }
        None => {
            let (client, connection) = database.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(drive_listening(connection, wake));
            client
        }
    };
    Ok((client, woken))
}

async fn drive_listening<S, T>(mut connection: Connection<S, T>, wake: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = std::pin::pin!(futures::stream::poll_fn(
        move |cx| connection.poll_message(cx)
    ));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(_)) => {
                let _ = wake.try_send(());
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "listening connection closed");
                return;
            }
        }
    }
}
