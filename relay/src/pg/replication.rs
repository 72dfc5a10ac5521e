//! A logical replication session: startup with `replication=database`, authentication,
//! `START_REPLICATION`, then the CopyBoth stream of WAL data, keepalives and standby status updates.
//!
//! Written on `postgres-protocol`'s codecs because tokio-postgres 0.7 has no replication support
//! (no `replication` startup parameter, no CopyBoth) and the crates that add it either lose the final
//! acknowledgement on shutdown or are far larger than this module.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use pgconn::Session;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio_util::codec::Framed;

use crate::lsn::Lsn;
use crate::pg::database::{ConnectError, Database, Endpoint};
use crate::pg::pgoutput::PG_EPOCH_OFFSET_MICROS;
use crate::pg::transport::Transport;
use crate::pg::wire::{Backend, Codec, ServerError};

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// No server of the database URL gave an acceptable replication session.
    #[error("no replication session: {0}")]
    Connect(#[source] ConnectError<ReplicationError>),
    #[error("replication connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("PostgreSQL refused the replication session: {0}")]
    Server(#[from] ServerError),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("unexpected message from PostgreSQL: {0}")]
    Protocol(String),
}

/// What the server sends inside the CopyBoth stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// A chunk of decoded WAL: for pgoutput, exactly one logical message.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        data: Bytes,
    },
    /// The server's current WAL end; `reply_requested` must be answered before wal_sender_timeout.
    Keepalive { wal_end: Lsn, reply_requested: bool },
}

/// An authenticated replication connection, not yet streaming.
pub struct ReplicationConnection {
    framed: Framed<Transport, Codec>,
}

impl ReplicationConnection {
    /// A session on the first acceptable server of the database URL, chosen as for every other
    /// session of the relay. `client_encoding` is `UTF8` unless the database's own encoding is one
    /// the server cannot convert from (`SQL_ASCII`).
    pub async fn connect(
        database: &Database,
        client_encoding: &str,
    ) -> Result<Self, ReplicationError> {
        database
            .connect_with(|endpoint| Self::open(endpoint, database, client_encoding))
            .await
            .map_err(ReplicationError::Connect)
    }

