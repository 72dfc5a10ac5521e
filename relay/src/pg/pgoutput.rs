//! Decoder for the pgoutput logical decoding plugin's messages (protocol version 1).
//!
//! Only what an outbox needs is decoded: Begin, Commit, Relation, Insert and Message (what
//! `pg_logical_emit_message` writes, sent with the `messages` option). Updates, deletes, truncates,
//! origins and types are recognised and skipped, so a service may delete its outbox row in the same
//! transaction that inserted it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};

use crate::lsn::Lsn;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("pgoutput message truncated while reading {0}")]
    Truncated(&'static str),
    #[error("pgoutput message has an unknown tag {0:?}")]
    UnknownTag(char),
    #[error("pgoutput tuple has an unknown column kind {0:?}")]
    UnknownColumnKind(char),
    #[error("pgoutput {0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalMessage {
    Begin {
        final_lsn: Lsn,
        xid: u32,
        commit_time: i64,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    Relation(Relation),
    Insert {
        relation_id: u32,
        values: Vec<Value>,
    },
    /// A `pg_logical_emit_message` call. A transactional one arrives inside its transaction, in
    /// the order of the transaction's other changes; a non-transactional one between transactions.
    Message {
        transactional: bool,
        /// Where the message was written.
        lsn: Lsn,
        /// Read lossily: it is only compared with the configured prefix, which is UTF-8, and a
        /// stray byte must not stop the stream.
        prefix: String,
        content: Bytes,
    },
    /// Update, Delete, Truncate, Origin or Type: nothing the relay acts on.
    Ignored(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
    /// Each column's type oid: a relation whose names changed but whose types did not is a rename.
    pub types: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value; inserts never carry one, but the format allows it.
    Unchanged,
    Text(Bytes),
}

/// Microseconds since 2000-01-01, as the server counts commit times.
pub type PgTimestamp = i64;

/// Microseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

pub fn to_system_time(timestamp: PgTimestamp) -> SystemTime {
    let micros = timestamp.saturating_add(PG_EPOCH_OFFSET_MICROS).max(0) as u64;
    UNIX_EPOCH + Duration::from_micros(micros)
}

pub fn decode(mut buf: Bytes) -> Result<LogicalMessage, DecodeError> {
    let tag = take_u8(&mut buf, "tag")?;
    match tag {
        b'B' => Ok(LogicalMessage::Begin {
            final_lsn: Lsn(take_u64(&mut buf, "Begin")?),
            commit_time: take_u64(&mut buf, "Begin")? as PgTimestamp,
            xid: take_u32(&mut buf, "Begin")?,
        }),
        b'C' => {
            take_u8(&mut buf, "Commit")?;
            Ok(LogicalMessage::Commit {
                commit_lsn: Lsn(take_u64(&mut buf, "Commit")?),
                end_lsn: Lsn(take_u64(&mut buf, "Commit")?),
                commit_time: take_u64(&mut buf, "Commit")? as PgTimestamp,
            })
        }
        b'R' => {
            let id = take_u32(&mut buf, "Relation")?;
            let namespace = take_cstr(&mut buf, "relation namespace")?;
            let name = take_cstr(&mut buf, "relation name")?;
            take_u8(&mut buf, "Relation")?;
            let count = take_u16(&mut buf, "Relation")?;
            let mut columns = Vec::with_capacity(usize::from(count));
            let mut types = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                take_u8(&mut buf, "column flags")?;
                columns.push(take_cstr(&mut buf, "column name")?);
                types.push(take_u32(&mut buf, "column type")?);
                take_u32(&mut buf, "column type modifier")?;
            }
            Ok(LogicalMessage::Relation(Relation {
                id,
                namespace,
                name,
                columns,
                types,
            }))
        }
        b'I' => {
            let relation_id = take_u32(&mut buf, "Insert")?;
            take_u8(&mut buf, "Insert")?;
            Ok(LogicalMessage::Insert {
                relation_id,
                values: take_tuple(&mut buf)?,
            })
        }
        b'M' => {
            // Protocol 1 without streaming: no xid before the flags.
            let transactional = take_u8(&mut buf, "Message flags")? & 1 == 1;
            let lsn = Lsn(take_u64(&mut buf, "Message")?);
            let prefix = take_raw_cstr(&mut buf, "message prefix")?;
            let len = take_u32(&mut buf, "message length")? as usize;
            if buf.remaining() < len {
                return Err(DecodeError::Truncated("message content"));
            }
            Ok(LogicalMessage::Message {
                transactional,
                lsn,
                prefix: String::from_utf8_lossy(&prefix).into_owned(),
                content: buf.split_to(len),
            })
        }
        b'U' | b'D' | b'T' | b'O' | b'Y' => Ok(LogicalMessage::Ignored(tag as char)),
        other => Err(DecodeError::UnknownTag(other as char)),
    }
}

fn take_tuple(buf: &mut Bytes) -> Result<Vec<Value>, DecodeError> {
    let count = take_u16(buf, "tuple")?;
    let mut values = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        values.push(match take_u8(buf, "column kind")? {
            b'n' => Value::Null,
            b'u' => Value::Unchanged,
            b't' | b'b' => {
                let len = take_u32(buf, "column length")? as usize;
                if buf.remaining() < len {
                    return Err(DecodeError::Truncated("column value"));
                }
                Value::Text(buf.split_to(len))
            }
            other => return Err(DecodeError::UnknownColumnKind(other as char)),
        });
    }
    Ok(values)
}

