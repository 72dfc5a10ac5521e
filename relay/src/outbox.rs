//! The outbox table: its layout (Debezium-compatible by default, names configurable), its DDL, and
//! how one replicated row becomes an [`Event`].

use std::time::SystemTime;

use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Origin};
use crate::pg::pgoutput::Value;

/// Where the outbox lives and what its columns are called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxTable {
    /// `schema.table`, or `table` in `public`.
    pub table: String,
    pub columns: Columns,
    /// Further columns read from each row, by name: those the destination template, the routing
    /// and the format name. Derived from those settings ([`crate::config::Config::outbox_table`]),
    /// not set directly.
    #[serde(skip)]
    pub extra_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Columns {
    pub id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub payload: String,
    /// Optional column: a JSON object of headers to carry (correlation id, traceparent, ...).
    pub headers: String,
    /// Optional column.
    pub created_at: String,
    /// Optional column: Debezium's span context, `key=value` lines (Java properties) such as
    /// `traceparent=00-…`; its `traceparent` and `tracestate` are carried like the row's headers.
    pub tracing_span_context: String,
    /// Polling only: an identity column that orders rows by insertion.
    pub sequence: String,
    /// Polling only: when the row was relayed; `NULL` until then.
    pub published_at: String,
}

impl Default for OutboxTable {
    fn default() -> Self {
        OutboxTable {
            table: "public.outbox".into(),
            columns: Columns::default(),
            extra_columns: Vec::new(),
        }
    }
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            id: "id".into(),
            aggregate_type: "aggregatetype".into(),
            aggregate_id: "aggregateid".into(),
            event_type: "type".into(),
            payload: "payload".into(),
            headers: "headers".into(),
            created_at: "created_at".into(),
            tracing_span_context: "tracingspancontext".into(),
            sequence: "seq".into(),
            published_at: "published_at".into(),
        }
    }
}

impl OutboxTable {
    /// `(schema, table)`, unquoted.
    pub fn qualified_name(&self) -> (&str, &str) {
        qualified_name(&self.table)
    }

    /// The table name quoted for SQL.
    pub fn quoted_name(&self) -> String {
        quote_table(&self.table)
    }

