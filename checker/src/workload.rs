//! Writes a run: K aggregates × N events into the outbox table, the way services do, one
//! transaction per batch. Events are interleaved across aggregates (event 0 of every aggregate,
//! then event 1, ...), so that each transaction mixes aggregates and per-aggregate order is only
//! kept if the relay keeps commit order.

use tokio_postgres::{Client, NoTls};

use crate::event::{self, EventKey};
use crate::table::Table;
use crate::Error;

/// Aggregate type of every event written; the relay's destination template usually contains it.
pub const AGGREGATE_TYPE: &str = "relaycheck";
/// Event type of every event written.
pub const EVENT_TYPE: &str = "RelayCheck";

#[derive(Debug, Clone)]
pub struct Workload {
    pub run: String,
    pub aggregates: u64,
    pub events: u64,
    /// Events per transaction.
    pub batch_size: usize,
    pub aggregate_type: String,
}

impl Workload {
    /// A run with a fresh id.
    pub fn new(aggregates: u64, events: u64) -> Workload {
        Workload {
            run: new_run_id(),
            aggregates,
            events,
            batch_size: 100,
            aggregate_type: AGGREGATE_TYPE.to_owned(),
        }
    }

    /// Every event of the run, in the order they are written.
    pub fn events(&self) -> impl Iterator<Item = EventKey> + '_ {
        (0..self.events).flat_map(move |seq| {
            (0..self.aggregates).map(move |k| EventKey {
                aggregate: event::aggregate_id(&self.run, k),
                seq,
            })
        })
    }
}

/// Short enough to read in a table, random enough not to meet another run at one destination.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub async fn connect(database_url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Writes every event of `workload` into `table`; returns the number written.
pub async fn write(client: &mut Client, table: &Table, workload: &Workload) -> Result<u64, Error> {
    let insert = format!(
        "INSERT INTO {table} (id, aggregatetype, aggregateid, type, payload) \
         SELECT id::uuid, $2::text, aggregateid, $3::text, payload::jsonb \
         FROM unnest($1::text[], $4::text[], $5::text[]) AS t(id, aggregateid, payload)"
    );
    let events: Vec<EventKey> = workload.events().collect();
    for batch in events.chunks(workload.batch_size.max(1)) {
        let ids: Vec<String> = batch
            .iter()
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let aggregates: Vec<&str> = batch.iter().map(|e| e.aggregate.as_str()).collect();
        let payloads: Vec<String> = batch
            .iter()
            .map(|e| event::payload(&workload.run, e).to_string())
            .collect();
        let tx = client.transaction().await?;
        tx.execute(
            &insert,
            &[
                &ids,
                &workload.aggregate_type,
                &EVENT_TYPE,
                &aggregates,
                &payloads,
            ],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(events.len() as u64)
}
