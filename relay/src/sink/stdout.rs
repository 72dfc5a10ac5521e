//! Stdout sink: writes each message's value as one line, for trying the relay out and for piping it
//! into other tools without a broker (the default format makes that line one JSON object).

use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Delivery, Sink, SinkError};
use crate::encode::Message;

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

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> Sink for StdoutSink<W> {
    /// Writes and flushes the whole batch before returning, so the delivery is already resolved.
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError> {
        let mut out = Vec::new();
        for message in &batch {
            out.extend_from_slice(message.value.as_deref().unwrap_or_default());
            out.push(b'\n');
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
    use crate::config::SinkKind;
    use crate::encode::{Encoder, Native};
    use crate::event::{Event, Origin, Routed};
    use crate::lsn::Lsn;

    fn message(id: &str, payload: &str) -> Message {
        Native::new(SinkKind::Stdout)
            .encode(Routed::new(
                "outbox.event.Order".to_owned(),
                Event {
                    id: id.to_owned(),
                    aggregate_type: "Order".to_owned(),
                    aggregate_id: "o-1".to_owned(),
                    event_type: "OrderCreated".to_owned(),
                    payload: payload.to_owned(),
                    headers: Vec::new(),
                    columns: Vec::new(),
                    created_at: None,
                    origin: Origin::Commit(Lsn(1)),
                    transaction_id: None,
                    committed_at: std::time::SystemTime::UNIX_EPOCH,
                },
            ))
            .unwrap()
    }

    #[tokio::test]
    async fn writes_each_message_on_its_own_line() {
        let mut sink = StdoutSink { writer: Vec::new() };
        let batch = vec![message("1", r#"{"total": 3}"#), message("2", "a\nb")];
        sink.publish(batch).await.unwrap().await.unwrap();

        let text = String::from_utf8(sink.writer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"destination":"outbox.event.Order","id":"1","aggregatetype":"Order","aggregateid":"o-1","type":"OrderCreated","payload":{"total":3},"headers":{},"outbox_position":"0000000000000001/00000000"}"#,
                r#"{"destination":"outbox.event.Order","id":"2","aggregatetype":"Order","aggregateid":"o-1","type":"OrderCreated","payload":"a\nb","headers":{},"outbox_position":"0000000000000001/00000000"}"#,
            ]
        );
    }
}