    /// The DDL that creates the table with this layout, then what polling adds to it.
    pub fn ddl(&self) -> String {
        let c = &self.columns;
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n    {id} uuid PRIMARY KEY,\n    {at} text NOT NULL,\n    {ai} text NOT NULL,\n    {ty} text NOT NULL,\n    {payload} jsonb NOT NULL,\n    {headers} jsonb,\n    {created} timestamptz NOT NULL DEFAULT now()\n);\n{polling}",
            table = self.quoted_name(),
            id = escape_identifier(&c.id),
            at = escape_identifier(&c.aggregate_type),
            ai = escape_identifier(&c.aggregate_id),
            ty = escape_identifier(&c.event_type),
            payload = escape_identifier(&c.payload),
            headers = escape_identifier(&c.headers),
            created = escape_identifier(&c.created_at),
            polling = self.polling_columns_ddl(),
        )
    }

    /// What polling needs on a table made for logical replication (e.g. Debezium's layout): an
    /// identity column that orders rows by insertion, a column marking relayed rows, and an index
    /// over the unpublished ones.
    pub fn polling_columns_ddl(&self) -> String {
        let c = &self.columns;
        format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {seq} bigint GENERATED ALWAYS AS IDENTITY, ADD COLUMN IF NOT EXISTS {published} timestamptz;\n{index}",
            table = self.quoted_name(),
            seq = escape_identifier(&c.sequence),
            published = escape_identifier(&c.published_at),
            index = self.unpublished_index_ddl(),
        )
    }

    /// Polling finds unpublished rows in insertion order through this index, however many
    /// published rows the table keeps.
    fn unpublished_index_ddl(&self) -> String {
        let (_, table) = self.qualified_name();
        format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} ({seq}) WHERE {published} IS NULL;\n",
            name = escape_identifier(&format!("{table}_unpublished")),
            table = self.quoted_name(),
            seq = escape_identifier(&self.columns.sequence),
            published = escape_identifier(&self.columns.published_at),
        )
    }

    /// A statement-level trigger that wakes polling relays on `channel` when rows are inserted, so
    /// that latency does not depend on the poll interval. Notifications are sent at commit.
    pub fn notify_trigger_ddl(&self, channel: &str) -> String {
        let (schema, table) = self.qualified_name();
        let function = format!(
            "{}.{}",
            escape_identifier(schema),
            escape_identifier(&format!("{table}_relay_notify"))
        );
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN PERFORM pg_notify({channel}, ''); RETURN NULL; END $fn$;\n\
             DROP TRIGGER IF EXISTS outbox_relay_notify ON {table};\n\
             CREATE TRIGGER outbox_relay_notify AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n",
            channel = quote_literal(channel),
            table = self.quoted_name(),
        )
    }

    /// Finds the configured columns in a replicated relation.
    pub fn layout(&self, relation_columns: &[String]) -> Result<RowLayout, MissingColumns> {
        let find = |name: &str| relation_columns.iter().position(|c| c == name);
        let c = &self.columns;
        let required = [
            &c.id,
            &c.aggregate_type,
            &c.aggregate_id,
            &c.event_type,
            &c.payload,
        ];
        let missing: Vec<String> = required
            .into_iter()
            .chain(&self.extra_columns)
            .filter(|n| find(n).is_none())
            .map(|n| n.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(MissingColumns {
                table: self.table.clone(),
                missing,
            });
        }
        Ok(RowLayout {
            id: find(&c.id).unwrap_or_default(),
            aggregate_type: find(&c.aggregate_type).unwrap_or_default(),
            aggregate_id: find(&c.aggregate_id).unwrap_or_default(),
            event_type: find(&c.event_type).unwrap_or_default(),
            payload: find(&c.payload).unwrap_or_default(),
            headers: find(&c.headers),
            created_at: find(&c.created_at),
            tracing_span_context: find(&c.tracing_span_context),
            extra: self
                .extra_columns
                .iter()
                .map(|name| (name.clone(), find(name).unwrap_or_default()))
                .collect(),
        })
    }
}

/// A column's text. A value that is not UTF-8 (a SQL_ASCII database stores bytes in no known
/// encoding) is read as Latin-1, one character per byte, so that consumers can recover the exact
/// bytes by encoding it back; replacement characters would lose them.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The W3C trace context in Debezium's span context column: Java properties text, one `key=value`
/// (or `key: value`) per line, `#` comments. Headers of the same name in the row win.
fn span_context(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once(['=', ':']))
        .map(|(key, value)| (key.trim(), value.trim()))
        .filter(|(key, _)| matches!(*key, "traceparent" | "tracestate"))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// `(schema, table)` of `schema.table`, or of `table` in `public`; unquoted.
pub fn qualified_name(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or(("public", name))
}

/// `schema.table` or `table` (in `public`), quoted for SQL.
pub fn quote_table(name: &str) -> String {
    let (schema, table) = qualified_name(name);
    format!("{}.{}", escape_identifier(schema), escape_identifier(table))
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("outbox table {table} lacks the column(s) {missing:?}; create it with `outbox-relay ddl` or set the column names in the configuration")]
pub struct MissingColumns {
    pub table: String,
    pub missing: Vec<String>,
}

/// Column positions of one version of the outbox relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLayout {
    id: usize,
    aggregate_type: usize,
    aggregate_id: usize,
    event_type: usize,
    payload: usize,
    headers: Option<usize>,
    created_at: Option<usize>,
    tracing_span_context: Option<usize>,
    /// The further columns, by name.
    extra: Vec<(String, usize)>,
}

