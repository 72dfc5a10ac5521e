//! The outbox table the relay tails: one row per event, written in the transaction of the change it
//! reports.

use contracts::{Event, CORRELATION_HEADER, VERSION_HEADER};
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;
use crate::correlation::CorrelationId;

/// Appends `event` with its version and the correlation id as headers; returns the event id, which
/// the relay publishes as the `id` header and consumers deduplicate on.
pub async fn append<E: Event>(
    client: &impl GenericClient,
    event: &E,
    correlation: &CorrelationId,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let payload = serde_json::to_value(event)?;
    let headers = json!({
        VERSION_HEADER: E::VERSION,
        CORRELATION_HEADER: correlation.as_str(),
    });
    client
        .execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &E::AGGREGATE_TYPE,
                &event.aggregate_id().to_string(),
                &E::EVENT_TYPE,
                &payload,
                &headers,
            ],
        )
        .await?;
    Ok(id)
}
