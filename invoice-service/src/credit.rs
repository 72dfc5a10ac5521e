//! The credit limit: a customer's open invoices (issued and not voided) in the order's currency, plus
//! the new invoice, must stay within the configured limit. No limit configured means none applies.

use rust_decimal::Decimal;

/// The `reason` of `InvoiceRejected` for an order over the limit.
pub const CREDIT_LIMIT_EXCEEDED: &str = "credit-limit-exceeded";

/// Why an order is not invoiced: a stable code and a detail for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

/// Whether an invoice over `total` may be issued to a customer with `open` already outstanding.
pub fn check(
    limit: Option<Decimal>,
    open: Decimal,
    total: Decimal,
    currency: &str,
) -> Result<(), Refusal> {
    let Some(limit) = limit else {
        return Ok(());
    };
    // Decimal arithmetic on amounts bounded by the contracts' 16 integer digits cannot overflow.
    let exposure = open + total;
    if exposure <= limit {
        return Ok(());
    }
    Err(Refusal {
        reason: CREDIT_LIMIT_EXCEEDED,
        detail: format!(
            "open invoices {open} {currency} plus this order's {total} {currency} exceed the credit limit {limit} {currency}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn without_a_limit_everything_is_invoiced() {
        assert_eq!(check(None, d("1e20"), d("1"), "USD"), Ok(()));
    }

    #[test]
    fn up_to_the_limit_inclusive_is_invoiced() {
        assert_eq!(
            check(Some(d("50.00")), d("24.50"), d("25.50"), "USD"),
            Ok(())
        );
        assert_eq!(check(Some(d("50.00")), d("0"), d("50.00"), "USD"), Ok(()));
    }

    #[test]
    fn beyond_the_limit_is_refused_with_the_amounts() {
        let refusal = check(Some(d("50.00")), d("25.50"), d("25.50"), "EUR").unwrap_err();
        assert_eq!(refusal.reason, "credit-limit-exceeded");
        assert_eq!(
            refusal.detail,
            "open invoices 25.50 EUR plus this order's 25.50 EUR exceed the credit limit 50.00 EUR"
        );
        assert!(check(Some(d("0")), d("0"), d("0.01"), "EUR").is_err());
    }
}