impl RowLayout {
    /// Builds the event for an inserted row. Never fails: a row the database accepted is relayed,
    /// with oddities (a null in a text column, headers that are not an object) reported as warnings.
    pub fn event(
        &self,
        values: &[Value],
        origin: Origin,
        committed_at: SystemTime,
    ) -> (Event, Vec<String>) {
        let mut warnings = Vec::new();
        if values
            .iter()
            .any(|v| matches!(v, Value::Text(bytes) if std::str::from_utf8(bytes).is_err()))
        {
            warnings.push(
                "the row holds bytes that are not UTF-8 (a SQL_ASCII database); such values are relayed decoded byte for byte as Latin-1"
                    .to_owned(),
            );
        }
        let mut text = |index: usize, what: &str| match values.get(index) {
            Some(Value::Text(bytes)) => text_of(bytes),
            _ => {
                warnings.push(format!("column {what} is null"));
                String::new()
            }
        };
        let id = text(self.id, "id");
        let aggregate_type = text(self.aggregate_type, "aggregatetype");
        let aggregate_id = text(self.aggregate_id, "aggregateid");
        let event_type = text(self.event_type, "type");
        let payload = match values.get(self.payload) {
            Some(Value::Text(bytes)) => text_of(bytes),
            _ => "null".to_owned(),
        };
        let optional = |index: Option<usize>| match index.and_then(|i| values.get(i)) {
            Some(Value::Text(bytes)) => Some(text_of(bytes)),
            _ => None,
        };
        let mut headers = match optional(self.headers) {
            None => Vec::new(),
            Some(raw) => crate::json_text::object_members(&raw).unwrap_or_else(|| {
                warnings.push("headers is not a JSON object; relayed without them".to_owned());
                Vec::new()
            }),
        };
        if let Some(context) = optional(self.tracing_span_context) {
            for (key, value) in span_context(&context) {
                if !headers.iter().any(|(k, _)| *k == key) {
                    headers.push((key, value));
                }
            }
        }
        let columns = self
            .extra
            .iter()
            .map(|(name, index)| (name.clone(), optional(Some(*index))))
            .collect();
        let event = Event {
            id,
            aggregate_type,
            aggregate_id,
            event_type,
            payload,
            headers,
            columns,
            created_at: optional(self.created_at),
            origin,
            transaction_id: None,
            committed_at,
        };
        (event, warnings)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::lsn::Lsn;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn text(s: &str) -> Value {
        Value::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn debeziums_span_context_becomes_trace_headers_unless_the_row_has_them() {
        let table = OutboxTable::default();
        let names = [
            "id",
            "aggregatetype",
            "aggregateid",
            "type",
            "payload",
            "headers",
            "tracingspancontext",
        ];
        let layout = table.layout(&columns(&names)).unwrap();
        let context = "#Mon Dec 07 06:00:00 UTC 2026\ntraceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\ntracestate: vendor=1\nother=x\n";
        let row = |headers: &str| {
            layout
                .event(
                    &[
                        text("1"),
                        text("order"),
                        text("42"),
                        text("T"),
                        text("{}"),
                        text(headers),
                        text(context),
                    ],
                    Origin::Sequence(1),
                    SystemTime::UNIX_EPOCH,
                )
                .0
                .headers
        };
        assert_eq!(
            row(r#"{"correlation_id":"c-1"}"#),
            vec![
                ("correlation_id".to_owned(), "c-1".to_owned()),
                (
                    "traceparent".to_owned(),
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()
                ),
                ("tracestate".to_owned(), "vendor=1".to_owned()),
            ]
        );
        assert_eq!(
            row(r#"{"traceparent":"mine"}"#)[..2],
            [
                ("traceparent".to_owned(), "mine".to_owned()),
                ("tracestate".to_owned(), "vendor=1".to_owned()),
            ]
        );
    }

    #[test]
    fn maps_a_debezium_row() {
        let table = OutboxTable::default();
        let layout = table
            .layout(&columns(&[
                "id",
                "aggregatetype",
                "aggregateid",
                "type",
                "payload",
                "headers",
                "created_at",
            ]))
            .unwrap();
        let (event, warnings) = layout.event(
            &[
                text("6f1c"),
                text("order"),
                text("42"),
                text("OrderConfirmed"),
                text(r#"{"total":"10.00"}"#),
                text(r#"{"correlation_id":"c-1","attempt":2}"#),
                text("2026-11-25 12:00:00+00"),
            ],
            Origin::Commit(Lsn(7)),
            SystemTime::UNIX_EPOCH,
        );
        assert!(warnings.is_empty());
        assert_eq!(event.id, "6f1c");
        assert_eq!(event.aggregate_id, "42");
        assert_eq!(
            event.headers,
            vec![
                ("attempt".into(), "2".into()),
                ("correlation_id".into(), "c-1".into())
            ]
        );
        assert_eq!(event.created_at.as_deref(), Some("2026-11-25 12:00:00+00"));
        assert_eq!(event.origin, Origin::Commit(Lsn(7)));
    }

    #[test]
    fn optional_columns_may_be_missing_and_names_configurable() {
        let mut table = OutboxTable::default();
        table.columns.aggregate_id = "aggregate_id".into();
        let layout = table
            .layout(&columns(&[
                "payload",
                "type",
                "aggregate_id",
                "aggregatetype",
                "id",
            ]))
            .unwrap();
        let (event, _) = layout.event(
            &[text("{}"), text("T"), text("a-1"), text("A"), text("i")],
            Origin::Commit(Lsn(1)),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            (
                event.id.as_str(),
                event.aggregate_id.as_str(),
                event.payload.as_str()
            ),
            ("i", "a-1", "{}")
        );
        assert!(event.headers.is_empty());
        assert_eq!(event.created_at, None);
    }

    #[test]
    fn names_every_missing_column() {
        let err = OutboxTable::default()
            .layout(&columns(&["id", "payload"]))
            .unwrap_err();
        assert_eq!(err.missing, vec!["aggregatetype", "aggregateid", "type"]);
    }

    #[test]
    fn odd_rows_are_relayed_with_warnings() {
        let layout = OutboxTable::default()
            .layout(&columns(&[
                "id",
                "aggregatetype",
                "aggregateid",
                "type",
                "payload",
                "headers",
            ]))
            .unwrap();
        let (event, warnings) = layout.event(
            &[
                text("i"),
                Value::Null,
                text("a"),
                text("T"),
                Value::Null,
                text("[1]"),
            ],
            Origin::Commit(Lsn(1)),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(event.payload, "null");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_relayed_byte_for_byte() {
        let layout = OutboxTable::default()
            .layout(&columns(&[
                "id",
                "aggregatetype",
                "aggregateid",
                "type",
                "payload",
            ]))
            .unwrap();
        let (event, warnings) = layout.event(
            &[
                text("i"),
                text("A"),
                Value::Text(Bytes::from_static(b"caf\xe9")),
                text("T"),
                Value::Text(Bytes::from_static(b"{\"name\": \"caf\xe9\"}")),
            ],
            Origin::Commit(Lsn(1)),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(event.aggregate_id, "caf\u{e9}");
        assert_eq!(event.payload, "{\"name\": \"caf\u{e9}\"}");
        let latin1: Vec<u8> = event.payload.chars().map(|c| c as u8).collect();
        assert_eq!(latin1, b"{\"name\": \"caf\xe9\"}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn ddl_quotes_names() {
        let table = OutboxTable {
            table: "sales.Outbox".into(),
            ..OutboxTable::default()
        };
        let ddl = table.ddl();
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS \"sales\".\"Outbox\" ("),
            "{ddl}"
        );
        assert!(ddl.contains("\"payload\" jsonb NOT NULL"));
    }
}