    async fn open(
        endpoint: Endpoint,
        database: &Database,
        client_encoding: &str,
    ) -> Result<Self, ReplicationError> {
        let config = &database.config;
        let transport = Transport::connect(&endpoint, database).await?;
        let mut framed = Framed::new(transport, Codec);
        let user = config
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .ok_or_else(|| ReplicationError::Auth("the database URL names no user".into()))?;
        let dbname = config.get_dbname().unwrap_or(&user).to_owned();
        let application_name = config.get_application_name().unwrap_or("outbox-relay");
        let params = [
            ("user", user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("application_name", application_name),
            ("client_encoding", client_encoding),
        ];
        let mut buf = BytesMut::new();
        frontend::startup_message(params.iter().copied(), &mut buf)?;
        framed.send(buf.freeze()).await?;
        authenticate(&mut framed, &user, config.get_password()).await?;
        loop {
            match next_message(&mut framed).await? {
                Message::ReadyForQuery(_) => return Ok(ReplicationConnection { framed }),
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                _ => {
                    return Err(ReplicationError::Protocol(
                        "expected ReadyForQuery after authentication".into(),
                    ))
                }
            }
        }
    }

    /// Runs a replication command whose rows, if any, are not needed, e.g. `ALTER_REPLICATION_SLOT`.
    pub async fn execute(&mut self, command: &str) -> Result<(), ReplicationError> {
        let mut buf = BytesMut::new();
        frontend::query(command, &mut buf)?;
        self.framed.send(buf.freeze()).await?;
        loop {
            match next_message(&mut self.framed).await? {
                Message::ReadyForQuery(_) => return Ok(()),
                Message::CommandComplete(_)
                | Message::EmptyQueryResponse
                | Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                _ => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected reply to {command}"
                    )))
                }
            }
        }
    }

    /// Creates a slot that lives as long as this connection, with a snapshot exported for other
    /// sessions to import (`SET TRANSACTION SNAPSHOT`): the snapshot sees exactly the transactions
    /// the slot does not stream. The snapshot lives until this connection runs its next command,
    /// so it must stay idle while the snapshot is read. Returns the slot's consistent point and the
    /// snapshot's name. The syntax is the one PostgreSQL 10 to 18 all accept.
    pub async fn create_exported_temporary_slot(
        &mut self,
        slot: &str,
    ) -> Result<(Lsn, String), ReplicationError> {
        let query = format!(
            "CREATE_REPLICATION_SLOT \"{}\" TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT",
            slot.replace('"', "\"\"")
        );
        let mut buf = BytesMut::new();
        frontend::query(&query, &mut buf)?;
        self.framed.send(buf.freeze()).await?;
        // One row: slot_name, consistent_point, snapshot_name, output_plugin.
        let mut row: Option<Vec<Option<String>>> = None;
        loop {
            match next_message(&mut self.framed).await? {
                Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut ranges = body.ranges();
                    let mut fields = Vec::new();
                    while let Some(range) = fallible_iterator::FallibleIterator::next(&mut ranges)?
                    {
                        fields
                            .push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    row = Some(fields);
                }
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        let field = |i: usize| row.as_ref().and_then(|r| r.get(i).cloned().flatten());
        let (Some(point), Some(snapshot)) = (field(1), field(2)) else {
            return Err(ReplicationError::Protocol(
                "CREATE_REPLICATION_SLOT returned no consistent point or snapshot".into(),
            ));
        };
        let point = point.parse().map_err(|e| {
            ReplicationError::Protocol(format!("CREATE_REPLICATION_SLOT returned {e}"))
        })?;
        Ok((point, snapshot))
    }

    /// Starts streaming from `start` (`Lsn::ZERO` resumes from the slot's confirmed position).
    pub async fn start(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, String)],
    ) -> Result<ReplicationStream, ReplicationError> {
        let options = options
            .iter()
            .map(|(k, v)| format!("\"{}\" '{}'", k.replace('"', "\"\""), v.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let query = format!(
            "START_REPLICATION SLOT \"{}\" LOGICAL {start} ({options})",
            slot.replace('"', "\"\"")
        );
        let mut buf = BytesMut::new();
        frontend::query(&query, &mut buf)?;
        self.framed.send(buf.freeze()).await?;
        loop {
            match self.framed.next().await.transpose()? {
                Some(Backend::CopyBothResponse) => {
                    return Ok(ReplicationStream {
                        framed: self.framed,
                    })
                }
                Some(Backend::Message(Message::NoticeResponse(_))) => {}
                Some(Backend::Message(Message::ErrorResponse(body))) => {
                    return Err(ServerError::parse(&body)?.into())
                }
                Some(Backend::Message(_)) => {
                    return Err(ReplicationError::Protocol(
                        "expected CopyBothResponse to START_REPLICATION".into(),
                    ))
                }
                None => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            }
        }
    }
}

impl Session for ReplicationConnection {
    type Error = ReplicationError;

    /// A simple query, which a `replication=database` session runs as SQL.
    async fn query_value(&mut self, query: &'static str) -> Result<Option<String>, Self::Error> {
        let mut buf = BytesMut::new();
        frontend::query(query, &mut buf)?;
        self.framed.send(buf.freeze()).await?;
        let mut value = None;
        loop {
            match next_message(&mut self.framed).await? {
                Message::DataRow(row) if value.is_none() => {
                    let mut ranges = row.ranges();
                    if let Some(Some(range)) =
                        fallible_iterator::FallibleIterator::next(&mut ranges)?
                    {
                        value = Some(String::from_utf8_lossy(&row.buffer()[range]).into_owned());
                    }
                }
                Message::ReadyForQuery(_) => return Ok(value),
                _ => {}
            }
        }
    }
}

async fn next_message(framed: &mut Framed<Transport, Codec>) -> Result<Message, ReplicationError> {
    match framed.next().await.transpose()? {
        Some(Backend::Message(Message::ErrorResponse(body))) => {
            Err(ServerError::parse(&body)?.into())
        }
        Some(Backend::Message(message)) => Ok(message),
        Some(Backend::CopyBothResponse) => Err(ReplicationError::Protocol(
            "CopyBothResponse before a query".into(),
        )),
        None => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
    }
}

async fn authenticate(
    framed: &mut Framed<Transport, Codec>,
    user: &str,
    password: Option<&[u8]>,
) -> Result<(), ReplicationError> {
    let need_password = || {
        ReplicationError::Auth(
            "the server asks for a password and the database URL has none".into(),
        )
    };
    loop {
        let mut buf = BytesMut::new();
        match next_message(framed).await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password.ok_or_else(need_password)?, &mut buf)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(
                    user.as_bytes(),
                    password.ok_or_else(need_password)?,
                    body.salt(),
                );
                frontend::password_message(hash.as_bytes(), &mut buf)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut scram_offered = false;
                while let Some(mechanism) =
                    fallible_iterator::FallibleIterator::next(&mut mechanisms)?
                {
                    scram_offered |= mechanism == SCRAM_SHA_256;
                }
                if !scram_offered {
                    return Err(ReplicationError::Auth(
                        "the server offers no SASL mechanism we support".into(),
                    ));
                }
                scram(framed, password.ok_or_else(need_password)?).await?;
                continue;
            }
            _ => {
                return Err(ReplicationError::Auth(
                    "unsupported authentication method".into(),
                ))
            }
        }
        framed.send(buf.freeze()).await?;
    }
}

