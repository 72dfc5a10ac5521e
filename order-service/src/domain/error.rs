//! The business rules an order can break.

use rust_decimal::Decimal;

use super::OrderStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order has at most {max} lines, not {count}")]
    TooManyLines { count: usize, max: usize },
    #[error("quantity must be between {min} and {max}, not {value}")]
    QuantityOutOfRange { value: i64, min: u32, max: u32 },
    #[error("unit price must be greater than 0")]
    PriceNotPositive,
    #[error("unit price must be at most {max}")]
    PriceTooHigh { max: Decimal },
    #[error("unit price may have at most {max} fraction digits, not {found}")]
    TooManyFractionDigits { max: u32, found: u32 },
    #[error("{0:?} is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("line {line} is in {found} but the order is in {expected}: all lines of an order share one currency")]
    MixedCurrencies {
        line: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("the order is {} and can no longer be confirmed", .0.as_str())]
    NotConfirmable(OrderStatus),
    #[error("the order is {} and can no longer be cancelled", .0.as_str())]
    NotCancellable(OrderStatus),
    #[error("the order is {} and cannot be invoiced", .0.as_str())]
    NotInvoiceable(OrderStatus),
}
