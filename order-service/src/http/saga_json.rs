//! An order's invoicing saga as the HTTP API shows it: where it is, until when it waits, and every
//! input it took with its outcome.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::saga::{Entry, Input, Saga, Step};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaJson {
    id: Uuid,
    step: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<DateTime<Utc>>,
    version: i64,
    history: Vec<EntryJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    at: DateTime<Utc>,
    /// `Started` for the first entry, else the input's name, e.g. `InvoiceIssued`.
    input: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Uuid>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'static str>,
    to: &'static str,
}

impl From<&Saga> for SagaJson {
    fn from(saga: &Saga) -> SagaJson {
        SagaJson {
            id: saga.id,
            step: saga.step.as_str(),
            status: saga.status().as_str(),
            deadline: saga.deadline,
            version: saga.version,
            history: saga.history.iter().map(EntryJson::from).collect(),
        }
    }
}

impl From<&Entry> for EntryJson {
    fn from(entry: &Entry) -> EntryJson {
        EntryJson {
            at: entry.at,
            input: entry.input.map_or("Started", Input::as_str),
            event_id: entry.event_id,
            outcome: entry.outcome.as_str(),
            from: entry.from.map(Step::as_str),
            to: entry.to.as_str(),
        }
    }
}
