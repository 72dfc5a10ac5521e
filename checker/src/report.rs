//! The printed result of a verification: one row per aggregate, the totals, and the verdict.

use std::fmt::Write;

use crate::tally::Counts;
use crate::verify::Verification;

const HEADINGS: [&str; 5] = ["expected", "received", "lost", "duplicated", "out-of-order"];

fn row(out: &mut String, width: usize, name: &str, c: &Counts) {
    let _ = writeln!(
        out,
        "{name:<width$}  {:>8}  {:>8}  {:>4}  {:>10}  {:>12}",
        c.expected, c.received, c.lost, c.duplicated, c.out_of_order
    );
}

/// The table and the verdict, as `relay-check verify` prints them.
pub fn render(verification: &Verification) -> String {
    let tally = &verification.tally;
    let width = tally
        .per_aggregate
        .keys()
        .map(String::len)
        .chain(["aggregate".len()])
        .max()
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>4}  {:>10}  {:>12}",
        "aggregate", HEADINGS[0], HEADINGS[1], HEADINGS[2], HEADINGS[3], HEADINGS[4]
    );
    for (aggregate, counts) in &tally.per_aggregate {
        row(&mut out, width, aggregate, counts);
    }
    let totals = tally.totals();
    row(&mut out, width, "total", &totals);
    if verification.other_messages > 0 {
        let _ = writeln!(
            out,
            "{} other message(s) at the destination were not part of this run",
            verification.other_messages
        );
    }
    if tally.passed() {
        let _ = writeln!(
            out,
            "OK: nothing lost, nothing out of order ({} duplicate(s), allowed by at-least-once)",
            totals.duplicated
        );
    } else {
        let _ = writeln!(
            out,
            "FAILED: {} lost, {} out of order",
            totals.lost, totals.out_of_order
        );
    }
    out
}
