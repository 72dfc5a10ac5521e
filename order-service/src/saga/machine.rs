//! The saga's state machine as data: one [`StepSpec`] per step (its status, the command it sends and the
//! replies it waits for) and one [`Transition`] per step and input, in a table that is total by
//! construction, so no input in any step is undefined.
//!
//! The rules the table encodes:
//! - A reply moves the saga only in the step that waits for it; the same reply again is a duplicate,
//!   one that the saga stopped waiting for (after a compensation) is late, and one the protocol does
//!   not send in that step is out of order. All three are recorded and change nothing else.
//! - The order is cancelled at most once, and never after it was cancelled; it becomes INVOICED at most
//!   once, and never after it was cancelled.
//! - An invoice issued for an order that is already cancelled (a reply that arrives after the
//!   timeout's compensation) is voided, so no cancelled order keeps an open invoice.
//! - A void that gets no reply is requested again rather than given up: voiding is idempotent on the
//!   invoice-service's side, and giving up would leave an invoice open or an order wrongly invoiced.

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `OrderConfirmed` sent; waiting for `InvoiceIssued` or `InvoiceRejected`.
    Invoicing,
    /// The order is INVOICED; the saga is done unless the order is cancelled.
    Invoiced,
    /// Cancellation of an invoiced order requested; waiting for `InvoiceVoided`, the order still
    /// INVOICED.
    Voiding,
    /// The order is CANCELLED and no invoice of it is open.
    Cancelled,
    /// The order is CANCELLED, but an invoice was issued after all (a late reply); waiting for
    /// `InvoiceVoided`.
    VoidingLateInvoice,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Invoicing,
        Step::Invoiced,
        Step::Voiding,
        Step::Cancelled,
        Step::VoidingLateInvoice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Invoicing => "INVOICING",
            Step::Invoiced => "INVOICED",
            Step::Voiding => "VOIDING",
            Step::Cancelled => "CANCELLED",
            Step::VoidingLateInvoice => "VOIDING_LATE_INVOICE",
        }
    }

    pub fn parse(text: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.as_str() == text)
    }
}

/// What happens to a saga: a reply from the invoice-service, its deadline, or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Input {
    InvoiceIssued,
    InvoiceRejected,
    InvoiceVoided,
    /// The step's deadline passed without its reply.
    DeadlinePassed,
    /// `POST /orders/{id}/cancel`.
    CancelRequested,
}

impl Input {
    pub const ALL: [Input; 5] = [
        Input::InvoiceIssued,
        Input::InvoiceRejected,
        Input::InvoiceVoided,
        Input::DeadlinePassed,
        Input::CancelRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Input::InvoiceIssued => "InvoiceIssued",
            Input::InvoiceRejected => "InvoiceRejected",
            Input::InvoiceVoided => "InvoiceVoided",
            Input::DeadlinePassed => "DeadlinePassed",
            Input::CancelRequested => "CancelRequested",
        }
    }

    pub fn parse(text: &str) -> Option<Input> {
        Input::ALL.into_iter().find(|input| input.as_str() == text)
    }
}

/// The saga's state as a whole, for people and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStatus {
    /// Going forward: waiting for the invoice.
    Running,
    /// Forward path done: the order is invoiced.
    Completed,
    /// Undoing: waiting for a void.
    Compensating,
    /// Undone: the order is cancelled and nothing is left to undo.
    Compensated,
}

impl SagaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "RUNNING",
            SagaStatus::Completed => "COMPLETED",
            SagaStatus::Compensating => "COMPENSATING",
            SagaStatus::Compensated => "COMPENSATED",
        }
    }
}

/// Why the saga cancels an order; the `reason` of `OrderCancelled` v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Its invoice was voided on request.
    Requested,
    InvoiceRejected,
    /// No reply to the invoicing before the deadline.
    InvoiceTimeout,
}

impl CancelReason {
    pub fn code(self) -> &'static str {
        match self {
            CancelReason::Requested => "requested",
            CancelReason::InvoiceRejected => "invoice-rejected",
            CancelReason::InvoiceTimeout => "invoice-timeout",
        }
    }
}

/// What the order-service does in the transaction that records a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Writes `OrderConfirmed`, the invoice-service's command to invoice the order.
    IssueInvoice,
    /// Writes `OrderCancellationRequested`, the command to void the order's invoice.
    VoidInvoice,
    /// The order becomes INVOICED.
    MarkOrderInvoiced,
    /// The order becomes CANCELLED and `OrderCancelled` v2 is written with the reason: the compensation.
    CancelOrder(CancelReason),
}

