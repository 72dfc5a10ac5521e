//! The Order aggregate and its value objects. Every business rule lives here, in code, and nothing
//! here does I/O: the store persists what the aggregate decided, the HTTP layer only translates.

mod currency;
mod error;
mod line;
mod money;
mod order;

pub use currency::Currency;
pub use error::DomainError;
pub use line::{check_unit_price, OrderLine, Quantity, UnitPrice, MAX_UNIT_PRICE};
pub use money::Money;
pub use order::{Order, OrderSnapshot, OrderStatus, Transition, MAX_LINES};
