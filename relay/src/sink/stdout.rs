//! Stdout sink: writes each event as one JSON object per line, for trying the relay out and for
//! piping it into other tools without a broker.

use async_trait::async_trait;
use serde::{Serialize, Serializer};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Delivery, Sink, SinkError};
use crate::event::Routed;

const NAME: &str = "stdout";

/// Writes to standard output by default; generic over the writer so tests can capture lines.
pub struct StdoutSink<W = tokio::io::Stdout> {
    writer: W,
}

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink {
            writer: tokio::io::stdout(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    destination: &'a str,
    id: &'a str,
    aggregatetype: &'a str,
    aggregateid: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    payload: Payload<'a>,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<&'a str>,
    outbox_position: &'a str,
    /// Only on events `replay` republished.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// A JSON payload is embedded as JSON; anything else as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    /// Compacted but otherwise as written: numbers keep every digit.
    Json(Box<serde_json::value::RawValue>),
    Text(&'a str),
}

/// The row's headers as a JSON object, in the row's order.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

fn write_line(out: &mut Vec<u8>, routed: &Routed) -> serde_json::Result<()> {
    let event = &routed.event;
    let payload = match crate::json_text::embeddable(&event.payload) {
        Some(json) => Payload::Json(json),
        None => Payload::Text(&event.payload),
    };
    // serde_json's compact output escapes newlines inside strings, so each object stays on one line.
    serde_json::to_writer(
        &mut *out,
        &Line {
            destination: &routed.destination,
            id: &event.id,
            aggregatetype: &event.aggregate_type,
            aggregateid: &event.aggregate_id,
            event_type: &event.event_type,
            payload,
            headers: Headers(&event.headers),
            created_at: event.created_at.as_deref(),
            outbox_position: routed.position(),
            replayed: event.origin.is_replayed(),
        },
    )?;
    out.push(b'\n');
    Ok(())
}

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> Sink for StdoutSink<W> {
    /// Writes and flushes the whole batch before returning, so the delivery is already resolved.
    async fn publish(&mut self, batch: Vec<Routed>) -> Result<Delivery, SinkError> {
        let mut out = Vec::new();
        for routed in &batch {
            write_line(&mut out, routed).map_err(|e| SinkError::Rejected {
                sink: NAME,
                event_id: routed.event.id.clone(),
                destination: routed.destination.clone(),
                reason: e.to_string(),
            })?;
        }
        let io_error = |e: std::io::Error| SinkError::Broker {
            sink: NAME,
            reason: format!("cannot write to standard output: {e}"),
        };
        // One write per batch rather than one per line.
        self.writer.write_all(&out).await.map_err(io_error)?;
        self.writer.flush().await.map_err(io_error)?;
        Ok(Box::pin(std::future::ready(Ok(()))))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin};
    use crate::lsn::Lsn;

    fn routed(id: &str, payload: &str, created_at: Option<&str>) -> Routed {
        Routed::new(
            "outbox.event.Order".to_owned(),
            Event {
                id: id.to_owned(),
                aggregate_type: "Order".to_owned(),
                aggregate_id: "o-1".to_owned(),
                event_type: "OrderCreated".to_owned(),
                payload: payload.to_owned(),
                headers: vec![
                    ("trace".to_owned(), "t-1".to_owned()),
                    ("a".to_owned(), "line\nbreak".to_owned()),
                ],
                created_at: created_at.map(str::to_owned),
                origin: Origin::Commit(Lsn(1)),
                committed_at: std::time::SystemTime::UNIX_EPOCH,
            },
        )
    }

    #[tokio::test]
    async fn writes_one_json_object_per_line() {
        let mut sink = StdoutSink { writer: Vec::new() };
        let batch = vec![
            routed("1", r#"{"total": 3}"#, Some("2026-11-25 12:00:00+00")),
            routed("2", "not json\nat all", None),
        ];
        sink.publish(batch).await.unwrap().await.unwrap();

        let text = String::from_utf8(sink.writer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"destination":"outbox.event.Order","id":"1","aggregatetype":"Order","aggregateid":"o-1","type":"OrderCreated","payload":{"total":3},"headers":{"trace":"t-1","a":"line\nbreak"},"created_at":"2026-11-25 12:00:00+00","outbox_position":"0000000000000001/00000000"}"#,
                r#"{"destination":"outbox.event.Order","id":"2","aggregatetype":"Order","aggregateid":"o-1","type":"OrderCreated","payload":"not json\nat all","headers":{"trace":"t-1","a":"line\nbreak"},"outbox_position":"0000000000000001/00000000"}"#,
            ]
        );
    }
}