fn take_u8(buf: &mut Bytes, what: &'static str) -> Result<u8, DecodeError> {
    buf.try_get_u8().map_err(|_| DecodeError::Truncated(what))
}

fn take_u16(buf: &mut Bytes, what: &'static str) -> Result<u16, DecodeError> {
    buf.try_get_u16().map_err(|_| DecodeError::Truncated(what))
}

fn take_u32(buf: &mut Bytes, what: &'static str) -> Result<u32, DecodeError> {
    buf.try_get_u32().map_err(|_| DecodeError::Truncated(what))
}

fn take_u64(buf: &mut Bytes, what: &'static str) -> Result<u64, DecodeError> {
    buf.try_get_u64().map_err(|_| DecodeError::Truncated(what))
}

fn take_cstr(buf: &mut Bytes, what: &'static str) -> Result<String, DecodeError> {
    let raw = take_raw_cstr(buf, what)?;
    String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::NotUtf8(what))
}

fn take_raw_cstr(buf: &mut Bytes, what: &'static str) -> Result<Bytes, DecodeError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(DecodeError::Truncated(what))?;
    let raw = buf.split_to(end);
    buf.advance(1);
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    fn relation_message() -> BytesMut {
        let mut m = BytesMut::new();
        m.put_u8(b'R');
        m.put_u32(16385);
        m.put_slice(b"public\0outbox\0");
        m.put_u8(b'd');
        m.put_u16(2);
        for (name, oid) in [("id", 2950u32), ("payload", 3802)] {
            m.put_u8(1);
            m.put_slice(name.as_bytes());
            m.put_u8(0);
            m.put_u32(oid);
            m.put_i32(-1);
        }
        m
    }

    #[test]
    fn decodes_begin_and_commit() {
        let mut begin = BytesMut::new();
        begin.put_u8(b'B');
        begin.put_u64(0x100);
        begin.put_i64(42);
        begin.put_u32(7);
        assert_eq!(
            decode(begin.freeze()).unwrap(),
            LogicalMessage::Begin {
                final_lsn: Lsn(0x100),
                xid: 7,
                commit_time: 42
            }
        );
        let mut commit = BytesMut::new();
        commit.put_u8(b'C');
        commit.put_u8(0);
        commit.put_u64(0x100);
        commit.put_u64(0x130);
        commit.put_i64(42);
        assert_eq!(
            decode(commit.freeze()).unwrap(),
            LogicalMessage::Commit {
                commit_lsn: Lsn(0x100),
                end_lsn: Lsn(0x130),
                commit_time: 42
            }
        );
    }

    #[test]
    fn decodes_relation() {
        assert_eq!(
            decode(relation_message().freeze()).unwrap(),
            LogicalMessage::Relation(Relation {
                id: 16385,
                namespace: "public".into(),
                name: "outbox".into(),
                columns: vec!["id".into(), "payload".into()],
                types: vec![2950, 3802],
            })
        );
    }

    #[test]
    fn decodes_insert_with_null_and_text() {
        let mut m = BytesMut::new();
        m.put_u8(b'I');
        m.put_u32(16385);
        m.put_u8(b'N');
        m.put_u16(3);
        m.put_u8(b't');
        m.put_u32(2);
        m.put_slice(b"{}");
        m.put_u8(b'n');
        m.put_u8(b'u');
        assert_eq!(
            decode(m.freeze()).unwrap(),
            LogicalMessage::Insert {
                relation_id: 16385,
                values: vec![
                    Value::Text(Bytes::from_static(b"{}")),
                    Value::Null,
                    Value::Unchanged
                ],
            }
        );
    }

    #[test]
    fn skips_updates_and_deletes() {
        assert_eq!(
            decode(Bytes::from_static(b"D\0\0\0\x01K")).unwrap(),
            LogicalMessage::Ignored('D')
        );
        assert_eq!(
            decode(Bytes::from_static(b"U")).unwrap(),
            LogicalMessage::Ignored('U')
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = relation_message().freeze();
        for len in 0..full.len() {
            assert!(
                decode(full.slice(..len)).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    fn message(flags: u8, prefix: &[u8], content: &[u8]) -> BytesMut {
        let mut m = BytesMut::new();
        m.put_u8(b'M');
        m.put_u8(flags);
        m.put_u64(0x16B3748);
        m.put_slice(prefix);
        m.put_u8(0);
        m.put_u32(content.len() as u32);
        m.put_slice(content);
        m
    }

    #[test]
    fn decodes_messages_transactional_or_not() {
        assert_eq!(
            decode(message(1, b"outbox", b"{\"id\":1}").freeze()).unwrap(),
            LogicalMessage::Message {
                transactional: true,
                lsn: Lsn(0x16B3748),
                prefix: "outbox".into(),
                content: Bytes::from_static(b"{\"id\":1}"),
            }
        );
        let LogicalMessage::Message {
            transactional,
            prefix,
            content,
            ..
        } = decode(message(0, b"caf\xe9", b"").freeze()).unwrap()
        else {
            panic!("not a message");
        };
        assert!(!transactional);
        assert_eq!(prefix, "caf\u{fffd}");
        assert!(content.is_empty());
    }

    #[test]
    fn every_truncated_message_is_an_error_not_a_panic() {
        let full = message(1, b"outbox", b"{}").freeze();
        for len in 0..full.len() {
            assert!(
                decode(full.slice(..len)).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        let mut lying = message(1, b"outbox", b"");
        lying.truncate(lying.len() - 4);
        lying.put_u32(u32::MAX);
        assert_eq!(
            decode(lying.freeze()),
            Err(DecodeError::Truncated("message content"))
        );
    }

    #[test]
    fn rejects_lying_lengths_and_unknown_tags() {
        let mut m = BytesMut::new();
        m.put_u8(b'I');
        m.put_u32(1);
        m.put_u8(b'N');
        m.put_u16(1);
        m.put_u8(b't');
        m.put_u32(u32::MAX);
        assert_eq!(
            decode(m.freeze()),
            Err(DecodeError::Truncated("column value"))
        );
        assert_eq!(
            decode(Bytes::from_static(b"Q")),
            Err(DecodeError::UnknownTag('Q'))
        );
    }
}