/// How an input was taken. Every input is recorded in the saga's history, whatever its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It moved the saga or made it act.
    Applied,
    /// The reply or request was already applied.
    Duplicate,
    /// A reply the saga stopped waiting for when it compensated.
    Late,
    /// A reply the protocol does not send in this step.
    OutOfOrder,
    /// A deadline of a step the saga has left.
    Stale,
    /// A request the step does not allow.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Late => "late",
            Outcome::OutOfOrder => "out-of-order",
            Outcome::Stale => "stale",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Late,
            Outcome::OutOfOrder,
            Outcome::Stale,
            Outcome::Refused,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }
}

/// A step: its status, the command entering it sends, and the replies it waits for (with a deadline)
/// or none (no deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    pub step: Step,
    pub status: SagaStatus,
    pub command: Option<Effect>,
    pub awaits: &'static [Input],
}

impl StepSpec {
    /// A step that waits for a reply has a deadline.
    pub fn has_deadline(&self) -> bool {
        !self.awaits.is_empty()
    }
}

/// In the order of [`Step::ALL`].
const STEPS: [StepSpec; 5] = [
    StepSpec {
        step: Step::Invoicing,
        status: SagaStatus::Running,
        command: Some(Effect::IssueInvoice),
        awaits: &[Input::InvoiceIssued, Input::InvoiceRejected],
    },
    StepSpec {
        step: Step::Invoiced,
        status: SagaStatus::Completed,
        command: None,
        awaits: &[],
    },
    StepSpec {
        step: Step::Voiding,
        status: SagaStatus::Compensating,
        command: Some(Effect::VoidInvoice),
        awaits: &[Input::InvoiceVoided],
    },
    StepSpec {
        step: Step::Cancelled,
        status: SagaStatus::Compensated,
        command: None,
        awaits: &[],
    },
    StepSpec {
        step: Step::VoidingLateInvoice,
        status: SagaStatus::Compensating,
        command: Some(Effect::VoidInvoice),
        awaits: &[Input::InvoiceVoided],
    },
];

/// One row of the table: in step `from`, input `on` leads to step `to` with `outcome` and `effects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Step,
    pub on: Input,
    pub to: Step,
    pub outcome: Outcome,
    pub effects: &'static [Effect],
}

const fn row(
    from: Step,
    on: Input,
    to: Step,
    outcome: Outcome,
    effects: &'static [Effect],
) -> Transition {
    Transition {
        from,
        on,
        to,
        outcome,
        effects,
    }
}

/// A recorded input that changes nothing.
const fn stay(from: Step, on: Input, outcome: Outcome) -> Transition {
    row(from, on, from, outcome, &[])
}

use Input::{CancelRequested, DeadlinePassed, InvoiceIssued, InvoiceRejected, InvoiceVoided};
use Outcome::{Applied, Duplicate, Late, OutOfOrder, Refused, Stale};

/// Rows in the order of [`Step::ALL`], columns in the order of [`Input::ALL`]; the array's shape makes
/// the table total, and a test checks every row sits in its place.
const TABLE: [[Transition; 5]; 5] = [
    [
        row(
            Step::Invoicing,
            InvoiceIssued,
            Step::Invoiced,
            Applied,
            &[Effect::MarkOrderInvoiced],
        ),
        row(
            Step::Invoicing,
            InvoiceRejected,
            Step::Cancelled,
            Applied,
            &[Effect::CancelOrder(CancelReason::InvoiceRejected)],
        ),
        // No void was requested, so no invoice exists yet to have been voided.
        stay(Step::Invoicing, InvoiceVoided, OutOfOrder),
        row(
            Step::Invoicing,
            DeadlinePassed,
            Step::Cancelled,
            Applied,
            &[Effect::CancelOrder(CancelReason::InvoiceTimeout)],
        ),
        // Cancelling now would race the invoice; the caller retries once the invoice is decided.
        stay(Step::Invoicing, CancelRequested, Refused),
    ],
    [
        stay(Step::Invoiced, InvoiceIssued, Duplicate),
        // One order gets one answer; a rejection after the invoice contradicts it and is not applied.
        stay(Step::Invoiced, InvoiceRejected, OutOfOrder),
        // Voids are only sent on request, and none was made.
        stay(Step::Invoiced, InvoiceVoided, OutOfOrder),
        stay(Step::Invoiced, DeadlinePassed, Stale),
        row(
            Step::Invoiced,
            CancelRequested,
            Step::Voiding,
            Applied,
            &[Effect::VoidInvoice],
        ),
    ],
    [
        stay(Step::Voiding, InvoiceIssued, Duplicate),
        stay(Step::Voiding, InvoiceRejected, OutOfOrder),
        row(
            Step::Voiding,
            InvoiceVoided,
            Step::Cancelled,
            Applied,
            &[Effect::CancelOrder(CancelReason::Requested)],
        ),
        row(
            Step::Voiding,
            DeadlinePassed,
            Step::Voiding,
            Applied,
            &[Effect::VoidInvoice],
        ),
        stay(Step::Voiding, CancelRequested, Duplicate),
    ],
    [
        row(
            Step::Cancelled,
            InvoiceIssued,
            Step::VoidingLateInvoice,
            Late,
            &[Effect::VoidInvoice],
        ),
        stay(Step::Cancelled, InvoiceRejected, Late),
        stay(Step::Cancelled, InvoiceVoided, Duplicate),
        stay(Step::Cancelled, DeadlinePassed, Stale),
        stay(Step::Cancelled, CancelRequested, Duplicate),
    ],
    [
        stay(Step::VoidingLateInvoice, InvoiceIssued, Duplicate),
        stay(Step::VoidingLateInvoice, InvoiceRejected, Late),
        row(
            Step::VoidingLateInvoice,
            InvoiceVoided,
            Step::Cancelled,
            Applied,
            &[],
        ),
        row(
            Step::VoidingLateInvoice,
            DeadlinePassed,
            Step::VoidingLateInvoice,
            Applied,
            &[Effect::VoidInvoice],
        ),
        stay(Step::VoidingLateInvoice, CancelRequested, Duplicate),
    ],
];

