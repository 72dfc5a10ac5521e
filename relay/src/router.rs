//! Chooses each event's broker destination (Kafka topic, RabbitMQ routing key, Redis stream key) from
//! a template such as `outbox.event.{aggregatetype}`.

use crate::event::{Event, Routed};

#[derive(Debug, Clone)]
pub struct Router {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    AggregateType,
    EventType,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("destination template {0:?} has an unclosed '{{'")]
    Unclosed(String),
    #[error(
        "destination template uses unknown placeholder {{{0}}}; known: {{aggregatetype}}, {{type}}"
    )]
    UnknownPlaceholder(String),
    #[error("destination template is empty")]
    Empty,
}

impl Router {
    pub fn new(template: &str) -> Result<Router, TemplateError> {
        if template.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(template.to_owned()))?;
            parts.push(match &rest[start + 1..start + end] {
                "aggregatetype" => Part::AggregateType,
                "type" => Part::EventType,
                other => return Err(TemplateError::UnknownPlaceholder(other.to_owned())),
            });
            rest = &rest[start + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Router { parts })
    }

    pub fn route(&self, event: Event) -> Routed {
        let destination = self.destination(&event.aggregate_type, &event.event_type);
        Routed::new(destination, event)
    }

    /// The destination of an event with these types.
    pub fn destination(&self, aggregate_type: &str, event_type: &str) -> String {
        let mut destination = String::new();
        for part in &self.parts {
            destination.push_str(match part {
                Part::Literal(s) => s,
                Part::AggregateType => aggregate_type,
                Part::EventType => event_type,
            });
        }
        destination
    }

    /// Whether destinations depend on the event type, not only on the aggregate type.
    pub fn uses_event_type(&self) -> bool {
        self.parts.contains(&Part::EventType)
    }

    /// Whether every event goes to the same destination.
    pub fn is_fixed(&self) -> bool {
        self.parts
            .iter()
            .all(|part| matches!(part, Part::Literal(_)))
    }

    /// A pattern covering every destination: literals escaped by `escape`, each placeholder
    /// replaced by `wildcard` (e.g. a Redis key glob `outbox.event.*`).
    pub fn pattern(&self, wildcard: &str, escape: impl Fn(&str) -> String) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(s) => escape(s),
                Part::AggregateType | Part::EventType => wildcard.to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;
    use crate::lsn::Lsn;

    fn event() -> Event {
        Event {
            id: "1".into(),
            aggregate_type: "order".into(),
            aggregate_id: "42".into(),
            event_type: "OrderConfirmed".into(),
            payload: "{}".into(),
            headers: vec![],
            created_at: None,
            origin: Origin::Commit(Lsn(1)),
            committed_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn fills_placeholders() {
        assert_eq!(
            Router::new("outbox.event.{aggregatetype}")
                .unwrap()
                .route(event())
                .destination,
            "outbox.event.order"
        );
        assert_eq!(
            Router::new("{aggregatetype}-{type}")
                .unwrap()
                .route(event())
                .destination,
            "order-OrderConfirmed"
        );
        assert_eq!(
            Router::new("fixed").unwrap().route(event()).destination,
            "fixed"
        );
    }

    #[test]
    fn describes_every_destination_as_a_pattern() {
        let router = Router::new("out*.{aggregatetype}.{type}").unwrap();
        assert_eq!(router.pattern("*", |s| s.replace('*', "\\*")), "out\\*.*.*");
        assert!(router.uses_event_type() && !router.is_fixed());
        assert!(Router::new("fixed").unwrap().is_fixed());
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(
            Router::new("a.{aggregatetype").unwrap_err(),
            TemplateError::Unclosed("a.{aggregatetype".into())
        );
        assert_eq!(
            Router::new("a.{tenant}").unwrap_err(),
            TemplateError::UnknownPlaceholder("tenant".into())
        );
        assert_eq!(Router::new("").unwrap_err(), TemplateError::Empty);
    }
}