async fn scram(
    framed: &mut Framed<Transport, Codec>,
    password: &[u8],
) -> Result<(), ReplicationError> {
    let mut scram = ScramSha256::new(password, ChannelBinding::unsupported());
    let mut buf = BytesMut::new();
    frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut buf)?;
    framed.send(buf.split().freeze()).await?;
    let Message::AuthenticationSaslContinue(body) = next_message(framed).await? else {
        return Err(ReplicationError::Auth("expected SASL continue".into()));
    };
    scram.update(body.data())?;
    frontend::sasl_response(scram.message(), &mut buf)?;
    framed.send(buf.split().freeze()).await?;
    let Message::AuthenticationSaslFinal(body) = next_message(framed).await? else {
        return Err(ReplicationError::Auth("expected SASL final".into()));
    };
    scram.finish(body.data())?;
    Ok(())
}

/// A session in CopyBoth mode.
pub struct ReplicationStream {
    framed: Framed<Transport, Codec>,
}

impl ReplicationStream {
    /// The next message; `None` once the server has ended the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ReplicationMessage>, ReplicationError> {
        loop {
            match self.framed.next().await.transpose()? {
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the replication stream",
                    )
                    .into())
                }
                Some(Backend::Message(Message::CopyData(body))) => {
                    return parse_copy_data(body.into_bytes()).map(Some)
                }
                Some(Backend::Message(Message::CopyDone)) => return Ok(None),
                Some(Backend::Message(Message::ErrorResponse(body))) => {
                    return Err(ServerError::parse(&body)?.into())
                }
                Some(Backend::Message(
                    Message::NoticeResponse(_) | Message::ParameterStatus(_),
                )) => {}
                Some(_) => {
                    return Err(ReplicationError::Protocol(
                        "unexpected message in the replication stream".into(),
                    ))
                }
            }
        }
    }

    /// Reports `flush` as written, flushed and applied; the server may then recycle WAL before it.
    pub async fn send_status(
        &mut self,
        flush: Lsn,
        reply_requested: bool,
    ) -> Result<(), ReplicationError> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(flush.0);
        body.put_u64(flush.0);
        body.put_u64(flush.0);
        body.put_i64(pg_now_micros());
        body.put_u8(u8::from(reply_requested));
        let mut buf = BytesMut::new();
        frontend::CopyData::new(body.freeze())?.write(&mut buf);
        self.framed.send(buf.freeze()).await?;
        Ok(())
    }

    /// Sends the final acknowledgement, ends the copy, and waits for the server to close the session,
    /// so the slot's confirmed position is durable before we return.
    pub async fn finish(mut self, flush: Lsn, timeout: Duration) -> Result<(), ReplicationError> {
        self.send_status(flush, false).await?;
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        self.framed.send(buf.split().freeze()).await?;
        let drain = async {
            loop {
                match self.framed.next().await.transpose()? {
                    Some(Backend::Message(Message::ReadyForQuery(_))) | None => {
                        return Ok::<_, ReplicationError>(())
                    }
                    Some(Backend::Message(Message::ErrorResponse(body))) => {
                        return Err(ServerError::parse(&body)?.into())
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, drain).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "server did not end the replication stream",
            )
        })??;
        frontend::terminate(&mut buf);
        self.framed.send(buf.freeze()).await?;
        Ok(())
    }
}

