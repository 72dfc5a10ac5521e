//! Self-tests of `harness::RabbitMq`: a persistent message survives a restart of a private node.

use std::time::Instant;

use harness::RabbitMq;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

async fn connect(url: &str) -> anyhow::Result<lapin::Channel> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    Ok(connection.create_channel().await?)
}

#[tokio::test]
async fn a_private_node_keeps_persistent_messages_across_a_restart() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rabbitmq = RabbitMq::start()?;
    eprintln!("RabbitMq::start took {:?}", started.elapsed());
    let channel = connect(&rabbitmq.url()).await?;
    channel
        .queue_declare(
            "q".into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let confirmation = channel
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    assert!(confirmation.is_ack());

    let started = Instant::now();
    rabbitmq.restart()?;
    eprintln!("RabbitMq::restart took {:?}", started.elapsed());
    assert!(channel
        .basic_get("q".into(), BasicGetOptions::default())
        .await
        .is_err());

    let channel = connect(&rabbitmq.url()).await?;
    let message = channel
        .basic_get("q".into(), BasicGetOptions { no_ack: true })
        .await?
        .expect("the message survived the restart");
    assert_eq!(message.delivery.data, b"hello");

    rabbitmq.kill()?;
    rabbitmq.start_again()?;
    connect(&rabbitmq.url()).await?;
    Ok(())
}

#[tokio::test]
async fn the_shared_broker_accepts_guest() -> anyhow::Result<()> {
    let url = RabbitMq::shared()?;
    let vhost = std::env::var("TEST_RABBITMQ_VHOST").unwrap_or_else(|_| "%2f".into());
    assert_eq!(url, format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"));
    connect(&url).await?;
    Ok(())
}
