//! The identity of one workload event as its payload carries it: run id, aggregate and sequence
//! number. The payload alone identifies an event, so the checker reads any broker the same way and
//! works even after the outbox rows were deleted.

use serde_json::{json, Value};

/// One event of a run: the `seq`-th event (from 0) of `aggregate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub aggregate: String,
    pub seq: u64,
}

/// The aggregate id of the `k`-th aggregate of `run`; also its message key at the broker.
pub fn aggregate_id(run: &str, k: u64) -> String {
    format!("{run}-{k}")
}

/// The JSON payload written for `key` in `run`.
pub fn payload(run: &str, key: &EventKey) -> Value {
    json!({"run": run, "aggregate": key.aggregate, "seq": key.seq})
}

/// The event a message payload stands for, if it is one of `run`'s; anything else at the
/// destination (other services' events, other runs) yields `None`.
pub fn parse(run: &str, payload: &[u8]) -> Option<EventKey> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    if value.get("run")?.as_str()? != run {
        return None;
    }
    Some(EventKey {
        aggregate: value.get("aggregate")?.as_str()?.to_owned(),
        seq: value.get("seq")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_parses_back_to_its_key_only_for_its_own_run() {
        let key = EventKey {
            aggregate: aggregate_id("r1", 3),
            seq: 7,
        };
        let bytes = payload("r1", &key).to_string().into_bytes();
        assert_eq!(parse("r1", &bytes), Some(key));
        assert_eq!(parse("r2", &bytes), None);
        assert_eq!(parse("r1", b"not json"), None);
        assert_eq!(parse("r1", br#"{"run":"r1","aggregate":"a"}"#), None);
    }
}
