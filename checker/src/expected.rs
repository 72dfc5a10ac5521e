//! What a run should deliver: each aggregate's events in commit order, read back from the outbox
//! table, or derived from the run's shape when the rows are gone (e.g. `--cleanup delete`).

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::event::{self, EventKey};
use crate::table::Table;
use crate::Error;

/// Per aggregate, its events in commit order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expected {
    pub per_aggregate: BTreeMap<String, Vec<EventKey>>,
}

impl Expected {
    /// The events a run of `aggregates` × `events` wrote, without asking the database.
    pub fn from_shape(run: &str, aggregates: u64, events: u64) -> Expected {
        let per_aggregate = (0..aggregates)
            .map(|k| {
                let aggregate = event::aggregate_id(run, k);
                let keys = (0..events)
                    .map(|seq| EventKey {
                        aggregate: aggregate.clone(),
                        seq,
                    })
                    .collect();
                (aggregate, keys)
            })
            .collect();
        Expected { per_aggregate }
    }

    /// The run's rows still in `table`. Within an aggregate, sequence numbers follow commit order,
    /// as the workload writes them.
    pub async fn from_table(client: &Client, table: &Table, run: &str) -> Result<Expected, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT payload->>'aggregate', (payload->>'seq')::bigint FROM {table} \
                     WHERE payload->>'run' = $1 ORDER BY 1, 2"
                ),
                &[&run],
            )
            .await?;
        if rows.is_empty() {
            return Err(Error::NoRows {
                run: run.to_owned(),
                table: table.to_string(),
            });
        }
        let mut expected = Expected::default();
        for row in rows {
            let aggregate: String = row.get(0);
            let seq: i64 = row.get(1);
            expected
                .per_aggregate
                .entry(aggregate.clone())
                .or_default()
                .push(EventKey {
                    aggregate,
                    seq: seq as u64,
                });
        }
        Ok(expected)
    }

    pub fn len(&self) -> usize {
        self.per_aggregate.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses a run's shape, `K x N` (`4x100`, `4 x 100`): K aggregates of N events each.
pub fn parse_shape(text: &str) -> Result<(u64, u64), Error> {
    let shape = || Error::Shape(text.to_owned());
    let (k, n) = text.split_once(['x', 'X']).ok_or_else(shape)?;
    let k: u64 = k.trim().parse().map_err(|_| shape())?;
    let n: u64 = n.trim().parse().map_err(|_| shape())?;
    if k == 0 || n == 0 {
        return Err(shape());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_with_or_without_spaces_and_refuse_nonsense() {
        assert_eq!(parse_shape("4x100").unwrap(), (4, 100));
        assert_eq!(parse_shape(" 2 X 3 ").unwrap(), (2, 3));
        for bad in ["", "4", "x", "0x5", "4x0", "-1x2", "4x100x2", "four x 2"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_shape_expects_n_events_per_aggregate_in_sequence() {
        let expected = Expected::from_shape("r", 2, 3);
        assert_eq!(expected.len(), 6);
        let seqs: Vec<u64> = expected.per_aggregate["r-1"]
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [0, 1, 2]);
    }
}
