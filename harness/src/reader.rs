//! Readers that collect what arrived at each broker, tolerant of the broker restarting under them:
//! tests check deliveries with them, and the demo prints what the relay published.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use redis::AsyncCommands;

/// One message as the broker delivered it.
#[derive(Debug, Clone)]
pub struct Received {
    pub destination: String,
    pub key: String,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
}

pub enum Reader {
    Redis {
        url: String,
        streams: Vec<(String, String)>,
        /// Read at most this many entries per poll and trim them off the stream, as a slow consumer
        /// that frees memory does; `None` reads everything and trims nothing.
        trim: Option<usize>,
    },
    RabbitMq {
        url: String,
        queue: String,
    },
    /// A slow consumer: takes at most `per_poll` messages per poll.
    RabbitMqSlow {
        url: String,
        queue: String,
        per_poll: usize,
    },
    Kafka {
        brokers: String,
        topics: Vec<String>,
        /// Extra librdkafka properties, e.g. SASL credentials.
        properties: Vec<(String, String)>,
        consumer: Option<StreamConsumer>,
    },
}

impl Reader {
    pub fn redis(url: &str, streams: &[String]) -> Reader {
        Self::redis_reading(url, streams, None)
    }

    /// A slow Redis consumer: each poll reads at most `per_poll` entries of each stream and deletes
    /// them with `XTRIM MINID`, so that a server at its `maxmemory` accepts writes again.
    pub fn redis_trimming(url: &str, streams: &[String], per_poll: usize) -> Reader {
        Self::redis_reading(url, streams, Some(per_poll))
    }

    fn redis_reading(url: &str, streams: &[String], trim: Option<usize>) -> Reader {
        Reader::Redis {
            url: url.to_owned(),
            streams: streams
                .iter()
                .map(|s| (s.clone(), "-".to_owned()))
                .collect(),
            trim,
        }
    }

    /// Declares `exchange` as the relay does and a durable queue bound to every routing key, so that
    /// messages published before the first read are kept, across broker restarts too.
    pub async fn rabbitmq(url: &str, exchange: &str, routing_keys: &[String]) -> Reader {
        Self::rabbitmq_queue(url, exchange, routing_keys, FieldTable::default(), None).await
    }

    /// A slow consumer of a full queue: the queue holds at most `max_length` messages and refuses
    /// more (`x-overflow: reject-publish`, so the broker nacks them), and each poll takes at most
    /// `per_poll` of them.
    pub async fn rabbitmq_bounded(
        url: &str,
        exchange: &str,
        routing_keys: &[String],
        max_length: u32,
        per_poll: usize,
    ) -> Reader {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongUInt(max_length));
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        Self::rabbitmq_queue(url, exchange, routing_keys, arguments, Some(per_poll)).await
    }

    async fn rabbitmq_queue(
        url: &str,
        exchange: &str,
        routing_keys: &[String],
        arguments: FieldTable,
        per_poll: Option<usize>,
    ) -> Reader {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = crate::unique("test-queue");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), durable, arguments)
            .await
            .unwrap();
        for key in routing_keys {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        let _ = connection.close(200, "bound".into()).await;
        let url = url.to_owned();
        match per_poll {
            Some(per_poll) => Reader::RabbitMqSlow {
                url,
                queue,
                per_poll,
            },
            None => Reader::RabbitMq { url, queue },
        }
    }

    pub fn kafka(brokers: &str, topics: &[String]) -> Reader {
        Self::kafka_with(brokers, topics, &[])
    }

    /// A Kafka reader with extra client properties, e.g. `sasl.username`.
    pub fn kafka_with(brokers: &str, topics: &[String], properties: &[(&str, &str)]) -> Reader {
        Reader::Kafka {
            brokers: brokers.to_owned(),
            topics: topics.to_vec(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            consumer: None,
        }
    }

    /// Collects until `done` holds for everything collected so far, or panics after `timeout`.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        loop {
            match self.poll().await {
                Ok(mut batch) => received.append(&mut batch),
                Err(error) => eprintln!("reader: {error} (broker restarting?)"),
            }
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "timed out with {} messages received",
                received.len()
            );
            tokio::time::sleep(self.pause()).await;
        }
    }

    /// A trimming Redis reader polls often: a server at its `maxmemory` accepts writes again as
    /// soon as each trim runs, and so mid-way through a client's pipeline too.
    fn pause(&self) -> Duration {
        match self {
            Reader::Redis { trim: Some(_), .. } => Duration::from_millis(5),
            _ => Duration::from_millis(200),
        }
    }

    /// What arrived since the last poll.
    async fn poll(&mut self) -> Result<Vec<Received>, String> {
        match self {
            Reader::Redis { url, streams, trim } => poll_redis(url, streams, *trim).await,
            Reader::RabbitMq { url, queue } => poll_rabbitmq(url, queue, None).await,
            Reader::RabbitMqSlow {
                url,
                queue,
                per_poll,
            } => poll_rabbitmq(url, queue, Some(*per_poll)).await,
            Reader::Kafka {
                brokers,
                topics,
                properties,
                consumer,
            } => poll_kafka(brokers, topics, properties, consumer).await,
        }
    }
}