/// The saga's first step, entered when the order is confirmed.
pub const FIRST_STEP: Step = Step::Invoicing;

pub fn spec(step: Step) -> &'static StepSpec {
    &STEPS[step as usize]
}

pub fn transition(from: Step, on: Input) -> &'static Transition {
    &TABLE[from as usize][on as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER_STEPS: [Step; 3] = [Step::Invoicing, Step::Invoiced, Step::Voiding];
    const CANCELLED_STEPS: [Step; 2] = [Step::Cancelled, Step::VoidingLateInvoice];
    const REPLIES: [Input; 3] = [InvoiceIssued, InvoiceRejected, InvoiceVoided];

    fn every_row() -> impl Iterator<Item = &'static Transition> {
        Step::ALL
            .into_iter()
            .flat_map(|step| Input::ALL.into_iter().map(move |on| transition(step, on)))
    }

    #[test]
    fn every_row_and_spec_sits_at_its_step_and_input() {
        for (i, step) in Step::ALL.into_iter().enumerate() {
            assert_eq!(step as usize, i);
            assert_eq!(spec(step).step, step);
            for (j, on) in Input::ALL.into_iter().enumerate() {
                assert_eq!(on as usize, j);
                let row = transition(step, on);
                assert_eq!((row.from, row.on), (step, on));
            }
        }
    }

    /// The table written out once more, cell by cell, as the specification it must equal.
    #[test]
    fn every_input_in_every_step() {
        use Effect::{CancelOrder, MarkOrderInvoiced, VoidInvoice};
        #[rustfmt::skip]
        let expected: [(Step, Input, Step, Outcome, &[Effect]); 25] = [
            (Step::Invoicing, InvoiceIssued, Step::Invoiced, Applied, &[MarkOrderInvoiced]),
            (Step::Invoicing, InvoiceRejected, Step::Cancelled, Applied, &[CancelOrder(CancelReason::InvoiceRejected)]),
            (Step::Invoicing, InvoiceVoided, Step::Invoicing, OutOfOrder, &[]),
            (Step::Invoicing, DeadlinePassed, Step::Cancelled, Applied, &[CancelOrder(CancelReason::InvoiceTimeout)]),
            (Step::Invoicing, CancelRequested, Step::Invoicing, Refused, &[]),
            (Step::Invoiced, InvoiceIssued, Step::Invoiced, Duplicate, &[]),
            (Step::Invoiced, InvoiceRejected, Step::Invoiced, OutOfOrder, &[]),
            (Step::Invoiced, InvoiceVoided, Step::Invoiced, OutOfOrder, &[]),
            (Step::Invoiced, DeadlinePassed, Step::Invoiced, Stale, &[]),
            (Step::Invoiced, CancelRequested, Step::Voiding, Applied, &[VoidInvoice]),
            (Step::Voiding, InvoiceIssued, Step::Voiding, Duplicate, &[]),
            (Step::Voiding, InvoiceRejected, Step::Voiding, OutOfOrder, &[]),
            (Step::Voiding, InvoiceVoided, Step::Cancelled, Applied, &[CancelOrder(CancelReason::Requested)]),
            (Step::Voiding, DeadlinePassed, Step::Voiding, Applied, &[VoidInvoice]),
            (Step::Voiding, CancelRequested, Step::Voiding, Duplicate, &[]),
            (Step::Cancelled, InvoiceIssued, Step::VoidingLateInvoice, Late, &[VoidInvoice]),
            (Step::Cancelled, InvoiceRejected, Step::Cancelled, Late, &[]),
            (Step::Cancelled, InvoiceVoided, Step::Cancelled, Duplicate, &[]),
            (Step::Cancelled, DeadlinePassed, Step::Cancelled, Stale, &[]),
            (Step::Cancelled, CancelRequested, Step::Cancelled, Duplicate, &[]),
            (Step::VoidingLateInvoice, InvoiceIssued, Step::VoidingLateInvoice, Duplicate, &[]),
            (Step::VoidingLateInvoice, InvoiceRejected, Step::VoidingLateInvoice, Late, &[]),
            (Step::VoidingLateInvoice, InvoiceVoided, Step::Cancelled, Applied, &[]),
            (Step::VoidingLateInvoice, DeadlinePassed, Step::VoidingLateInvoice, Applied, &[VoidInvoice]),
            (Step::VoidingLateInvoice, CancelRequested, Step::VoidingLateInvoice, Duplicate, &[]),
        ];
        for (from, on, to, outcome, effects) in expected {
            assert_eq!(
                transition(from, on),
                &Transition {
                    from,
                    on,
                    to,
                    outcome,
                    effects
                },
                "{from:?} on {on:?}"
            );
        }
    }

    #[test]
    fn only_the_replies_a_step_awaits_are_applied() {
        for step in Step::ALL {
            for reply in REPLIES {
                let applied = transition(step, reply).outcome == Applied;
                assert_eq!(
                    applied,
                    spec(step).awaits.contains(&reply),
                    "{step:?} on {reply:?}"
                );
            }
        }
    }

    #[test]
    fn what_is_not_applied_changes_nothing_but_may_void_a_late_invoice() {
        for row in every_row().filter(|row| row.outcome != Applied) {
            if row.effects.is_empty() {
                assert_eq!(row.to, row.from, "{row:?}");
            } else {
                assert_eq!(row.effects, [Effect::VoidInvoice], "{row:?}");
                assert_eq!((row.on, row.outcome), (InvoiceIssued, Late), "{row:?}");
            }
        }
    }

    #[test]
    fn a_step_with_a_deadline_acts_on_it_and_one_without_finds_it_stale() {
        for step in Step::ALL {
            let row = transition(step, DeadlinePassed);
            if spec(step).has_deadline() {
                assert_eq!(row.outcome, Applied, "{step:?}");
                assert!(
                    !row.effects.is_empty(),
                    "{step:?}: a timeout must compensate or retry"
                );
            } else {
                assert_eq!((row.outcome, row.effects), (Stale, &[][..]), "{step:?}");
            }
        }
    }

    #[test]
    fn entering_a_step_sends_its_command_and_a_retry_sends_it_again() {
        for row in every_row() {
            if let Some(command) = spec(row.to).command {
                let entered = row.to != row.from;
                let retried = row.on == DeadlinePassed && row.outcome == Applied;
                if entered || retried {
                    assert!(row.effects.contains(&command), "{row:?}");
                }
            }
        }
    }

    #[test]
    fn a_cancelled_order_is_never_invoiced_nor_cancelled_again() {
        for from in CANCELLED_STEPS {
            for on in Input::ALL {
                let row = transition(from, on);
                assert!(CANCELLED_STEPS.contains(&row.to), "{row:?}");
                assert!(
                    row.effects.iter().all(|e| *e == Effect::VoidInvoice),
                    "{row:?}"
                );
            }
        }
    }

    #[test]
    fn the_order_is_cancelled_exactly_when_the_saga_enters_cancelled_from_an_order_step() {
        for row in every_row() {
            let cancels = row
                .effects
                .iter()
                .any(|e| matches!(e, Effect::CancelOrder(_)));
            let enters = ORDER_STEPS.contains(&row.from) && CANCELLED_STEPS.contains(&row.to);
            assert_eq!(cancels, enters, "{row:?}");
        }
    }

    #[test]
    fn every_step_is_reachable_from_the_first() {
        let mut reached = vec![FIRST_STEP];
        let mut i = 0;
        while i < reached.len() {
            for on in Input::ALL {
                let to = transition(reached[i], on).to;
                if !reached.contains(&to) {
                    reached.push(to);
                }
            }
            i += 1;
        }
        reached.sort();
        assert_eq!(reached, Step::ALL);
    }

    #[test]
    fn steps_and_inputs_round_trip_through_their_names() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step));
        }
        for input in Input::ALL {
            assert_eq!(Input::parse(input.as_str()), Some(input));
        }
        for outcome in [Applied, Duplicate, Late, OutOfOrder, Stale, Refused] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Step::parse("invoicing"), None);
        assert_eq!(Input::parse(""), None);
    }
}
