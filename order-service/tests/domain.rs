//! The Order aggregate's rules, without a database: line count, one currency, quantity and price bounds,
//! exact totals, and the status life cycle with its version.

use chrono::Utc;
use order_service::domain::{
    Currency, DomainError, Order, OrderLine, OrderStatus, Quantity, Transition, UnitPrice,
    MAX_LINES,
};
use rust_decimal::Decimal;
use uuid::Uuid;

fn price(text: &str, currency: &str) -> Result<UnitPrice, DomainError> {
    UnitPrice::new(text.parse().unwrap(), Currency::parse(currency).unwrap())
}

fn line(quantity: i64, unit_price: &str, currency: &str) -> OrderLine {
    OrderLine::new(
        Uuid::new_v4(),
        Quantity::new(quantity).unwrap(),
        price(unit_price, currency).unwrap(),
    )
}

fn place(lines: Vec<OrderLine>) -> Result<Order, DomainError> {
    Order::place(Uuid::new_v4(), Uuid::new_v4(), lines, Utc::now())
}

#[test]
fn an_order_has_between_one_and_max_lines() {
    assert_eq!(place(vec![]).unwrap_err(), DomainError::NoLines);
    let lines = |n| (0..n).map(|_| line(1, "1.00", "USD")).collect::<Vec<_>>();
    assert_eq!(place(lines(MAX_LINES)).unwrap().lines().len(), 100);
    assert_eq!(
        place(lines(MAX_LINES + 1)).unwrap_err(),
        DomainError::TooManyLines {
            count: 101,
            max: 100
        }
    );
}

#[test]
fn all_lines_share_one_currency() {
    let error = place(vec![
        line(1, "1.00", "USD"),
        line(1, "1.00", "USD"),
        line(1, "1.00", "EUR"),
    ])
    .unwrap_err();
    assert_eq!(
        error,
        DomainError::MixedCurrencies {
            line: 2,
            expected: "USD",
            found: "EUR"
        }
    );
}

#[test]
fn quantity_is_from_1_to_10000() {
    for bad in [i64::MIN, -1, 0, 10_001, i64::from(u32::MAX) + 1] {
        assert!(Quantity::new(bad).is_err(), "{bad}");
    }
    assert_eq!(Quantity::new(1).unwrap().get(), 1);
    assert_eq!(Quantity::new(10_000).unwrap().get(), 10_000);
}

#[test]
fn unit_price_is_positive_bounded_and_in_whole_minor_units() {
    assert_eq!(
        price("0", "USD").unwrap_err(),
        DomainError::PriceNotPositive
    );
    assert_eq!(
        price("-0.01", "USD").unwrap_err(),
        DomainError::PriceNotPositive
    );
    assert!(matches!(
        price("1000000.01", "USD").unwrap_err(),
        DomainError::PriceTooHigh { .. }
    ));
    assert!(price("1000000", "USD").is_ok());
    assert!(price("0.01", "USD").is_ok());
    assert_eq!(
        price("0.001", "USD").unwrap_err(),
        DomainError::TooManyFractionDigits { max: 2, found: 3 }
    );
    assert_eq!(
        price("1.5", "JPY").unwrap_err(),
        DomainError::TooManyFractionDigits { max: 0, found: 1 }
    );
    // Three minor units in ISO 4217, priced in at most two here.
    assert!(price("1.25", "BHD").is_ok());
    assert!(price("1.255", "BHD").is_err());
}

#[test]
fn only_iso_4217_codes_in_circulation_are_currencies() {
    for good in ["USD", "EUR", "JPY", "CHF", "XOF"] {
        assert_eq!(Currency::parse(good).unwrap().code(), good);
    }
    for bad in ["usd", "US", "USDD", "XXX", "XTS", "XAU", "ABC", ""] {
        assert_eq!(
            Currency::parse(bad).unwrap_err(),
            DomainError::UnknownCurrency(bad.to_owned())
        );
    }
}

