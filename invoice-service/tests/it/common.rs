//! What every test needs: a database, a broker with names of its own, the service running in this
//! process, events in the relay's wire format, and a small HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use harness::{Kafka, Postgres, Process};
use invoice_service::config::{Config, Mode};
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use redis::AsyncCommands;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);

/// One outbox row as the relay publishes it.
#[derive(Debug, Clone)]
pub struct WireEvent {
    pub id: Uuid,
    pub event_type: String,
    pub aggregate_id: Uuid,
    /// The row's own headers, e.g. `correlation_id` and `event_version`.
    pub row_headers: Vec<(String, String)>,
    pub payload: String,
}

impl WireEvent {
    /// A valid `OrderConfirmed` of contract `version` ("1" or "2") for a new order: two lines,
    /// 2 × 10.00 + 1 × 5.50 USD.
    pub fn order_confirmed(version: &str) -> WireEvent {
        let order_id = Uuid::new_v4();
        let mut payload = json!({
            "orderId": order_id,
            "customerId": Uuid::new_v4(),
            "status": "CONFIRMED",
            "lines": [
                {"productId": Uuid::new_v4(), "quantity": 2, "unitPrice": "10.00", "currency": "USD"},
                {"productId": Uuid::new_v4(), "quantity": 1, "unitPrice": "5.50", "currency": "USD"}
            ],
            "total": {"amount": "25.50", "currency": "USD"},
            "confirmedAt": "2026-03-04T05:06:07.123456Z"
        });
        if version == "2" {
            payload["salesChannel"] = json!("web");
        }
        WireEvent {
            id: Uuid::new_v4(),
            event_type: "OrderConfirmed".to_owned(),
            aggregate_id: order_id,
            row_headers: vec![
                (
                    "correlation_id".to_owned(),
                    format!("corr-{}", Uuid::new_v4()),
                ),
                ("event_version".to_owned(), version.to_owned()),
            ],
            payload: payload.to_string(),
        }
    }

    pub fn order_created() -> WireEvent {
        let order_id = Uuid::new_v4();
        WireEvent {
            id: Uuid::new_v4(),
            event_type: "OrderCreated".to_owned(),
            aggregate_id: order_id,
            row_headers: vec![("event_version".to_owned(), "1".to_owned())],
            payload: json!({"orderId": order_id}).to_string(),
        }
    }

    pub fn with_payload(mut self, payload: &str) -> WireEvent {
        self.payload = payload.to_owned();
        self
    }

    pub fn with_version(mut self, version: &str) -> WireEvent {
        for (name, value) in &mut self.row_headers {
            if name == "event_version" {
                *value = version.to_owned();
            }
        }
        self
    }

    /// The relay's message headers: the event's identity, then the row's headers.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("id".to_owned(), self.id.to_string()),
            ("type".to_owned(), self.event_type.clone()),
            ("aggregatetype".to_owned(), "order".to_owned()),
            ("aggregateid".to_owned(), self.aggregate_id.to_string()),
        ];
        headers.extend(self.row_headers.iter().cloned());
        headers
    }

    /// The row's headers as the JSON object the Redis sink writes to the `headers` field.
    fn headers_json(&self) -> String {
        let map: serde_json::Map<String, Value> = self
            .row_headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(map).to_string()
    }
}

/// A message read back from the dead-letter destination.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Message headers (Kafka, AMQP), or stream fields and the row headers of the `headers` field
    /// (Redis).
    pub headers: BTreeMap<String, String>,
    pub payload: String,
}

pub enum Bus {
    /// The broker is dropped (and killed) with the test.
    Kafka {
        kafka: Kafka,
        producer: FutureProducer,
    },
    RabbitMq {
        url: String,
    },
    Redis {
        url: String,
    },
}

/// A database, a broker, a configuration with names no other test uses, and the service once
/// started.
pub struct Setup {
    pub pg: Postgres,
    pub bus: Bus,
    pub config: Config,
    /// Where the started service listens.
    addr: Option<SocketAddr>,
    /// Set while the service runs in this process.
    in_process: Option<(CancellationToken, JoinHandle<()>)>,
    /// Holds the config file of a service started as a binary.
    dir: TempDir,
    /// A TLS broker started for this test alone (a `harness::Redis` or `harness::RabbitMq`),
    /// stopped with it.
    _private: Option<Box<dyn std::any::Any + Send>>,
}

impl Setup {
    fn new(bus: Bus, mode: Mode) -> Setup {
        let pg = Postgres::start().unwrap();
        let database_url = pg.url();
        Setup::on(pg, database_url, bus, mode)
    }

