//! Test doubles of a source and a sink, for unit tests of the rules that sit between them (the
//! acknowledgement rule above all) without a database or a broker.
//!
//! The test drives both ends by hand: it feeds the [`ScriptedSource`] change by change through a
//! [`Script`], and confirms or fails each batch the [`HandSink`] received through a [`Broker`], in
//! any order, while the pipeline runs concurrently in the same task.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::encode::Message;
use crate::event::{Event, Origin};
use crate::lsn::Lsn;
use crate::sink::{Delivery, Sink, SinkError};
use crate::source::{Change, Source, SourceError};

/// How long a test waits for the code under test to reach a state before failing.
const PATIENCE: Duration = Duration::from_secs(5);

/// An outbox event of `aggregate`, read at `lsn`.
pub fn event(id: &str, aggregate: &str, lsn: u64) -> Event {
    Event {
        id: id.to_owned(),
        aggregate_type: "order".to_owned(),
        aggregate_id: aggregate.to_owned(),
        event_type: "created".to_owned(),
        payload: "{}".to_owned(),
        headers: Vec::new(),
        columns: Vec::new(),
        created_at: None,
        origin: Origin::Commit(Lsn(lsn)),
        transaction_id: None,
        committed_at: SystemTime::now(),
    }
}

/// A source that yields what the test feeds it, and records what the pipeline acknowledged.
pub struct ScriptedSource {
    changes: mpsc::UnboundedReceiver<Result<Change, SourceError>>,
    acknowledged: Arc<Mutex<Vec<Lsn>>>,
}

/// The test's end of a [`ScriptedSource`].
#[derive(Clone)]
pub struct Script {
    changes: mpsc::UnboundedSender<Result<Change, SourceError>>,
    acknowledged: Arc<Mutex<Vec<Lsn>>>,
}

pub fn scripted_source() -> (ScriptedSource, Script) {
    let (tx, rx) = mpsc::unbounded_channel();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    (
        ScriptedSource {
            changes: rx,
            acknowledged: acknowledged.clone(),
        },
        Script {
            changes: tx,
            acknowledged,
        },
    )
}

impl Script {
    pub fn send(&self, change: Change) {
        self.yield_next(Ok(change));
    }

    /// The source's next call fails with `error`, as a database would.
    pub fn fail(&self, error: SourceError) {
        self.yield_next(Err(error));
    }

    fn yield_next(&self, next: Result<Change, SourceError>) {
        self.changes
            .send(next)
            .expect("the source outlives the test's script");
    }

    pub fn event(&self, event: Event) {
        self.send(Change::Event(event));
    }

    /// The end of a transaction: everything sent before may be acknowledged at `lsn`.
    pub fn commit(&self, lsn: u64) {
        self.send(Change::Position(Lsn(lsn)));
    }

    /// Every position the pipeline acknowledged, in order.
    pub fn acknowledged(&self) -> Vec<Lsn> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// The highest position acknowledged so far.
    pub fn acked(&self) -> Lsn {
        self.acknowledged().into_iter().max().unwrap_or(Lsn::ZERO)
    }

    /// Waits until the pipeline has acknowledged `lsn` or more.
    pub async fn until_acked(&self, lsn: u64) {
        until(&format!("position {lsn} acknowledged"), || {
            self.acked() >= Lsn(lsn)
        })
        .await;
    }
}

impl Source for ScriptedSource {
    const MODE: &'static str = "scripted";
    const POSITION_IS_LSN: bool = true;

    async fn next(&mut self) -> Result<Change, SourceError> {
        // A script that ran out behaves like a quiet database: nothing more, ever.
        match self.changes.recv().await {
            Some(next) => next,
            None => std::future::pending().await,
        }
    }

    async fn acknowledge(&mut self, position: Lsn, _reply: bool) -> Result<(), SourceError> {
        self.acknowledged.lock().unwrap().push(position);
        Ok(())
    }

    async fn finish(mut self, position: Lsn) -> Result<(), SourceError> {
        self.acknowledge(position, false).await
    }
}

/// A batch the sink received, with the means to confirm or fail it.
struct Received {
    batch: Vec<Message>,
    outcome: Option<oneshot::Sender<Result<(), SinkError>>>,
}

/// A sink whose broker is the test: every batch stays unconfirmed until the test says otherwise.
pub struct HandSink {
    received: Arc<Mutex<Vec<Received>>>,
}

/// The test's end of a [`HandSink`]: batches by the order they were published.
#[derive(Clone)]
pub struct Broker {
    received: Arc<Mutex<Vec<Received>>>,
}

pub fn hand_sink() -> (HandSink, Broker) {
    let received = Arc::new(Mutex::new(Vec::new()));
    (
        HandSink {
            received: received.clone(),
        },
        Broker { received },
    )
}

#[async_trait]
impl Sink for HandSink {
    async fn publish(&mut self, batch: Vec<Message>) -> Result<Delivery, SinkError> {
        let (tx, rx) = oneshot::channel();
        self.received.lock().unwrap().push(Received {
            batch,
            outcome: Some(tx),
        });
        Ok(Box::pin(async move {
            // A test that drops the broker ends the session like a lost connection.
            rx.await.unwrap_or_else(|_| {
                Err(SinkError::Broker {
                    sink: "hand",
                    reason: "the test dropped the batch".to_owned(),
                })
            })
        }))
    }

    fn name(&self) -> &'static str {
        "hand"
    }
}

impl Broker {
    /// How many batches the sink has received.
    pub fn batches(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// The ids of batch `n`'s events, with their destinations.
    pub fn batch(&self, n: usize) -> Vec<(String, String)> {
        self.received.lock().unwrap()[n]
            .batch
            .iter()
            .map(|m| (m.id.clone(), m.destination.clone()))
            .collect()
    }

    /// Every event id received, in publishing order.
    pub fn ids(&self) -> Vec<String> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|r| r.batch.iter().map(|message| message.id.clone()))
            .collect()
    }

    /// Waits until the sink has received `n` batches.
    pub async fn until_batches(&self, n: usize) {
        until(&format!("{n} batches published"), || self.batches() >= n).await;
    }

    pub fn confirm(&self, n: usize) {
        self.settle(n, Ok(()));
    }

    pub fn fail(&self, n: usize, error: SinkError) {
        self.settle(n, Err(error));
    }

    fn settle(&self, n: usize, outcome: Result<(), SinkError>) {
        let sender = self.received.lock().unwrap()[n]
            .outcome
            .take()
            .expect("each batch is settled once");
        // The pipeline may have ended already and dropped the delivery; that is its business.
        let _ = sender.send(outcome);
    }
}

/// Waits, yielding to the code under test, until `ready` holds; panics naming `what` after a while.
pub async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    harness::poll_until(PATIENCE, what, || std::future::ready(ready()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Lets the code under test run until it has nothing left to do right now.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}
