//! An order line and the bounds on its quantity and unit price.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Currency, DomainError, Money};

/// The most one unit may cost, in units of its currency: a guard against typos and overflowing totals.
pub const MAX_UNIT_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 10_000;

    pub fn new(value: i64) -> Result<Quantity, DomainError> {
        u32::try_from(value)
            .ok()
            .filter(|v| (Self::MIN..=Self::MAX).contains(v))
            .map(Quantity)
            .ok_or(DomainError::QuantityOutOfRange {
                value,
                min: Self::MIN,
                max: Self::MAX,
            })
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A positive price of one unit, with no more fraction digits than its currency has (at most 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitPrice(Money);

impl UnitPrice {
    pub fn new(amount: Decimal, currency: Currency) -> Result<UnitPrice, DomainError> {
        check_unit_price(amount, currency.fraction_digits())?;
        Ok(UnitPrice(Money::new(amount, currency)))
    }

    pub fn money(&self) -> Money {
        self.0
    }
}

/// The unit-price rules that do not need the currency beyond its fraction digits, so that a price can be
/// checked even next to an unknown currency code.
pub fn check_unit_price(amount: Decimal, max_fraction_digits: u32) -> Result<(), DomainError> {
    if amount <= Decimal::ZERO {
        return Err(DomainError::PriceNotPositive);
    }
    if amount > MAX_UNIT_PRICE {
        return Err(DomainError::PriceTooHigh {
            max: MAX_UNIT_PRICE,
        });
    }
    // Strictly what was written: "10.000" has three fraction digits even though it equals 10.00.
    if amount.scale() > max_fraction_digits {
        return Err(DomainError::TooManyFractionDigits {
            max: max_fraction_digits,
            found: amount.scale(),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    product_id: Uuid,
    quantity: Quantity,
    unit_price: UnitPrice,
}

impl OrderLine {
    pub fn new(product_id: Uuid, quantity: Quantity, unit_price: UnitPrice) -> OrderLine {
        OrderLine {
            product_id,
            quantity,
            unit_price,
        }
    }

    pub fn product_id(&self) -> Uuid {
        self.product_id
    }

    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    pub fn unit_price(&self) -> Money {
        self.unit_price.money()
    }

    pub fn currency(&self) -> Currency {
        self.unit_price.money().currency()
    }

    pub fn total(&self) -> Money {
        self.unit_price.money().times(self.quantity.get())
    }
}