    /// The service's database is `pg`, reached through `database_url`.
    fn on(pg: Postgres, database_url: String, bus: Bus, mode: Mode) -> Setup {
        let mut config = Config {
            database_url,
            database_pool_size: 4,
            ..Config::default()
        };
        let messaging = &mut config.messaging;
        messaging.mode = mode;
        messaging.destination = harness::unique("outbox.event.order");
        messaging.dead_letter_destination = format!("{}.dlq", messaging.destination);
        match &bus {
            Bus::Kafka { kafka, .. } => {
                messaging.kafka.brokers = kafka.brokers();
                messaging.kafka.group_id = harness::unique("invoice-service");
                messaging.kafka.topic_partitions = 2;
            }
            Bus::RabbitMq { url } => {
                messaging.rabbitmq.url = url.clone();
                messaging.rabbitmq.exchange = harness::unique("outbox");
                messaging.rabbitmq.queue = harness::unique("invoice-service");
            }
            Bus::Redis { url } => {
                messaging.redis.url = url.clone();
                messaging.redis.group = harness::unique("invoice-service");
            }
        }
        Setup {
            pg,
            bus,
            config,
            addr: None,
            in_process: None,
            dir: tempfile::tempdir().unwrap(),
            _private: None,
        }
    }

    /// A Tansu broker of its own, with the destination topic created as the relay would, but with
    /// one partition: then messages are handled in publish order on every broker, and a test can
    /// tell from a later message being invoiced that the earlier ones were handled.
    pub fn kafka() -> Setup {
        Setup::kafka_on(Kafka::start().unwrap(), &[])
    }

    /// A Tansu broker reached only through TLS, which the service and the test's producer trust
    /// through `ssl.ca.location`.
    pub fn kafka_over_tls() -> Setup {
        let kafka = Kafka::start_with_tls(false).unwrap();
        let ca = kafka.certificates().unwrap().ca_cert.display().to_string();
        Setup::kafka_on(
            kafka,
            &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        )
    }

