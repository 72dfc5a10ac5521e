//! The invoice: what a confirmed order is billed as, and the rules that make an order billable.
//!
//! An [`InvoiceDraft`] is derived from an `OrderConfirmed` event and checked before anything is
//! written; the store gives it its number and issue time, making it an [`Invoice`].

use brokers::Rejection;
use chrono::{DateTime, Utc};
use contracts::OrderConfirmedV2;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

/// An issued invoice, as stored and as the HTTP API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    pub id: Uuid,
    /// `INV-<year>-<6+ digits>`, gap-free per calendar year (UTC).
    pub number: String,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// ISO 4217 code of every amount on the invoice.
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub total: Total,
    pub sales_channel: String,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    pub product_id: Uuid,
    pub quantity: u32,
    /// Amounts are strings on the wire, as in the events, so no client reads them as floats.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub line_total: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Total {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
}

/// An invoice before it has a number: everything the event determines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDraft {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub total: Decimal,
    pub sales_channel: String,
    pub order_confirmed_at: DateTime<Utc>,
}

/// Why a schema-valid event still cannot be billed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error("the order has no lines")]
    NoLines,
    #[error(
        "line {line} is in {found}, the order total in {expected}; an invoice has one currency"
    )]
    MixedCurrencies {
        line: usize,
        found: String,
        expected: String,
    },
    #[error("line {line}: quantity times unit price overflows")]
    Overflow { line: usize },
    #[error("the order total {stated} differs from the sum of its lines {computed}")]
    TotalMismatch { stated: Decimal, computed: Decimal },
}

impl InvoiceDraft {
    /// Bills every line at its unit price. The event's total must equal the sum of the lines, so a
    /// producer bug never turns into a wrong invoice.
    pub fn from_order(order: &OrderConfirmedV2) -> Result<InvoiceDraft, InvoiceError> {
        if order.lines.is_empty() {
            return Err(InvoiceError::NoLines);
        }
        let currency = &order.total.currency;
        let mut lines = Vec::with_capacity(order.lines.len());
        let mut computed = Decimal::ZERO;
        for (index, line) in order.lines.iter().enumerate() {
            let number = index + 1;
            if &line.currency != currency {
                return Err(InvoiceError::MixedCurrencies {
                    line: number,
                    found: line.currency.clone(),
                    expected: currency.clone(),
                });
            }
            let line_total = line
                .unit_price
                .checked_mul(Decimal::from(line.quantity))
                .ok_or(InvoiceError::Overflow { line: number })?;
            computed = computed
                .checked_add(line_total)
                .ok_or(InvoiceError::Overflow { line: number })?;
            lines.push(InvoiceLine {
                product_id: line.product_id,
                quantity: line.quantity,
                unit_price: line.unit_price,
                line_total,
            });
        }
        // Decimal equality ignores scale, so "20.0" and "20.00" agree.
        if computed != order.total.amount {
            return Err(InvoiceError::TotalMismatch {
                stated: order.total.amount,
                computed,
            });
        }
        Ok(InvoiceDraft {
            order_id: order.order_id,
            customer_id: order.customer_id,
            currency: currency.clone(),
            lines,
            total: order.total.amount,
            sales_channel: order.sales_channel.clone(),
            order_confirmed_at: order.confirmed_at,
        })
    }
}

impl From<InvoiceError> for Rejection {
    fn from(error: InvoiceError) -> Rejection {
        Rejection::new("not-billable", error.to_string())
    }
}

/// The invoice number for the `sequence`-th invoice of `year`.
pub fn invoice_number(year: i32, sequence: i64) -> String {
    format!("INV-{year}-{sequence:06}")
}

/// The credit note number for the `sequence`-th credit note of `year`.
pub fn credit_note_number(year: i32, sequence: i64) -> String {
    format!("CN-{year}-{sequence:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Money, OrderLine, OrderStatus};

    fn line(quantity: u32, price: &str, currency: &str) -> OrderLine {
        OrderLine {
            product_id: Uuid::new_v4(),
            quantity,
            unit_price: price.parse().unwrap(),
            currency: currency.to_owned(),
        }
    }

    fn order(lines: Vec<OrderLine>, total: &str) -> OrderConfirmedV2 {
        OrderConfirmedV2 {
            order_id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            status: OrderStatus::Confirmed,
            lines,
            total: Money {
                amount: total.parse().unwrap(),
                currency: "USD".to_owned(),
            },
            confirmed_at: Utc::now(),
            sales_channel: "web".to_owned(),
        }
    }

    #[test]
    fn bills_each_line_and_keeps_the_scale() {
        let draft = InvoiceDraft::from_order(&order(
            vec![line(2, "10.00", "USD"), line(1, "0.50", "USD")],
            "20.50",
        ))
        .unwrap();
        assert_eq!(draft.lines[0].line_total.to_string(), "20.00");
        assert_eq!(draft.lines[1].line_total.to_string(), "0.50");
        assert_eq!(draft.total.to_string(), "20.50");
        assert_eq!(draft.currency, "USD");
        assert_eq!(draft.sales_channel, "web");
    }

    #[test]
    fn refuses_what_cannot_be_billed() {
        assert_eq!(
            InvoiceDraft::from_order(&order(vec![], "0.00")),
            Err(InvoiceError::NoLines)
        );
        assert!(matches!(
            InvoiceDraft::from_order(&order(
                vec![line(1, "1.00", "USD"), line(1, "1.00", "EUR")],
                "2.00"
            )),
            Err(InvoiceError::MixedCurrencies { line: 2, .. })
        ));
        assert!(matches!(
            InvoiceDraft::from_order(&order(vec![line(3, "1.00", "USD")], "2.00")),
            Err(InvoiceError::TotalMismatch { .. })
        ));
        let huge = "79228162514264337593543950335";
        assert!(matches!(
            InvoiceDraft::from_order(&order(vec![line(2, huge, "USD")], "1.00")),
            Err(InvoiceError::Overflow { line: 1 })
        ));
    }

    #[test]
    fn numbers_are_zero_padded_per_year() {
        assert_eq!(invoice_number(2026, 1), "INV-2026-000001");
        assert_eq!(invoice_number(2026, 1_234_567), "INV-2026-1234567");
        assert_eq!(credit_note_number(2026, 7), "CN-2026-000007");
    }
}
