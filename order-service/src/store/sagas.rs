//! The `saga_instances` table: saving a started saga, loading an order's saga, saving a saga's change
//! only if nobody else changed it since it was loaded, and finding sagas past their deadline.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::StoreError;
use crate::correlation::CorrelationId;
use crate::saga::{Entry, Input, Outcome, Saga, Step};

const COLUMNS: &str = "id, order_id, step, deadline, version, history, correlation_id";

pub async fn insert(
    client: &impl GenericClient,
    saga: &Saga,
    correlation: &CorrelationId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO saga_instances (id, order_id, step, status, deadline, version, history, \
             correlation_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            &[
                &saga.id,
                &saga.order_id,
                &saga.step.as_str(),
                &saga.status().as_str(),
                &saga.deadline,
                &saga.version,
                &history_json(&saga.history),
                &correlation.as_str(),
                &now,
            ],
        )
        .await?;
    Ok(())
}

/// An order's saga and the correlation id it started with; `None` for an order never confirmed.
pub async fn load_by_order(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Option<(Saga, CorrelationId)>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM saga_instances WHERE order_id = $1"),
            &[&order_id],
        )
        .await?
        .map(|row| saga(&row))
        .transpose()
}

/// Saves `saga` if the stored one is still at `expected_version`; `false` means another transaction
/// changed it first and nothing was written.
pub async fn update(
    client: &impl GenericClient,
    saga: &Saga,
    expected_version: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let updated = client
        .execute(
            "UPDATE saga_instances SET step = $2, status = $3, deadline = $4, version = $5, \
             history = $6, updated_at = $7 WHERE id = $1 AND version = $8",
            &[
                &saga.id,
                &saga.step.as_str(),
                &saga.status().as_str(),
                &saga.deadline,
                &saga.version,
                &history_json(&saga.history),
                &now,
                &expected_version,
            ],
        )
        .await?;
    Ok(updated == 1)
}

/// The orders whose saga's deadline is at or before `now`, most overdue first, at most `limit`.
pub async fn overdue(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(client
        .query(
            "SELECT order_id FROM saga_instances WHERE deadline <= $1 ORDER BY deadline LIMIT $2",
            &[&now, &limit],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

fn history_json(history: &[Entry]) -> Value {
    history
        .iter()
        .map(|entry| {
            json!({
                "at": entry.at,
                "input": entry.input.map(Input::as_str),
                "eventId": entry.event_id,
                "outcome": entry.outcome.as_str(),
                "from": entry.from.map(Step::as_str),
                "to": entry.to.as_str(),
            })
        })
        .collect()
}

fn saga(row: &Row) -> Result<(Saga, CorrelationId), StoreError> {
    let id: Uuid = row.get("id");
    let corrupt = |reason: String| StoreError::CorruptSaga { id, reason };
    let step: &str = row.get("step");
    let step = Step::parse(step).ok_or_else(|| corrupt(format!("step {step:?}")))?;
    let history: Value = row.get("history");
    let history = history
        .as_array()
        .ok_or_else(|| corrupt("history is not an array".to_owned()))?
        .iter()
        .map(entry)
        .collect::<Result<Vec<_>, String>>()
        .map_err(corrupt)?;
    let correlation: &str = row.get("correlation_id");
    Ok((
        Saga {
            id,
            order_id: row.get("order_id"),
            step,
            deadline: row.get("deadline"),
            version: row.get("version"),
            history,
        },
        CorrelationId::from_header(Some(correlation.as_bytes())),
    ))
}

fn entry(value: &Value) -> Result<Entry, String> {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let step = |key: &str| {
        text(key)
            .map(|name| Step::parse(name).ok_or(format!("history step {name:?}")))
            .transpose()
    };
    let at = text("at")
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .ok_or(format!("history entry without a time: {value}"))?;
    let input = text("input")
        .map(|name| Input::parse(name).ok_or(format!("history input {name:?}")))
        .transpose()?;
    let outcome = text("outcome")
        .and_then(Outcome::parse)
        .ok_or(format!("history entry without an outcome: {value}"))?;
    let event_id = text("eventId")
        .map(|id| Uuid::parse_str(id).map_err(|e| format!("history event id: {e}")))
        .transpose()?;
    Ok(Entry {
        at: at.with_timezone(&Utc),
        input,
        event_id,
        outcome,
        from: step("from")?,
        to: step("to")?.ok_or(format!("history entry without a step: {value}"))?,
    })
}
