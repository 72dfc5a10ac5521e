//! Whether the configured credentials may publish to the relay's destinations, asked of the broker
//! without delivering anything to consumers. `outbox-relay check` reports the answer.

use super::{kafka, rabbitmq, redis, SinkError};
use crate::config::{Config, SinkKind};
use crate::router::Router;

/// The destinations to ask about and what fixes need to name them.
pub struct Targets<'a> {
    /// Every destination to probe, the dead-letter one included.
    pub destinations: &'a [String],
    pub dead_letter: &'a str,
    /// The destination template, for fixes that must cover destinations not seen yet.
    pub router: &'a Router,
}

/// The broker's answer, each with a sentence for people and, when not granted, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    Granted {
        detail: String,
    },
    /// Publishing may work, but the broker cannot say so without a real publish.
    Unverified {
        detail: String,
        fix: String,
    },
    Refused {
        detail: String,
        fix: String,
    },
}

/// Asks the configured broker; `None` for a sink that needs no permission (stdout).
pub async fn check_publish(
    config: &Config,
    targets: &Targets<'_>,
) -> Option<Result<Permission, SinkError>> {
    Some(match config.sink {
        SinkKind::Kafka => kafka::publish_check::check(&config.kafka, targets).await,
        SinkKind::Rabbitmq => rabbitmq::publish_check::check(&config.rabbitmq, targets).await,
        SinkKind::Redis => redis::publish_check::check(&config.redis, targets).await,
        SinkKind::Stdout => return None,
    })
}

/// `a, b, c` for detail lines.
pub(crate) fn list(destinations: &[String]) -> String {
    destinations.join(", ")
}
