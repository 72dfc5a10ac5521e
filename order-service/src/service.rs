//! The application service: each use case loads or creates the aggregate, lets it decide, and saves the
//! new state together with the event that reports it in one transaction, so the outbox never holds an
//! event for a change that did not happen, nor misses one that did.
//!
//! Confirming an order starts its invoicing saga (`docs/SAGA.md`): the saga row is written in the
//! transaction that writes `OrderConfirmed`, its first command; every later input (a reply, a deadline,
//! a cancel request) changes the saga, the order and the outbox in one transaction, under optimistic
//! locking on both the saga's and the order's version.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use contracts::Event;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::correlation::CorrelationId;
use crate::domain::{DomainError, Order, OrderLine, Transition};
use crate::events;
use crate::replies::Reply;
use crate::saga::{CancelReason, Effect, Input, Outcome, Saga, Step};
use crate::store::{orders, outbox, processed, sagas, Pool, StoreError};

/// How often a state change is retried after losing a race to another change of the same order. A retry
/// reloads the order, so the loser usually finds the winner's state and answers from it.
const MAX_ATTEMPTS: u32 = 3;

/// How long a saga step waits for its reply unless configured otherwise.
pub const DEFAULT_SAGA_TIMEOUT: Duration = Duration::seconds(30);

/// Most overdue sagas one sweep handles; the next sweep takes the rest.
const SWEEP_BATCH: i64 = 100;

/// The reason the void command gives when the saga voids an invoice that arrived after the order was
/// cancelled.
const LATE_INVOICE_REASON: &str = "late-invoice";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("order {0} kept changing concurrently; try again")]
    Contended(Uuid),
    #[error("order {0} has no saga: it was never confirmed")]
    NoSaga(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<deadpool_postgres::PoolError> for ServiceError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        ServiceError::Store(error.into())
    }
}

impl From<tokio_postgres::Error> for ServiceError {
    fn from(error: tokio_postgres::Error) -> Self {
        ServiceError::Store(error.into())
    }
}

/// A state change of the aggregate, e.g. [`Order::confirm`].
type Command = fn(&mut Order, DateTime<Utc>) -> Result<Transition, DomainError>;

#[derive(Clone)]
pub struct OrderService {
    pool: Pool,
    saga_timeout: Duration,
}

/// An order with its invoicing saga, which it has once it was confirmed.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order: Order,
    pub saga: Option<Saga>,
}

/// What an input to a saga did: the order and saga after it, and how it was taken.
#[derive(Debug, Clone)]
pub struct Taken {
    pub view: OrderView,
    pub outcome: Outcome,
}

impl OrderService {
    pub fn new(pool: Pool) -> OrderService {
        OrderService {
            pool,
            saga_timeout: DEFAULT_SAGA_TIMEOUT,
        }
    }

    /// How long each saga step waits for its reply before it compensates or retries.
    pub fn with_saga_timeout(self, saga_timeout: Duration) -> OrderService {
        OrderService {
            saga_timeout,
            ..self
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Places a new order and records `OrderCreated`.
    pub async fn place(
        &self,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        correlation: &CorrelationId,
    ) -> Result<Order, ServiceError> {
        let order = Order::place(Uuid::new_v4(), customer_id, lines, now())?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        orders::insert(&*tx, &order, correlation).await?;
        let event_id = outbox::append(&*tx, &events::order_created(&order), correlation).await?;
        tx.commit().await?;
        tracing::info!(order_id = %order.id(), %event_id, "order placed");
        Ok(order)
    }

    /// Confirms the order, records `OrderConfirmed` v1 and starts the order's saga, all in one
    /// transaction; returns the order unchanged, with its saga, if it already was confirmed.
    pub async fn confirm(
        &self,
        id: Uuid,
        correlation: &CorrelationId,
    ) -> Result<OrderView, ServiceError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let mut order = orders::load(&*tx, id)
                .await?
                .ok_or(ServiceError::NotFound(id))?;
            let read_version = order.version();
            let now = now();
            if order.confirm(now)? == Transition::Unchanged {
                tracing::info!(order_id = %id, status = order.status().as_str(), "order already in that state; no event");
                let saga = sagas::load_by_order(&*tx, id).await?.map(|(saga, _)| saga);
                return Ok(OrderView { order, saga });
            }
            let (saga, effects) = Saga::start(Uuid::new_v4(), id, now, self.saga_timeout);
            perform(&*tx, &mut order, effects, saga.step, correlation, now).await?;
            if !orders::update(&*tx, &order, read_version).await? {
                tracing::info!(order_id = %id, attempt, "order changed concurrently; reloading");
                continue;
            }
            sagas::insert(&*tx, &saga, correlation, now).await?;
            tx.commit().await?;
            tracing::info!(order_id = %id, saga_id = %saga.id, step = saga.step.as_str(), "order confirmed; saga started");
            return Ok(OrderView {
                order,
                saga: Some(saga),
            });
        }
        Err(ServiceError::Contended(id))
    }

