//! The `processed_events` table: which replies the sagas already took, so a redelivery changes nothing.

use tokio_postgres::GenericClient;

use super::StoreError;
use crate::replies::Reply;
use crate::saga::Outcome;

pub async fn contains(client: &impl GenericClient, reply: &Reply) -> Result<bool, StoreError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM processed_events WHERE event_id = $1",
            &[&reply.event_id],
        )
        .await?
        .is_some())
}

/// Records `reply` as taken with `outcome`; `false` if a concurrent transaction recorded it first.
pub async fn insert(
    client: &impl GenericClient,
    reply: &Reply,
    outcome: Outcome,
) -> Result<bool, StoreError> {
    let inserted = client
        .execute(
            "INSERT INTO processed_events (event_id, event_type, order_id, outcome) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            &[
                &reply.event_id,
                &reply.input.as_str(),
                &reply.order_id,
                &outcome.as_str(),
            ],
        )
        .await?;
    Ok(inserted == 1)
}
