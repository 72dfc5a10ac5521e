//! What Kafka can tell about publishing to the relay's topics without producing: whether each topic
//! is visible to the relay's principal with a leader for every partition. Kafka has no dry-run
//! produce, and rdkafka 0.39 does not expose DescribeTopics' authorized operations, so WRITE ACLs
//! stay unverified and the line says so. Nor is a validate-only CreateTopics asked about missing
//! topics: Tansu 0.6 ignores the flag and creates them.

use std::collections::HashMap;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;

use super::{KafkaConfig, NAME};
use crate::sink::publish_check::{list, Permission, Targets};
use crate::sink::SinkError;

pub async fn check(config: &KafkaConfig, targets: &Targets<'_>) -> Result<Permission, SinkError> {
    let sink = super::connect(config).await?;
    // All topics rather than the destinations by name: a metadata request naming a topic lets
    // brokers with auto.create.topics.enable create it.
    let client = sink.producer.clone();
    let timeout = config.message_timeout;
    let metadata =
        tokio::task::spawn_blocking(move || client.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| broker(format!("metadata task failed: {e}")))?
            .map_err(|e| broker(format!("no metadata within {timeout:?}: {e}")))?;
    // A topic's problem, or `None` when it can take messages.
    let listed: HashMap<&str, Option<String>> = metadata
        .topics()
        .iter()
        .map(|topic| {
            let problem = if let Some(error) = topic.error() {
                Some(RDKafkaErrorCode::from(error).to_string())
            } else {
                topic
                    .partitions()
                    .iter()
                    .find(|p| p.leader() < 0)
                    .map(|p| format!("partition {} has no leader", p.id()))
            };
            (topic.name(), problem)
        })
        .collect();

    let mut ready = Vec::new();
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    for destination in targets.destinations {
        match listed.get(destination.as_str()) {
            Some(None) => ready.push(destination.clone()),
            Some(Some(problem)) => refused.push(format!("{destination}: {problem}")),
            None => missing.push(destination.clone()),
        }
    }
    if !refused.is_empty() {
        return Ok(Permission::Refused {
            detail: format!("cannot publish to {}", refused.join("; ")),
            fix: format!(
                "an authorization error needs DESCRIBE and WRITE for the relay's principal ({}); a partition without a leader needs its brokers back",
                acls(config, targets)
            ),
        });
    }
    let mut parts = Vec::new();
    if !ready.is_empty() {
        parts.push(format!(
            "topics {} exist with a leader for every partition",
            list(&ready)
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing; the relay creates missing topics on first use if its principal may",
            list(&missing)
        ));
    }
    let create = missing
        .iter()
        .map(|topic| {
            format!(
                "kafka-topics --bootstrap-server {} --create --topic {topic} --partitions {} --replication-factor {}",
                config.brokers, config.topic_partitions, config.replication_factor
            )
        })
        .collect::<Vec<_>>();
    let mut fix = format!(
        "nothing if the relay's principal may write; otherwise {}",
        acls(config, targets)
    );
    if !create.is_empty() {
        fix.push_str(&format!(
            "; to create the missing topics yourself: {}",
            create.join(" && ")
        ));
    }
    Ok(Permission::Unverified {
        detail: format!(
            "{}; WRITE ACLs cannot be verified without producing",
            parts.join("; ")
        ),
        fix,
    })
}

/// The `kafka-acls` command granting the relay's principal WRITE (which implies DESCRIBE).
fn acls(config: &KafkaConfig, targets: &Targets<'_>) -> String {
    let principal = config
        .properties
        .get("sasl.username")
        .map_or("<principal>", String::as_str);
    let topics: Vec<String> = targets
        .destinations
        .iter()
        .map(|d| format!("--topic {d}"))
        .collect();
    format!(
        "kafka-acls --bootstrap-server {} --add --allow-principal User:{principal} --operation Write {}",
        config.brokers,
        topics.join(" ")
    )
}

fn broker(reason: String) -> SinkError {
    SinkError::Broker { sink: NAME, reason }
}