    /// Cancels the order. An order never confirmed is cancelled at once with `OrderCancelled`
    /// (`requested`), or returned unchanged if it already was; a confirmed one goes through its saga,
    /// which refuses while the invoice is being decided and otherwise voids the invoice first.
    pub async fn cancel(
        &self,
        id: Uuid,
        correlation: &CorrelationId,
    ) -> Result<OrderView, ServiceError> {
        let has_saga = {
            let client = self.pool.get().await?;
            sagas::load_by_order(&**client, id).await?.is_some()
        };
        if !has_saga {
            let order = self
                .change(id, correlation, Order::cancel, |order, at| {
                    events::order_cancelled(order, CancelReason::Requested.code(), at)
                })
                .await?;
            return Ok(OrderView { order, saga: None });
        }
        let taken = self.take(id, Input::CancelRequested, None).await?;
        if taken.outcome == Outcome::Refused {
            return Err(DomainError::NotCancellable(taken.view.order.status()).into());
        }
        Ok(taken.view)
    }

    /// The correlation id order `id` was placed under, for a request about it that brings none.
    pub async fn correlation_of(&self, id: Uuid) -> Result<Option<CorrelationId>, ServiceError> {
        let client = self.pool.get().await?;
        Ok(orders::correlation(&**client, id).await?)
    }

    pub async fn get(&self, id: Uuid) -> Result<OrderView, ServiceError> {
        let client = self.pool.get().await?;
        let order = orders::load(&**client, id)
            .await?
            .ok_or(ServiceError::NotFound(id))?;
        let saga = sagas::load_by_order(&**client, id)
            .await?
            .map(|(saga, _)| saga);
        Ok(OrderView { order, saga })
    }

    /// Gives `input` (with the event id of a reply) to the order's saga now.
    pub async fn take(
        &self,
        order_id: Uuid,
        input: Input,
        event_id: Option<Uuid>,
    ) -> Result<Taken, ServiceError> {
        let taken = self.take_at(order_id, input, event_id, None, now()).await?;
        Ok(taken.expect("only a deduplicated reply can have been processed before"))
    }

    /// Gives a reply from the invoice-service to its order's saga, once: the reply's event id is
    /// recorded in `processed_events` in the transaction that applies it, and `None` means it was
    /// processed before (a redelivery) and nothing changed.
    pub async fn take_reply(&self, reply: &Reply) -> Result<Option<Taken>, ServiceError> {
        self.take_at(
            reply.order_id,
            reply.input,
            Some(reply.event_id),
            Some(reply),
            now(),
        )
        .await
    }

    /// Times out every saga whose deadline is at or before `now`; returns how many it handled.
    pub async fn sweep_overdue(&self, now: DateTime<Utc>) -> Result<usize, ServiceError> {
        let overdue = {
            let client = self.pool.get().await?;
            sagas::overdue(&**client, now, SWEEP_BATCH).await?
        };
        for order_id in &overdue {
            if let Some(taken) = self
                .take_at(*order_id, Input::DeadlinePassed, None, None, now)
                .await?
            {
                tracing::info!(%order_id, outcome = taken.outcome.as_str(), "saga deadline passed");
            }
        }
        Ok(overdue.len())
    }

