//! Chooses each event's broker destination (Kafka topic, RabbitMQ routing key, Redis stream key):
//! from a template over the row's columns such as `outbox.event.{aggregatetype}` or
//! `{tenant}.{aggregatetype}`, or from a column naming it per row.

use serde::{Deserialize, Serialize};

use crate::event::{Event, Routed};

/// How events are routed and keyed, besides the `destination` template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// A column naming each row's destination (Eventuate's `destination`); a row whose value is
    /// NULL or empty goes where the template says.
    pub destination_column: Option<String>,
    /// The column whose value is the message key (Debezium's `table.field.event.key`); unset: the
    /// aggregate id. A NULL value sends a message without a key.
    pub key_column: Option<String>,
    /// How the key's text becomes bytes: `raw` (its UTF-8 bytes) or `json` (a JSON string, as
    /// Debezium's `JsonConverter` writes a string key: `"o-1"` with the quotes).
    pub key_format: KeyFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    #[default]
    Raw,
    Json,
}

impl RoutingConfig {
    /// The message key of `event`, as bytes.
    pub fn key(&self, event: &Event) -> Option<Vec<u8>> {
        let text = match &self.key_column {
            Some(column) => event.column(column)?,
            None => &event.aggregate_id,
        };
        Some(match self.key_format {
            KeyFormat::Raw => text.as_bytes().to_vec(),
            KeyFormat::Json => serde_json::Value::from(text).to_string().into_bytes(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Router {
    parts: Vec<Part>,
    destination_column: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `{aggregatetype}`: the configured aggregate type column.
    AggregateType,
    /// `{type}`: the configured event type column.
    EventType,
    /// Any other name: the outbox column of that name, as text (empty when NULL).
    Column(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("destination template {0:?} has an unclosed '{{'")]
    Unclosed(String),
    #[error("destination template {0:?} has an empty placeholder {{}}; name a column, e.g. {{aggregatetype}}")]
    EmptyPlaceholder(String),
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
            parts.push(Part::Field(match &rest[start + 1..start + end] {
                "" => return Err(TemplateError::EmptyPlaceholder(template.to_owned())),
                "aggregatetype" => Field::AggregateType,
                "type" => Field::EventType,
                column => Field::Column(column.to_owned()),
            }));
            rest = &rest[start + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Router {
            parts,
            destination_column: None,
        })
    }

    /// Routes a row whose `column` holds a non-empty value there instead of by the template.
    pub fn with_destination_column(mut self, column: Option<String>) -> Router {
        self.destination_column = column;
        self
    }

    pub fn route(&self, event: Event) -> Routed {
        let destination = self.destination(|field| event.field(field));
        Routed::new(destination, event)
    }

    /// The destination of a row whose fields have these values (`None` for NULL).
    pub fn destination<'a>(&self, value: impl Fn(&Field) -> Option<&'a str>) -> String {
        if let Some(column) = &self.destination_column {
            match value(&Field::Column(column.clone())) {
                Some(destination) if !destination.is_empty() => return destination.to_owned(),
                _ => {}
            }
        }
        let mut destination = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => destination.push_str(s),
                Part::Field(field) => destination.push_str(value(field).unwrap_or_default()),
            }
        }
        destination
    }

    /// Every field a destination depends on, each once: the template's, then the destination
    /// column.
    pub fn fields(&self) -> Vec<Field> {
        let mut fields: Vec<Field> = Vec::new();
        let template = self.parts.iter().filter_map(|part| match part {
            Part::Field(field) => Some(field.clone()),
            Part::Literal(_) => None,
        });
        let column = self.destination_column.clone().map(Field::Column);
        for field in template.chain(column) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        fields
    }

    /// The columns beyond the standard ones that destinations are read from.
    pub fn columns(&self) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter_map(|field| match field {
                Field::Column(column) => Some(column),
                Field::AggregateType | Field::EventType => None,
            })
            .collect()
    }

    /// Whether every event goes to the same destination.
    pub fn is_fixed(&self) -> bool {
        self.fields().is_empty()
    }

    /// A pattern covering every destination: literals escaped by `escape`, each placeholder
    /// replaced by `wildcard` (e.g. a Redis key glob `outbox.event.*`); only `wildcard` when a
    /// column may name any destination.
    pub fn pattern(&self, wildcard: &str, escape: impl Fn(&str) -> String) -> String {
        if self.destination_column.is_some() {
            return wildcard.to_owned();
        }
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(s) => escape(s),
                Part::Field(_) => wildcard.to_owned(),
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
            columns: Vec::new(),
            created_at: None,
            origin: Origin::Commit(Lsn(1)),
            transaction_id: None,
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
    fn fills_any_column_and_prefers_a_rows_own_destination() {
        let mut event = event();
        event.columns = vec![
            ("tenant".into(), Some("acme".into())),
            ("destination".into(), None),
        ];
        let router = Router::new("{tenant}.{aggregatetype}.{region}").unwrap();
        assert_eq!(router.columns(), ["tenant", "region"]);
        assert_eq!(router.route(event.clone()).destination, "acme.order.");
        let router = router.with_destination_column(Some("destination".into()));
        assert_eq!(router.route(event.clone()).destination, "acme.order.");
        event.columns[1].1 = Some("orders.special".into());
        assert_eq!(router.route(event).destination, "orders.special");
    }

    #[test]
    fn keys_come_from_any_column_raw_or_json_quoted() {
        let mut event = event();
        event.columns = vec![
            ("customer".into(), Some(r#"c-"7""#.into())),
            ("nothing".into(), None),
        ];
        let routing = |key_column: Option<&str>, key_format| RoutingConfig {
            key_column: key_column.map(str::to_owned),
            key_format,
            ..RoutingConfig::default()
        };
        let key =
            |routing: RoutingConfig| routing.key(&event).map(|k| String::from_utf8(k).unwrap());
        assert_eq!(key(routing(None, KeyFormat::Raw)).as_deref(), Some("42"));
        assert_eq!(
            key(routing(None, KeyFormat::Json)).as_deref(),
            Some(r#""42""#)
        );
        assert_eq!(
            key(routing(Some("customer"), KeyFormat::Json)).as_deref(),
            Some(r#""c-\"7\"""#)
        );
        assert_eq!(key(routing(Some("nothing"), KeyFormat::Raw)), None);
    }

    #[test]
    fn describes_every_destination_as_a_pattern() {
        let router = Router::new("out*.{aggregatetype}.{type}").unwrap();
        assert_eq!(router.pattern("*", |s| s.replace('*', "\\*")), "out\\*.*.*");
        assert_eq!(router.fields(), [Field::AggregateType, Field::EventType]);
        assert!(!router.is_fixed());
        assert!(Router::new("fixed").unwrap().is_fixed());
        let per_row = Router::new("fixed")
            .unwrap()
            .with_destination_column(Some("destination".into()));
        assert_eq!(per_row.pattern("*", str::to_owned), "*");
        assert_eq!(per_row.columns(), ["destination"]);
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(
            Router::new("a.{aggregatetype").unwrap_err(),
            TemplateError::Unclosed("a.{aggregatetype".into())
        );
        assert_eq!(
            Router::new("a.{}").unwrap_err(),
            TemplateError::EmptyPlaceholder("a.{}".into())
        );
        assert_eq!(Router::new("").unwrap_err(), TemplateError::Empty);
    }
}
