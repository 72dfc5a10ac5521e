//! The Order aggregate: its lines, its status life cycle and the version that orders its changes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Currency, DomainError, Money, OrderLine};

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Created,
    Confirmed,
    /// Confirmed and invoiced: the invoicing saga's success.
    Invoiced,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Invoiced => "INVOICED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Created,
            OrderStatus::Confirmed,
            OrderStatus::Invoiced,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// What a command did to the order: a change, which must be saved and published, or nothing, because
/// the order already was in the requested state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Changed,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    id: Uuid,
    customer_id: Uuid,
    status: OrderStatus,
    lines: Vec<OrderLine>,
    version: i64,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
}

/// An order as stored, for [`Order::restore`]; the store's constraints guarantee the invariants.
#[derive(Debug, Clone)]
pub struct OrderSnapshot {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl Order {
    /// A new order in status CREATED at version 1, if its lines make a valid order.
    pub fn place(
        id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        now: DateTime<Utc>,
    ) -> Result<Order, DomainError> {
        let first = lines.first().ok_or(DomainError::NoLines)?;
        if lines.len() > MAX_LINES {
            return Err(DomainError::TooManyLines {
                count: lines.len(),
                max: MAX_LINES,
            });
        }
        let currency = first.currency();
        if let Some((line, other)) = lines
            .iter()
            .enumerate()
            .find(|(_, line)| line.currency() != currency)
        {
            return Err(DomainError::MixedCurrencies {
                line,
                expected: currency.code(),
                found: other.currency().code(),
            });
        }
        Ok(Order {
            id,
            customer_id,
            status: OrderStatus::Created,
            lines,
            version: 1,
            created_at: now,
            confirmed_at: None,
            cancelled_at: None,
        })
    }

    pub fn restore(snapshot: OrderSnapshot) -> Order {
        Order {
            id: snapshot.id,
            customer_id: snapshot.customer_id,
            status: snapshot.status,
            lines: snapshot.lines,
            version: snapshot.version,
            created_at: snapshot.created_at,
            confirmed_at: snapshot.confirmed_at,
            cancelled_at: snapshot.cancelled_at,
        }
    }

    /// CREATED becomes CONFIRMED; confirming a confirmed (or already invoiced) order changes nothing; a
    /// cancelled order cannot be confirmed.
    pub fn confirm(&mut self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        match self.status {
            OrderStatus::Created => {
                self.status = OrderStatus::Confirmed;
                self.confirmed_at = Some(now);
                self.version += 1;
                Ok(Transition::Changed)
            }
            OrderStatus::Confirmed | OrderStatus::Invoiced => Ok(Transition::Unchanged),
            OrderStatus::Cancelled => Err(DomainError::NotConfirmable(self.status)),
        }
    }

    /// CONFIRMED becomes INVOICED once the invoice is issued; invoicing an invoiced order changes
    /// nothing; neither a new nor a cancelled order can be invoiced.
    pub fn mark_invoiced(&mut self) -> Result<Transition, DomainError> {
        match self.status {
            OrderStatus::Confirmed => {
                self.status = OrderStatus::Invoiced;
                self.version += 1;
                Ok(Transition::Changed)
            }
            OrderStatus::Invoiced => Ok(Transition::Unchanged),
            OrderStatus::Created | OrderStatus::Cancelled => {
                Err(DomainError::NotInvoiceable(self.status))
            }
        }
    }

    /// The invoicing saga's compensation: a CONFIRMED or INVOICED order becomes CANCELLED (its invoice
    /// rejected, timed out or voided); compensating a cancelled order changes nothing. A new order has
    /// no saga to compensate.
    pub fn compensate(&mut self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        match self.status {
            OrderStatus::Confirmed | OrderStatus::Invoiced => {
                self.status = OrderStatus::Cancelled;
                self.cancelled_at = Some(now);
                self.version += 1;
                Ok(Transition::Changed)
            }
            OrderStatus::Cancelled => Ok(Transition::Unchanged),
            OrderStatus::Created => Err(DomainError::NotCancellable(self.status)),
        }
    }

    /// CREATED becomes CANCELLED; cancelling a cancelled order changes nothing; a confirmed or invoiced
    /// order cannot be cancelled this way, only by the invoicing saga ([`Order::compensate`]).
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        match self.status {
            OrderStatus::Created => {
                self.status = OrderStatus::Cancelled;
                self.cancelled_at = Some(now);
                self.version += 1;
                Ok(Transition::Changed)
            }
            OrderStatus::Cancelled => Ok(Transition::Unchanged),
            OrderStatus::Confirmed | OrderStatus::Invoiced => {
                Err(DomainError::NotCancellable(self.status))
            }
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn customer_id(&self) -> Uuid {
        self.customer_id
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    /// Starts at 1 and grows by one with every change, which is what optimistic concurrency compares.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.confirmed_at
    }

    pub fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.cancelled_at
    }

    /// The one currency of all lines.
    pub fn currency(&self) -> Currency {
        self.lines[0].currency()
    }

    pub fn total(&self) -> Money {
        self.lines
            .iter()
            .fold(Money::zero(self.currency()), |sum, line| {
                sum.plus(&line.total())
            })
    }
}