    /// Optimistic locking on the saga's version (and the order's, if an effect changes it): of two
    /// inputs taken at once, one commits and the other reloads and is taken by the saga as it now is.
    /// Every input is recorded in the saga's history, in the transaction of its effects, whose events
    /// carry the correlation id the saga started with. With `dedup`, a reply already in
    /// `processed_events` is not taken again (`None`), and a new one is recorded there.
    async fn take_at(
        &self,
        order_id: Uuid,
        input: Input,
        event_id: Option<Uuid>,
        dedup: Option<&Reply>,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, ServiceError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            if let Some(reply) = dedup {
                if processed::contains(&*tx, reply).await? {
                    tracing::info!(%order_id, event_id = %reply.event_id, "reply already processed; redelivery ignored");
                    return Ok(None);
                }
            }
            let mut order = orders::load(&*tx, order_id)
                .await?
                .ok_or(ServiceError::NotFound(order_id))?;
            let (mut saga, correlation) = sagas::load_by_order(&*tx, order_id)
                .await?
                .ok_or(ServiceError::NoSaga(order_id))?;
            let (order_version, saga_version) = (order.version(), saga.version);
            let handled = saga.handle(input, event_id, now, self.saga_timeout);
            perform(
                &*tx,
                &mut order,
                handled.effects,
                saga.step,
                &correlation,
                now,
            )
            .await?;
            let order_saved = order.version() == order_version
                || orders::update(&*tx, &order, order_version).await?;
            if !order_saved || !sagas::update(&*tx, &saga, saga_version, now).await? {
                tracing::info!(%order_id, attempt, "saga changed concurrently; reloading");
                continue;
            }
            if let Some(reply) = dedup {
                // A concurrent transaction recorded it first; dropping ours rolls everything back.
                if !processed::insert(&*tx, reply, handled.outcome).await? {
                    return Ok(None);
                }
            }
            tx.commit().await?;
            tracing::info!(
                %order_id,
                saga_id = %saga.id,
                input = input.as_str(),
                outcome = handled.outcome.as_str(),
                step = saga.step.as_str(),
                correlation_id = %correlation,
                "saga input taken"
            );
            return Ok(Some(Taken {
                view: OrderView {
                    order,
                    saga: Some(saga),
                },
                outcome: handled.outcome,
            }));
        }
        Err(ServiceError::Contended(order_id))
    }

    /// Optimistic concurrency: the order is read without a lock and saved only if its version is still
    /// the one read. Of two concurrent changes one saves and writes its event; the other reloads, and a
    /// repeated command then finds nothing to do and writes no event.
    async fn change<E: Event>(
        &self,
        id: Uuid,
        correlation: &CorrelationId,
        command: Command,
        event: fn(&Order, DateTime<Utc>) -> E,
    ) -> Result<Order, ServiceError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let mut order = orders::load(&*tx, id)
                .await?
                .ok_or(ServiceError::NotFound(id))?;
            let read_version = order.version();
            let now = now();
            if command(&mut order, now)? == Transition::Unchanged {
                tracing::info!(order_id = %id, status = order.status().as_str(), "order already in that state; no event");
                return Ok(order);
            }
            if !orders::update(&*tx, &order, read_version).await? {
                tracing::info!(order_id = %id, attempt, "order changed concurrently; reloading");
                continue;
            }
            let event_id = outbox::append(&*tx, &event(&order, now), correlation).await?;
            tx.commit().await?;
            tracing::info!(
                order_id = %id,
                %event_id,
                event_type = E::EVENT_TYPE,
                status = order.status().as_str(),
                "order changed"
            );
            return Ok(order);
        }
        Err(ServiceError::Contended(id))
    }
}

/// Applies a saga's effects to `order` and writes their events; `step` is where the saga now is. The
/// caller saves the order.
async fn perform(
    client: &impl GenericClient,
    order: &mut Order,
    effects: &[Effect],
    step: Step,
    correlation: &CorrelationId,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    for effect in effects {
        let event_id = match effect {
            Effect::IssueInvoice => {
                outbox::append(client, &events::order_confirmed(order, now), correlation).await?
            }
            Effect::VoidInvoice => {
                let reason = if step == Step::VoidingLateInvoice {
                    LATE_INVOICE_REASON
                } else {
                    CancelReason::Requested.code()
                };
                let command = events::order_cancellation_requested(order, reason, now);
                outbox::append(client, &command, correlation).await?
            }
            Effect::MarkOrderInvoiced => {
                order.mark_invoiced()?;
                continue;
            }
            Effect::CancelOrder(reason) => {
                order.compensate(now)?;
                let event = events::order_cancelled(order, reason.code(), now);
                outbox::append(client, &event, correlation).await?
            }
        };
        // At info, with the saga's correlation id: the command or compensation the saga sent, which a
        // sweeper's timeout or a reply's span would not name otherwise.
        tracing::info!(order_id = %order.id(), %event_id, ?effect, correlation_id = %correlation, "saga effect written");
    }
    Ok(())
}

/// PostgreSQL keeps microseconds: truncating the clock to them makes the response, the event and any
/// later read of the order show the same instant.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
