//! The RabbitMQ sink against the machine's broker: publisher confirms, per-key order, unroutable
//! messages reported as rejections.

use crate::sink_common;

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use outbox_relay::config::SinkKind;
use outbox_relay::sink::rabbitmq::{connect, RabbitMqConfig};
use outbox_relay::sink::SinkError;
use sink_common::{assert_delivered_in_order, events, publish_all, unique, Received};

const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

async fn channel(url: &str) -> Channel {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    connection.create_channel().await.unwrap()
}

/// A server-named exclusive queue bound to `exchange` for each routing key.
async fn bind_queue(channel: &Channel, exchange: &str, routing_keys: &[String]) -> String {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await
        .unwrap();
    for key in routing_keys {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    queue.name().to_string()
}

async fn receive(channel: &Channel, queue: &str, count: usize) -> Vec<Received> {
    let options = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer =
        channel.basic_consume(queue.into(), "test".into(), options, FieldTable::default());
    let deliveries = consumer.await.unwrap().take(count).collect::<Vec<_>>();
    let deliveries = tokio::time::timeout(RECEIVE_TIMEOUT, deliveries)
        .await
        .expect("all messages in time");
    deliveries
        .into_iter()
        .map(|delivery| {
            let delivery = delivery.unwrap();
            let properties = &delivery.properties;
            assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
            assert_eq!(
                properties.content_type().as_ref().map(|t| t.as_str()),
                Some("application/json")
            );
            let headers = properties.headers().as_ref().expect("headers");
            let headers = headers
                .inner()
                .iter()
                .map(|(name, value)| match value {
                    AMQPValue::LongString(text) => (name.to_string(), text.to_string()),
                    other => panic!("header {name} is {other:?}"),
                })
                .collect::<std::collections::BTreeMap<_, _>>();
            assert_eq!(
                properties.message_id().as_ref().map(|id| id.as_str()),
                headers.get("id").map(String::as_str)
            );
            assert_eq!(
                properties.kind().as_ref().map(|t| t.as_str()),
                headers.get("type").map(String::as_str)
            );
            Received {
                destination: delivery.routing_key.to_string(),
                key: headers["aggregateid"].clone(),
                payload: String::from_utf8(delivery.data).unwrap(),
                headers,
            }
        })
        .collect()
}

async fn delete_exchange(channel: &Channel, exchange: &str) {
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn rabbitmq_delivers_overlapping_batches_in_order_per_key() {
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = unique("test.rabbitmq");
    let destinations = [unique("outbox.event.a"), unique("outbox.event.b")];
    let mut sink = connect(&RabbitMqConfig {
        url: url.clone(),
        exchange: exchange.clone(),
        ..RabbitMqConfig::default()
    })
    .await
    .unwrap();
    let consumer = channel(&url).await;
    let queue = bind_queue(&consumer, &exchange, &destinations).await;
    let sent = events(&destinations, 6, 50);

    publish_all(&mut sink, SinkKind::Rabbitmq, sent.clone(), 25, 4)
        .await
        .unwrap();

    let received = receive(&consumer, &queue, sent.len()).await;
    delete_exchange(&consumer, &exchange).await;
    assert_delivered_in_order(&sent, &received);
}

#[tokio::test]
async fn rabbitmq_refuses_unroutable_message_for_good() {
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = unique("test.rabbitmq.unroutable");
    let mut sink = connect(&RabbitMqConfig {
        url: url.clone(),
        exchange: exchange.clone(),
        ..RabbitMqConfig::default()
    })
    .await
    .unwrap();
    let sent = events(&[unique("outbox.event.nobody")], 1, 3);

    let error = publish_all(&mut sink, SinkKind::Rabbitmq, sent.clone(), 10, 1)
        .await
        .unwrap_err();

    delete_exchange(&channel(&url).await, &exchange).await;
    match error {
        SinkError::Unacceptable { refusals, .. } => {
            let ids: Vec<&str> = refusals.iter().map(|r| r.event_id.as_str()).collect();
            let expected: Vec<&str> = sent.iter().map(|r| r.event.id.as_str()).collect();
            assert_eq!(
                ids, expected,
                "every unroutable event of the batch is named"
            );
            for refusal in &refusals {
                assert_eq!(refusal.destination, sent[0].destination);
                assert!(refusal.reason.contains("NO_ROUTE"), "{refusal:?}");
            }
        }
        other => panic!("expected Unacceptable, got {other:?}"),
    }
}

#[tokio::test]
async fn rabbitmq_connect_to_closed_port_fails() {
    let port = harness::free_port().unwrap();
    let config = RabbitMqConfig {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        exchange: "x".into(),
        ..RabbitMqConfig::default()
    };
    match connect(&config).await {
        Err(SinkError::Connect { endpoint, .. }) => {
            assert!(!endpoint.contains("guest@"), "{endpoint}")
        }
        other => panic!("expected Connect, got {:?}", other.err()),
    }
}

/// `cargo test --release -p outbox-relay --test it sink_rabbitmq:: -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measures throughput; run on demand"]
async fn rabbitmq_throughput() {
    let url = harness::RabbitMq::shared().unwrap();
    let exchange = unique("test.rabbitmq.throughput");
    let destination = unique("outbox.event.throughput");
    let mut sink = connect(&RabbitMqConfig {
        url: url.clone(),
        exchange: exchange.clone(),
        ..RabbitMqConfig::default()
    })
    .await
    .unwrap();
    let consumer = channel(&url).await;
    // A bound queue, so that messages are routable; it is deleted with the consumer's connection.
    bind_queue(&consumer, &exchange, std::slice::from_ref(&destination)).await;
    let sent = events(std::slice::from_ref(&destination), 100, 500);

    let elapsed = publish_all(&mut sink, SinkKind::Rabbitmq, sent, 500, 8)
        .await
        .unwrap();

    delete_exchange(&consumer, &exchange).await;
    println!(
        "rabbitmq: 50000 events in {elapsed:?}: {:.0} events/s",
        50_000.0 / elapsed.as_secs_f64()
    );
}
