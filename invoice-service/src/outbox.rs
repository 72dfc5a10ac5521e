//! The invoice-service's own outbox: one row per reply, written in the transaction of the change it
//! reports, for the second relay (on the invoice database) to publish to `outbox.event.invoice`.

use contracts::{Event, CORRELATION_HEADER, VERSION_HEADER};
use serde_json::{Map, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::store::StoreError;

/// Appends `event` with its version and, if the event that caused it had one, its correlation id as
/// headers; returns the event id, which the relay publishes as the `id` header.
pub async fn append<E: Event>(
    client: &impl GenericClient,
    event: &E,
    correlation_id: Option<&str>,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let payload = serde_json::to_value(event)?;
    let mut headers = Map::new();
    headers.insert(VERSION_HEADER.to_owned(), Value::from(E::VERSION));
    if let Some(correlation_id) = correlation_id {
        headers.insert(CORRELATION_HEADER.to_owned(), Value::from(correlation_id));
    }
    client
        .execute(
            "insert into outbox (id, aggregatetype, aggregateid, type, payload, headers)
             values ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &E::AGGREGATE_TYPE,
                &event.aggregate_id().to_string(),
                &E::EVENT_TYPE,
                &payload,
                &Value::Object(headers),
            ],
        )
        .await?;
    Ok(id)
}
