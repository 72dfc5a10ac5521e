//! One verification: read the destination until every expected event has arrived or the time is
//! up, then count. Reading stops early on success because at-least-once gives no moment after
//! which nothing more can arrive; waiting out the timeout would only find more duplicates.

use std::time::{Duration, Instant};

use crate::broker::Reader;
use crate::event::{self, EventKey};
use crate::expected::Expected;
use crate::{tally, Error, Tally};

/// Pause between polls while events are still missing.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub tally: Tally,
    /// Messages at the destination that are not this run's: other services' events, other runs.
    pub other_messages: usize,
}

pub async fn verify(
    run: &str,
    expected: &Expected,
    reader: &mut Reader,
    timeout: Duration,
) -> Result<Verification, Error> {
    let deadline = Instant::now() + timeout;
    let mut received: Vec<EventKey> = Vec::new();
    let mut other_messages = 0;
    loop {
        for payload in reader.poll().await? {
            match event::parse(run, &payload) {
                Some(key) => received.push(key),
                None => other_messages += 1,
            }
        }
        let tally = tally(
            expected
                .per_aggregate
                .iter()
                .map(|(aggregate, events)| (aggregate.as_str(), events.as_slice())),
            &received,
        );
        if tally.totals().lost == 0 || Instant::now() >= deadline {
            return Ok(Verification {
                tally,
                other_messages,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
