//! The end of a run: checks that the order, its events and the invoice agree, then prints the
//! order's way through the system.

use anyhow::{ensure, Result};

use crate::{text, Outcome};

/// Fails naming the first step that disagrees with the others, else prints the summary.
pub fn check_and_print(outcome: &Outcome) -> Result<()> {
    let Outcome {
        order,
        invoice,
        correlation_id,
        events,
        invoice_event_id,
        invoice_correlation_id,
        ..
    } = outcome;
    let order_id = text(&order["id"], "the order's id")?;
    let order_total = format!(
        "{} {}",
        text(&order["totals"][0]["amount"], "the order's total")?,
        text(&order["totals"][0]["currency"], "the order's currency")?
    );
    let invoice_total = format!(
        "{} {}",
        text(&invoice["total"]["amount"], "the invoice's total")?,
        text(&invoice["total"]["currency"], "the invoice's currency")?
    );
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    ensure!(
        types == ["OrderCreated", "OrderConfirmed"],
        "expected the outbox rows OrderCreated and OrderConfirmed for order {order_id}, found {types:?}"
    );
    let confirmation = &events[1];
    for event in events {
        ensure!(
            event.correlation_id == *correlation_id,
            "{} {} carries correlation id {:?}, not {correlation_id:?}",
            event.event_type,
            event.id,
            event.correlation_id
        );
        ensure!(
            event.destination == contracts::ORDER_DESTINATION,
            "{} {} went to {}, not {}",
            event.event_type,
            event.id,
            event.destination,
            contracts::ORDER_DESTINATION
        );
    }
    ensure!(
        invoice["orderId"] == order["id"],
        "the invoice is for order {}, not {order_id}",
        invoice["orderId"]
    );
    ensure!(
        invoice_total == order_total,
        "the invoice totals {invoice_total}, the order {order_total}"
    );
    ensure!(
        *invoice_event_id == confirmation.id,
        "the invoice came from event {invoice_event_id}, not from OrderConfirmed {}",
        confirmation.id
    );
    ensure!(
        invoice_correlation_id == correlation_id,
        "the invoice carries correlation id {invoice_correlation_id:?}, not {correlation_id:?}"
    );

    println!("\nWhat flowed:");
    println!(
        "  order        {order_id}  {}  {order_total}  (orders database)",
        text(&order["status"], "the order's status")?
    );
    for event in events {
        println!(
            "  event        {:<14}  id {}  outbox row -> {} at LSN {}",
            event.event_type, event.id, event.destination, event.lsn
        );
    }
    println!(
        "  invoice      {}  {invoice_total}  from event {invoice_event_id}  (invoices database)",
        text(&invoice["number"], "the invoice's number")?
    );
    println!("  correlation  {correlation_id}  on both requests, both outbox rows and the invoice");
    Ok(())
}