async fn poll_redis(
    url: &str,
    streams: &mut [(String, String)],
    trim: Option<usize>,
) -> Result<Vec<Received>, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut received = Vec::new();
    for (stream, last) in streams.iter_mut() {
        let start = if last == "-" {
            "-".to_owned()
        } else {
            format!("({last}")
        };
        let reply: redis::streams::StreamRangeReply = connection
            .xrange_count(stream.as_str(), start, "+", trim.unwrap_or(100_000))
            .await
            .map_err(|e| e.to_string())?;
        for entry in reply.ids {
            let field = |name: &str| -> String {
                entry
                    .get::<String>(name)
                    .unwrap_or_else(|| panic!("stream entry lacks field {name}"))
            };
            let mut headers: BTreeMap<String, String> =
                serde_json::from_str(&field("headers")).unwrap();
            // Every other field (the event's identity, a dead letter's reason) reads as a header.
            for name in entry.map.keys() {
                if name != "headers" && name != "payload" {
                    headers.insert(name.clone(), field(name));
                }
            }
            received.push(Received {
                destination: stream.clone(),
                key: field("aggregateid"),
                payload: field("payload"),
                headers,
            });
            *last = entry.id;
        }
        if trim.is_some() && last != "-" {
            // MINID keeps entries from the given id on: the one after the last read.
            let (ms, seq) = last.split_once('-').ok_or("stream id without '-'")?;
            let seq: u64 = seq.parse().map_err(|e| format!("stream id {last}: {e}"))?;
            redis::cmd("XTRIM")
                .arg(stream.as_str())
                .arg("MINID")
                .arg(format!("{ms}-{}", seq + 1))
                .exec_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(received)
}

async fn poll_rabbitmq(
    url: &str,
    queue: &str,
    per_poll: Option<usize>,
) -> Result<Vec<Received>, String> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    let mut received = Vec::new();
    while received.len() < per_poll.unwrap_or(usize::MAX) {
        let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .map_err(|e| e.to_string())?
        else {
            break;
        };
        let delivery = message.delivery;
        let headers: BTreeMap<String, String> = delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(name, value)| match value {
                        AMQPValue::LongString(text) => (name.to_string(), text.to_string()),
                        other => (name.to_string(), format!("{other:?}")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            destination: delivery.routing_key.to_string(),
            key: headers.get("aggregateid").cloned().unwrap_or_default(),
            payload: String::from_utf8_lossy(&delivery.data).into_owned(),
            headers,
        });
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    let _ = connection.close(200, "read".into()).await;
    Ok(received)
}

/// Reads by partition assignment from the beginning: group joins take seconds on Tansu and are not
/// what these tests are about.
async fn poll_kafka(
    brokers: &str,
    topics: &[String],
    properties: &[(String, String)],
    consumer: &mut Option<StreamConsumer>,
) -> Result<Vec<Received>, String> {
    if consumer.is_none() {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", crate::unique("test-reader"))
            .set("enable.auto.commit", "false");
        for (key, value) in properties {
            config.set(key, value);
        }
        let candidate: StreamConsumer = config.create().map_err(|e| e.to_string())?;
        let mut assignment = TopicPartitionList::new();
        for topic in topics {
            let metadata = candidate
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions())
                .unwrap_or_default();
            if partitions.is_empty() {
                return Ok(Vec::new()); // the relay creates topics on first use
            }
            for partition in partitions {
                assignment
                    .add_partition_offset(topic, partition.id(), Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
        }
        candidate.assign(&assignment).map_err(|e| e.to_string())?;
        *consumer = Some(candidate);
    }
    let consumer = consumer.as_ref().expect("assigned above");
    let mut received = Vec::new();
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
    {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                return if received.is_empty() {
                    Err(error.to_string())
                } else {
                    Ok(received)
                }
            }
        };
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            destination: message.topic().to_owned(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            headers,
        });
    }
    Ok(received)
}
