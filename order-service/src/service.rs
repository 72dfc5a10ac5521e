//! The application service: each use case loads or creates the aggregate, lets it decide, and saves the
//! new state together with the event that reports it in one transaction, so the outbox never holds an
//! event for a change that did not happen, nor misses one that did.

use chrono::{DateTime, SubsecRound, Utc};
use contracts::Event;
use uuid::Uuid;

use crate::correlation::CorrelationId;
use crate::domain::{DomainError, Order, OrderLine, Transition};
use crate::events;
use crate::store::{orders, outbox, Pool, StoreError};

/// How often a state change is retried after losing a race to another change of the same order. A retry
/// reloads the order, so the loser usually finds the winner's state and answers from it.
const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("order {0} kept changing concurrently; try again")]
    Contended(Uuid),
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
}

impl OrderService {
    pub fn new(pool: Pool) -> OrderService {
        OrderService { pool }
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
        orders::insert(&*tx, &order).await?;
        let event_id = outbox::append(&*tx, &events::order_created(&order), correlation).await?;
        tx.commit().await?;
        tracing::info!(order_id = %order.id(), %event_id, "order placed");
        Ok(order)
    }

    /// Confirms the order and records `OrderConfirmed` v1, or returns it unchanged if it already was.
    pub async fn confirm(
        &self,
        id: Uuid,
        correlation: &CorrelationId,
    ) -> Result<Order, ServiceError> {
        self.change(id, correlation, Order::confirm, events::order_confirmed)
            .await
    }

    /// Cancels the order and records `OrderCancelled`, or returns it unchanged if it already was.
    pub async fn cancel(
        &self,
        id: Uuid,
        correlation: &CorrelationId,
    ) -> Result<Order, ServiceError> {
        self.change(id, correlation, Order::cancel, events::order_cancelled)
            .await
    }

    pub async fn get(&self, id: Uuid) -> Result<Order, ServiceError> {
        let client = self.pool.get().await?;
        orders::load(&**client, id)
            .await?
            .ok_or(ServiceError::NotFound(id))
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

/// PostgreSQL keeps microseconds: truncating the clock to them makes the response, the event and any
/// later read of the order show the same instant.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