    /// `kafka`, whose clients need `properties`.
    fn kafka_on(kafka: Kafka, properties: &[(&str, &str)]) -> Setup {
        let mut producer = ClientConfig::new();
        producer
            .set("bootstrap.servers", kafka.brokers())
            .set("message.timeout.ms", "30000");
        for (key, value) in properties {
            producer.set(*key, *value);
        }
        let producer = producer.create().unwrap();
        let mut setup = Setup::new(Bus::Kafka { kafka, producer }, Mode::Kafka);
        setup.config.messaging.kafka.properties.extend(
            properties
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        if let Bus::Kafka { kafka, .. } = &setup.bus {
            kafka
                .create_topic(&setup.config.messaging.destination, 1)
                .unwrap();
        }
        setup
    }

    /// A RabbitMQ node of its own that the service reaches over `amqps://`, trusting the node's CA
    /// through `messaging.rabbitmq.ca_file`; the test publishes through the plain port. With
    /// `mutual`, the node asks for a client certificate and the service presents one.
    pub fn rabbitmq_over_tls(mutual: bool) -> Setup {
        let rabbitmq = if mutual {
            harness::RabbitMq::start_with_mutual_tls()
        } else {
            harness::RabbitMq::start_with_tls()
        }
        .unwrap();
        let mut setup = Setup::new(
            Bus::RabbitMq {
                url: rabbitmq.url(),
            },
            Mode::Rabbitmq,
        );
        let settings = &mut setup.config.messaging.rabbitmq;
        let files = rabbitmq.certificates().unwrap();
        settings.url = rabbitmq.tls_url().unwrap();
        settings.ca_file = Some(files.ca_cert.clone());
        if mutual {
            settings.client_cert_file = Some(files.client_cert.clone());
            settings.client_key_file = Some(files.client_key.clone());
        }
        setup._private = Some(Box::new(rabbitmq));
        setup
    }

    /// A Redis of its own that the service reaches over `rediss://`, trusting the server's CA
    /// through `messaging.redis.ca_file`; the test publishes through the plain port. With `mutual`,
    /// the server asks for a client certificate and the service presents one.
    pub fn redis_over_tls(mutual: bool) -> Setup {
        let redis = if mutual {
            harness::Redis::start_with_mutual_tls()
        } else {
            harness::Redis::start_with_tls()
        }
        .unwrap();
        let mut setup = Setup::new(Bus::Redis { url: redis.url() }, Mode::Redis);
        let settings = &mut setup.config.messaging.redis;
        let files = redis.certificates().unwrap();
        settings.url = redis.tls_url().unwrap();
        settings.ca_file = Some(files.ca_cert.clone());
        if mutual {
            settings.client_cert_file = Some(files.client_cert.clone());
            settings.client_key_file = Some(files.client_key.clone());
        }
        setup._private = Some(Box::new(redis));
        setup
    }

    /// The machine's RabbitMQ, with an exchange and queues of this test's own.
    pub fn rabbitmq() -> Setup {
        let url = harness::RabbitMq::shared().unwrap();
        Setup::new(Bus::RabbitMq { url }, Mode::Rabbitmq)
    }

    /// The machine's Redis, with streams of this test's own.
    pub fn redis() -> Setup {
        let url = harness::Redis::shared().unwrap();
        Setup::new(Bus::Redis { url }, Mode::Redis)
    }

    /// As [`Setup::redis`], with the database `pg` reached through `database_url`.
    pub fn redis_on(pg: Postgres, database_url: String) -> Setup {
        let url = harness::Redis::shared().unwrap();
        Setup::on(pg, database_url, Bus::Redis { url }, Mode::Redis)
    }

    /// Runs the service in this process, as the binary does, on a free port.
    pub async fn start(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = Some(listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(invoice_service::service::run(
            self.config.clone(),
            listener,
            shutdown.clone(),
        ));
        let task = tokio::spawn(async move { task.await.unwrap().unwrap() });
        self.in_process = Some((shutdown, task));
        self.wait_until_consuming().await;
    }

    /// Cancels the service started by [`Setup::start`] and waits for it to stop.
    pub async fn stop(&mut self) {
        let (shutdown, task) = self.in_process.take().expect("the service runs");
        shutdown.cancel();
        task.await.unwrap();
    }

    /// Runs the `invoice-service` binary on a free port, configured through a config file for the
    /// broker settings and the environment for the rest, as a deployment would.
    pub async fn start_binary(&mut self) -> Process {
        let addr: SocketAddr = ([127, 0, 0, 1], harness::free_port().unwrap()).into();
        self.addr = Some(addr);
        let messaging = &self.config.messaging;
        let (kafka, rabbitmq, redis) = (&messaging.kafka, &messaging.rabbitmq, &messaging.redis);
        let file = self.dir.path().join("invoice-service.toml");
        std::fs::write(
            &file,
            format!(
                r#"
                [messaging]
                destination = "{destination}"
                dead_letter_destination = "{dead_letters}"
                [messaging.kafka]
                group_id = "{group_id}"
                # A killed member leaves the group sooner than librdkafka's default 45 s.
                properties = {{ "session.timeout.ms" = "6000" }}
                [messaging.rabbitmq]
                exchange = "{exchange}"
                queue = "{queue}"
                [messaging.redis]
                group = "{group}"
                "#,
                destination = messaging.destination,
                dead_letters = messaging.dead_letter_destination,
                group_id = kafka.group_id,
                exchange = rabbitmq.exchange,
                queue = rabbitmq.queue,
                group = redis.group,
            ),
        )
        .unwrap();
        let mode = format!("{:?}", messaging.mode).to_lowercase();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_invoice-service"));
        cmd.env_clear()
            .env("RUST_LOG", "info")
            .env("INVOICE_SERVICE_CONFIG", &file)
            .env("INVOICE_SERVICE_ADDR", addr.to_string())
            .env("DATABASE_URL", &self.config.database_url)
            .env("MESSAGING_MODE", mode)
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka.brokers)
            .env("RABBITMQ_URL", &rabbitmq.url)
            .env("REDIS_URL", &redis.url);
        let process = Process::start(cmd).unwrap();
        self.wait_until_consuming().await;
        process
    }

    /// Waits for `/health`, and for RabbitMQ until the queue is bound and consumed, so that nothing
    /// published from then on is unroutable.
    async fn wait_until_consuming(&self) {
        eventually("the service to answer /health", || async {
            (self.get("/health").await.0 == 200).then_some(())
        })
        .await;
        if let Bus::RabbitMq { url } = &self.bus {
            wait_for_consumer(url, &self.config.messaging.rabbitmq.queue).await;
        }
    }

    pub async fn publish(&self, event: &WireEvent) {
        let destination = &self.config.messaging.destination;
        match &self.bus {
            Bus::Kafka { producer, .. } => {
                let headers = event.headers();
                let headers = headers
                    .iter()
                    .fold(OwnedHeaders::new(), |headers, (key, value)| {
                        headers.insert(Header {
                            key,
                            value: Some(value),
                        })
                    });
                let key = event.aggregate_id.to_string();
                producer
                    .send(
                        FutureRecord::to(destination)
                            .key(&key)
                            .payload(&event.payload)
                            .headers(headers),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
            }
            Bus::RabbitMq { url } => {
                let exchange = &self.config.messaging.rabbitmq.exchange;
                let connection = Connection::connect(url, ConnectionProperties::default())
                    .await
                    .unwrap();
                let channel = connection.create_channel().await.unwrap();
                declare_exchange(&channel, exchange).await;
                let mut headers = FieldTable::default();
                for (key, value) in event.headers() {
                    headers.insert(
                        ShortString::from(key),
                        AMQPValue::LongString(LongString::from(value)),
                    );
                }
                let properties = BasicProperties::default()
                    .with_message_id(ShortString::from(event.id.to_string()))
                    .with_type(ShortString::from(event.event_type.as_str()))
                    .with_content_type(ShortString::from("application/json"))
                    .with_delivery_mode(2)
                    .with_headers(headers);
                channel
                    .basic_publish(
                        exchange.as_str().into(),
                        destination.as_str().into(),
                        BasicPublishOptions::default(),
                        event.payload.as_bytes(),
                        properties,
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                let _ = connection.close(200, "published".into()).await;
            }
            Bus::Redis { url } => {
                xadd(&mut redis_connection(url).await, destination, event).await;
            }
        }
    }

    /// Waits until `count` dead letters have arrived and returns them.
    pub async fn dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let destination = &self.config.messaging.dead_letter_destination;
        match &self.bus {
            Bus::Kafka { kafka, .. } => {
                read_with(
                    harness::Reader::kafka(&kafka.brokers(), std::slice::from_ref(destination)),
                    count,
                )
                .await
            }
            Bus::RabbitMq { url } => {
                // The service declares the dead-letter queue under the destination's name.
                let reader = harness::Reader::RabbitMq {
                    url: url.clone(),
                    queue: destination.clone(),
                };
                read_with(reader, count).await
            }
            Bus::Redis { url } => {
                let connection = redis_connection(url).await;
                eventually("dead letters in the stream", || {
                    let mut connection = connection.clone();
                    async move {
                        let reply: redis::streams::StreamRangeReply =
                            connection.xrange_all(destination).await.unwrap();
                        let letters: Vec<DeadLetter> = reply
                            .ids
                            .into_iter()
                            .map(|entry| {
                                let mut headers: BTreeMap<String, String> = entry
                                    .map
                                    .into_iter()
                                    .map(|(k, v)| (k, redis::from_redis_value(v).unwrap()))
                                    .collect();
                                let payload = headers.remove("payload").unwrap_or_default();
                                // The row's headers, a JSON object in one field, join the others.
                                let row_headers: BTreeMap<String, String> =
                                    serde_json::from_str(&headers["headers"]).unwrap();
                                headers.extend(row_headers);
                                DeadLetter { headers, payload }
                            })
                            .collect();
                        (letters.len() >= count).then_some(letters)
                    }
                })
                .await
            }
        }
    }

    /// `GET path` on the running service: status, content type and body.
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let addr = self.addr.expect("the service was started");
        http_get(addr, path).await
    }

    /// The invoices of `order_id` as the API lists them.
    pub async fn invoices_for(&self, order_id: Uuid) -> Vec<Value> {
        let (status, _, body) = self.get(&format!("/invoices?orderId={order_id}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }

    /// Waits until `order_id` has an invoice and returns it.
    pub async fn wait_for_invoice(&self, order_id: Uuid) -> Value {
        let mut found = eventually(&format!("an invoice for order {order_id}"), || async move {
            let found = self.invoices_for(order_id).await;
            (!found.is_empty()).then_some(found)
        })
        .await;
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    /// Rows of `table` in the service's database.
    pub async fn count(&self, table: &str) -> i64 {
        let client = self.pg.client().await.unwrap();
        client
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Polls `check` until it returns a value, failing the test after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn read_with(mut reader: harness::Reader, count: usize) -> Vec<DeadLetter> {
    reader
        .collect_until(WAIT, |received| received.len() >= count)
        .await
        .into_iter()
        .map(|received| DeadLetter {
            headers: received.headers,
            payload: received.payload,
        })
        .collect()
}

/// Appends `event` to `stream` as the relay's Redis sink does.
pub async fn xadd(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    event: &WireEvent,
) {
    let headers = event.headers_json();
    let id = event.id.to_string();
    let aggregate_id = event.aggregate_id.to_string();
    let fields = [
        ("id", id.as_str()),
        ("aggregatetype", "order"),
        ("aggregateid", &aggregate_id),
        ("type", &event.event_type),
        ("payload", &event.payload),
        ("headers", &headers),
    ];
    let _: String = connection.xadd(stream, "*", &fields).await.unwrap();
}

pub async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn declare_exchange(channel: &lapin::Channel, exchange: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Waits until `queue` exists and has a consumer. A passive declare of a missing queue closes the
/// channel, so each attempt uses a new connection.
async fn wait_for_consumer(url: &str, queue: &str) {
    harness::poll_until(WAIT, &format!("a consumer on queue {queue}"), || async {
        let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
            return false;
        };
        let consumers = match connection.create_channel().await {
            Ok(channel) => channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|queue| queue.consumer_count())
                .unwrap_or(0),
            Err(_) => 0,
        };
        let _ = connection.close(200, "checked".into()).await;
        consumers > 0
    })
    .await
    .unwrap();
}

/// A minimal HTTP/1.1 GET with `Connection: close`: status, content type and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (0, String::new(), String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}
