//! Money: a decimal amount in one currency. Never a float, so sums are exact.

use rust_decimal::Decimal;

use super::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(Decimal::ZERO, currency)
    }

    /// The amount with exactly as many fraction digits as the currency allows (e.g. `10.00` USD,
    /// `1000` JPY), which is how amounts are shown and published.
    pub fn amount(&self) -> Decimal {
        let mut amount = self.amount;
        amount.rescale(self.currency.fraction_digits());
        amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn times(&self, factor: u32) -> Money {
        Money::new(self.amount * Decimal::from(factor), self.currency)
    }

    /// Callers add only amounts of one order, which the aggregate keeps in one currency.
    pub fn plus(&self, other: &Money) -> Money {
        debug_assert_eq!(self.currency, other.currency);
        Money::new(self.amount + other.amount, self.currency)
    }
}
