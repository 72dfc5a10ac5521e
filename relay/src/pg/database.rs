//! The relay's ordinary sessions: the connection string, TLS and the choice among several hosts
//! come from `pgconn`; here is the session that listens for notifications, which only polling
//! mode needs.

use futures::StreamExt;
use pgconn::Session;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection};

pub use pgconn::{ConnectError, Database, DatabaseUrlError, Endpoint};

/// A session whose notifications wake a receiver.
struct Listening {
    client: Client,
    woken: mpsc::Receiver<()>,
}

impl Session for Listening {
    type Error = tokio_postgres::Error;

    async fn query_value(&mut self, query: &'static str) -> Result<Option<String>, Self::Error> {
        self.client.query_value(query).await
    }
}

/// Opens an ordinary session on the first acceptable server whose `LISTEN` notifications wake the
/// returned receiver. Wake-ups coalesce: one pending is as good as many. The receiver closes with
/// the session.
pub async fn connect_listening(
    database: &Database,
) -> Result<(Client, mpsc::Receiver<()>), ConnectError<tokio_postgres::Error>> {
    let listening = database
        .connect_with(|endpoint| async move {
            let config = database.endpoint_config(&endpoint);
            let (wake, woken) = mpsc::channel(1);
            let client = match database.rustls_connect() {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(drive_listening(connection, wake));
                    client
                }
                None => {
                    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(drive_listening(connection, wake));
                    client
                }
            };
            Ok(Listening { client, woken })
        })
        .await?;
    Ok((listening.client, listening.woken))
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
