//! Framing of the PostgreSQL wire protocol for the replication session.
//!
//! `postgres-protocol` parses every backend message except CopyBothResponse (`W`), which only
//! replication sessions see, so this codec frames that one itself and delegates the rest.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use tokio_util::codec::{Decoder, Encoder};

const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

pub enum Backend {
    CopyBothResponse,
    Message(Message),
}

/// Decodes backend messages; encodes frontend messages already serialized by `postgres-protocol`.
#[derive(Default)]
pub struct Codec;

impl Decoder for Codec {
    type Item = Backend;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Backend>> {
        if buf.len() >= 5 && buf[0] == COPY_BOTH_RESPONSE_TAG {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < len + 1 {
                buf.reserve(len + 1 - buf.len());
                return Ok(None);
            }
            buf.advance(len + 1);
            return Ok(Some(Backend::CopyBothResponse));
        }
        Ok(Message::parse(buf)?.map(Backend::Message))
    }
}

impl Encoder<Bytes> for Codec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// An ErrorResponse, with the fields an operator needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{severity} {code}: {message}{}{}", .detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(), .hint.as_ref().map(|h| format!(" hint: {h}")).unwrap_or_default())]
pub struct ServerError {
    pub severity: String,
    /// SQLSTATE, e.g. `42704` for a missing slot.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    pub fn parse(body: &ErrorResponseBody) -> io::Result<ServerError> {
        let mut error = ServerError {
            severity: String::new(),
            code: String::new(),
            message: String::new(),
            detail: None,
            hint: None,
        };
        let mut fields = body.fields();
        while let Some(field) = fields.next()? {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'V' => error.severity = value,
                b'S' if error.severity.is_empty() => error.severity = value,
                b'C' => error.code = value,
                b'M' => error.message = value,
                b'D' => error.detail = Some(value),
                b'H' => error.hint = Some(value),
                _ => {}
            }
        }
        Ok(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_copy_both_response_and_delegates_the_rest() {
        let mut buf = BytesMut::new();
        // CopyBothResponse: text format, no columns.
        buf.extend_from_slice(&[b'W', 0, 0, 0, 7, 0, 0, 0]);
        // ReadyForQuery, idle.
        buf.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        let mut codec = Codec;
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Backend::CopyBothResponse)
        ));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Backend::Message(Message::ReadyForQuery(_)))
        ));
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let mut buf = BytesMut::from(&[b'W', 0, 0, 0, 7, 0][..]);
        assert!(Codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 6);
    }
}