fn pg_now_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    unix.as_micros() as i64 - PG_EPOCH_OFFSET_MICROS
}

fn parse_copy_data(mut data: Bytes) -> Result<ReplicationMessage, ReplicationError> {
    let short = || ReplicationError::Protocol("truncated replication message".into());
    if data.is_empty() {
        return Err(short());
    }
    match data.get_u8() {
        b'w' if data.len() >= 24 => {
            let wal_start = Lsn(data.get_u64());
            let wal_end = Lsn(data.get_u64());
            data.advance(8);
            Ok(ReplicationMessage::XLogData {
                wal_start,
                wal_end,
                data,
            })
        }
        b'k' if data.len() >= 17 => {
            let wal_end = Lsn(data.get_u64());
            data.advance(8);
            Ok(ReplicationMessage::Keepalive {
                wal_end,
                reply_requested: data.get_u8() == 1,
            })
        }
        b'w' | b'k' => Err(short()),
        tag => Err(ReplicationError::Protocol(format!(
            "unknown replication message tag {:?}",
            tag as char
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xlog_data() {
        let mut raw = BytesMut::new();
        raw.put_u8(b'w');
        raw.put_u64(0x10);
        raw.put_u64(0x20);
        raw.put_i64(0);
        raw.put_slice(b"B...");
        assert_eq!(
            parse_copy_data(raw.freeze()).unwrap(),
            ReplicationMessage::XLogData {
                wal_start: Lsn(0x10),
                wal_end: Lsn(0x20),
                data: Bytes::from_static(b"B...")
            }
        );
    }

    #[test]
    fn parses_keepalive() {
        let mut raw = BytesMut::new();
        raw.put_u8(b'k');
        raw.put_u64(0x30);
        raw.put_i64(0);
        raw.put_u8(1);
        assert_eq!(
            parse_copy_data(raw.freeze()).unwrap(),
            ReplicationMessage::Keepalive {
                wal_end: Lsn(0x30),
                reply_requested: true
            }
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_messages() {
        assert!(parse_copy_data(Bytes::from_static(b"k\0\0")).is_err());
        assert!(parse_copy_data(Bytes::from_static(b"w")).is_err());
        assert!(parse_copy_data(Bytes::from_static(b"")).is_err());
        assert!(parse_copy_data(Bytes::from_static(b"z123")).is_err());
    }

    #[test]
    fn timestamps_count_from_2000() {
        // 2026 is about 26.9 years after 2000; anything near zero would mean the Unix epoch was used.
        let years = pg_now_micros() as f64 / 1e6 / 3600.0 / 24.0 / 365.25;
        assert!(years > 20.0 && years < 100.0, "{years}");
    }
}
