//! Redis Streams: `XRANGE` over the stream, from its first entry, page by page. The relay writes the
//! payload to the `payload` field of each entry.

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use redis::AsyncCommands;

use crate::Error;

/// Entries per `XRANGE` call.
const PAGE: usize = 10_000;

pub struct RedisReader {
    connection: MultiplexedConnection,
    stream: String,
    /// The id of the last entry read; `None` before the first.
    last: Option<String>,
}

fn broker_error(e: impl std::fmt::Display) -> Error {
    Error::Broker {
        broker: "redis",
        reason: e.to_string(),
    }
}

impl RedisReader {
    pub async fn connect(url: &str, stream: &str) -> Result<RedisReader, Error> {
        let client = redis::Client::open(url).map_err(broker_error)?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(broker_error)?;
        Ok(RedisReader {
            connection,
            stream: stream.to_owned(),
            last: None,
        })
    }

    pub async fn poll(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        let mut payloads = Vec::new();
        loop {
            let start = match &self.last {
                None => "-".to_owned(),
                Some(last) => format!("({last}"),
            };
            let reply: StreamRangeReply = self
                .connection
                .xrange_count(&self.stream, start, "+", PAGE)
                .await
                .map_err(broker_error)?;
            let page = reply.ids.len();
            for entry in reply.ids {
                payloads.push(entry.get::<Vec<u8>>("payload").unwrap_or_default());
                self.last = Some(entry.id);
            }
            if page < PAGE {
                return Ok(payloads);
            }
        }
    }
}