#[test]
fn totals_are_exact_decimals() {
    let order = place(vec![
        line(1, "0.10", "USD"),
        line(2, "0.20", "USD"),
        line(10_000, "1000000", "USD"),
    ])
    .unwrap();
    assert_eq!(order.total().amount().to_string(), "10000000000.50");
    assert_eq!(order.total().amount(), Decimal::new(1_000_000_000_050, 2));
    assert_eq!(order.lines()[1].total().amount().to_string(), "0.40");
}

#[test]
fn confirm_and_cancel_follow_the_life_cycle() {
    let mut order = place(vec![line(1, "1.00", "USD")]).unwrap();
    assert_eq!((order.status(), order.version()), (OrderStatus::Created, 1));

    let mut cancelled = order.clone();
    assert_eq!(order.confirm(Utc::now()).unwrap(), Transition::Changed);
    assert_eq!(
        (order.status(), order.version()),
        (OrderStatus::Confirmed, 2)
    );
    assert!(order.confirmed_at().is_some());
    assert_eq!(order.confirm(Utc::now()).unwrap(), Transition::Unchanged);
    assert_eq!(order.version(), 2);
    assert_eq!(
        order.cancel(Utc::now()).unwrap_err(),
        DomainError::NotCancellable(OrderStatus::Confirmed)
    );

    assert_eq!(cancelled.cancel(Utc::now()).unwrap(), Transition::Changed);
    assert_eq!(cancelled.cancel(Utc::now()).unwrap(), Transition::Unchanged);
    assert_eq!(
        (cancelled.status(), cancelled.version()),
        (OrderStatus::Cancelled, 2)
    );
    assert_eq!(
        cancelled.confirm(Utc::now()).unwrap_err(),
        DomainError::NotConfirmable(OrderStatus::Cancelled)
    );
    assert!(cancelled.confirmed_at().is_none());
}

#[test]
fn the_saga_invoices_a_confirmed_order_and_compensates_a_confirmed_or_invoiced_one() {
    let mut order = place(vec![line(1, "1.00", "USD")]).unwrap();
    assert_eq!(
        order.mark_invoiced().unwrap_err(),
        DomainError::NotInvoiceable(OrderStatus::Created)
    );
    assert_eq!(
        order.clone().compensate(Utc::now()).unwrap_err(),
        DomainError::NotCancellable(OrderStatus::Created)
    );
    order.confirm(Utc::now()).unwrap();
    let mut rejected = order.clone();

    assert_eq!(order.mark_invoiced().unwrap(), Transition::Changed);
    assert_eq!(
        (order.status(), order.version()),
        (OrderStatus::Invoiced, 3)
    );
    assert_eq!(order.mark_invoiced().unwrap(), Transition::Unchanged);
    assert_eq!(order.confirm(Utc::now()).unwrap(), Transition::Unchanged);
    assert_eq!(
        order.cancel(Utc::now()).unwrap_err(),
        DomainError::NotCancellable(OrderStatus::Invoiced)
    );
    assert_eq!(order.compensate(Utc::now()).unwrap(), Transition::Changed);
    assert_eq!(
        (order.status(), order.version()),
        (OrderStatus::Cancelled, 4)
    );
    assert!(order.confirmed_at().is_some() && order.cancelled_at().is_some());
    assert_eq!(order.compensate(Utc::now()).unwrap(), Transition::Unchanged);
    assert_eq!(
        order.mark_invoiced().unwrap_err(),
        DomainError::NotInvoiceable(OrderStatus::Cancelled)
    );

    assert_eq!(
        rejected.compensate(Utc::now()).unwrap(),
        Transition::Changed
    );
    assert_eq!(
        (rejected.status(), rejected.version()),
        (OrderStatus::Cancelled, 3)
    );
    assert_eq!(OrderStatus::parse("INVOICED"), Some(OrderStatus::Invoiced));
}
