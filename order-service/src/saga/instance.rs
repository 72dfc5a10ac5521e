//! One saga: its step, deadline, version and history, and how it takes an input by the table in
//! [`super::machine`]. Pure: the caller supplies the clock and persists the result.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::machine::{self, Effect, Input, Outcome, SagaStatus, Step, Transition, FIRST_STEP};

/// One line of the saga's history: what happened, how it was taken, and where the saga went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// `None` for the start.
    pub input: Option<Input>,
    /// The event id of the reply, if the input was one.
    pub event_id: Option<Uuid>,
    pub outcome: Outcome,
    pub from: Option<Step>,
    pub to: Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saga {
    pub id: Uuid,
    pub order_id: Uuid,
    pub step: Step,
    /// When the step's reply is due; `None` in a step that waits for nothing.
    pub deadline: Option<DateTime<Utc>>,
    /// 1 when started, one more with every recorded input: the optimistic-locking token.
    pub version: i64,
    pub history: Vec<Entry>,
}

/// What taking an input decided: how it was taken and what to do in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub outcome: Outcome,
    pub effects: &'static [Effect],
}

impl Saga {
    /// A saga in its first step, and the effects that start it (sending the first command).
    pub fn start(
        id: Uuid,
        order_id: Uuid,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> (Saga, &'static [Effect]) {
        let spec = machine::spec(FIRST_STEP);
        let saga = Saga {
            id,
            order_id,
            step: FIRST_STEP,
            deadline: spec.has_deadline().then(|| now + timeout),
            version: 1,
            history: vec![Entry {
                at: now,
                input: None,
                event_id: None,
                outcome: Outcome::Applied,
                from: None,
                to: FIRST_STEP,
            }],
        };
        let effects: &'static [Effect] = match &spec.command {
            Some(command) => std::slice::from_ref(command),
            None => &[],
        };
        (saga, effects)
    }

    pub fn status(&self) -> SagaStatus {
        machine::spec(self.step).status
    }

    /// Whether the step's reply is overdue at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// Takes `input` (with the event id of a reply) and records it. An applied transition into a step
    /// that waits for a reply sets a new deadline, so a retried command gets its full time again; a
    /// deadline input before the deadline, e.g. from a sweeper that read an older version, is stale.
    pub fn handle(
        &mut self,
        input: Input,
        event_id: Option<Uuid>,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Handled {
        let transition = if input == Input::DeadlinePassed && !self.is_overdue(now) {
            Transition {
                from: self.step,
                on: input,
                to: self.step,
                outcome: Outcome::Stale,
                effects: &[],
            }
        } else {
            *machine::transition(self.step, input)
        };
        let acted = transition.to != self.step || !transition.effects.is_empty();
        if acted {
            self.deadline = machine::spec(transition.to)
                .has_deadline()
                .then(|| now + timeout);
        }
        self.step = transition.to;
        self.version += 1;
        self.history.push(Entry {
            at: now,
            input: Some(input),
            event_id,
            outcome: transition.outcome,
            from: Some(transition.from),
            to: transition.to,
        });
        Handled {
            outcome: transition.outcome,
            effects: transition.effects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::machine::{spec, CancelReason};
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::seconds(30);

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn started() -> Saga {
        Saga::start(Uuid::new_v4(), Uuid::new_v4(), t0(), TIMEOUT).0
    }

    /// Takes `input` `secs` seconds after the start, with a fresh event id for replies.
    fn take(saga: &mut Saga, input: Input, secs: i64) -> Handled {
        let event_id = matches!(
            input,
            Input::InvoiceIssued | Input::InvoiceRejected | Input::InvoiceVoided
        )
        .then(Uuid::new_v4);
        saga.handle(input, event_id, t0() + Duration::seconds(secs), TIMEOUT)
    }

    fn handled(outcome: Outcome, effects: &'static [Effect]) -> Handled {
        Handled { outcome, effects }
    }

    #[test]
    fn a_saga_starts_invoicing_with_a_deadline_and_sends_the_invoice_command() {
        let (saga, effects) = Saga::start(Uuid::new_v4(), Uuid::new_v4(), t0(), TIMEOUT);
        assert_eq!(effects, [Effect::IssueInvoice]);
        assert_eq!(saga.step, Step::Invoicing);
        assert_eq!(saga.status(), SagaStatus::Running);
        assert_eq!(saga.deadline, Some(t0() + TIMEOUT));
        assert_eq!(saga.version, 1);
        assert_eq!(saga.history.len(), 1);
        assert_eq!(saga.history[0].input, None);
    }

    #[test]
    fn the_invoice_completes_the_saga_and_its_duplicate_is_recorded_only() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 1),
            handled(Outcome::Applied, &[Effect::MarkOrderInvoiced])
        );
        assert_eq!((saga.step, saga.deadline), (Step::Invoiced, None));
        assert_eq!(saga.status(), SagaStatus::Completed);
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 2),
            handled(Outcome::Duplicate, &[])
        );
        assert_eq!(saga.step, Step::Invoiced);
        assert_eq!(saga.version, 3);
        let last = saga.history.last().unwrap();
        assert_eq!(
            (last.input, last.outcome, last.from, last.to),
            (
                Some(Input::InvoiceIssued),
                Outcome::Duplicate,
                Some(Step::Invoiced),
                Step::Invoiced
            )
        );
        assert!(last.event_id.is_some());
    }

    #[test]
    fn a_rejection_cancels_the_order_once() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::InvoiceRejected, 1),
            handled(
                Outcome::Applied,
                &[Effect::CancelOrder(CancelReason::InvoiceRejected)]
            )
        );
        assert_eq!(saga.status(), SagaStatus::Compensated);
        assert_eq!(
            take(&mut saga, Input::InvoiceRejected, 2),
            handled(Outcome::Late, &[])
        );
        assert_eq!(
            take(&mut saga, Input::DeadlinePassed, 60),
            handled(Outcome::Stale, &[])
        );
        assert_eq!(saga.step, Step::Cancelled);
    }

    #[test]
    fn a_deadline_before_it_passes_is_stale_and_keeps_the_deadline() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::DeadlinePassed, 29),
            handled(Outcome::Stale, &[])
        );
        assert_eq!(
            (saga.step, saga.deadline),
            (Step::Invoicing, Some(t0() + TIMEOUT))
        );
        assert!(!saga.is_overdue(t0() + Duration::seconds(29)));
        assert!(saga.is_overdue(t0() + TIMEOUT));
    }

    #[test]
    fn a_timeout_cancels_and_the_late_invoice_is_voided_not_applied() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::DeadlinePassed, 30),
            handled(
                Outcome::Applied,
                &[Effect::CancelOrder(CancelReason::InvoiceTimeout)]
            )
        );
        assert_eq!((saga.step, saga.deadline), (Step::Cancelled, None));
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 40),
            handled(Outcome::Late, &[Effect::VoidInvoice])
        );
        assert_eq!(saga.step, Step::VoidingLateInvoice);
        assert_eq!(saga.deadline, Some(t0() + Duration::seconds(70)));
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 41),
            handled(Outcome::Duplicate, &[])
        );
        assert_eq!(
            take(&mut saga, Input::InvoiceVoided, 42),
            handled(Outcome::Applied, &[])
        );
        assert_eq!((saga.step, saga.deadline), (Step::Cancelled, None));
        assert_eq!(
            take(&mut saga, Input::InvoiceRejected, 43),
            handled(Outcome::Late, &[])
        );
    }

    #[test]
    fn cancelling_an_invoiced_order_voids_first_retries_and_cancels_on_the_void() {
        let mut saga = started();
        take(&mut saga, Input::InvoiceIssued, 1);
        assert_eq!(
            take(&mut saga, Input::CancelRequested, 10),
            handled(Outcome::Applied, &[Effect::VoidInvoice])
        );
        assert_eq!(saga.status(), SagaStatus::Compensating);
        assert_eq!(saga.deadline, Some(t0() + Duration::seconds(40)));
        assert_eq!(
            take(&mut saga, Input::CancelRequested, 11),
            handled(Outcome::Duplicate, &[])
        );
        assert_eq!(
            take(&mut saga, Input::DeadlinePassed, 40),
            handled(Outcome::Applied, &[Effect::VoidInvoice])
        );
        assert_eq!(saga.deadline, Some(t0() + Duration::seconds(70)));
        assert_eq!(
            take(&mut saga, Input::InvoiceVoided, 50),
            handled(
                Outcome::Applied,
                &[Effect::CancelOrder(CancelReason::Requested)]
            )
        );
        assert_eq!(
            take(&mut saga, Input::InvoiceVoided, 51),
            handled(Outcome::Duplicate, &[])
        );
        assert_eq!(
            take(&mut saga, Input::CancelRequested, 52),
            handled(Outcome::Duplicate, &[])
        );
        assert_eq!(saga.step, Step::Cancelled);
    }

    #[test]
    fn cancelling_while_invoicing_is_refused() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::CancelRequested, 1),
            handled(Outcome::Refused, &[])
        );
        assert_eq!(saga.step, Step::Invoicing);
    }

    #[test]
    fn a_void_before_the_invoice_is_out_of_order_and_the_invoice_still_applies() {
        let mut saga = started();
        assert_eq!(
            take(&mut saga, Input::InvoiceVoided, 1),
            handled(Outcome::OutOfOrder, &[])
        );
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 2),
            handled(Outcome::Applied, &[Effect::MarkOrderInvoiced])
        );
    }

    #[test]
    fn an_invoice_after_a_rejection_is_voided() {
        let mut saga = started();
        take(&mut saga, Input::InvoiceRejected, 1);
        assert_eq!(
            take(&mut saga, Input::InvoiceIssued, 2),
            handled(Outcome::Late, &[Effect::VoidInvoice])
        );
    }

    fn input() -> impl Strategy<Value = Input> {
        proptest::sample::select(Input::ALL.to_vec())
    }

    proptest! {
        /// Any sequence of inputs at any times: the order is cancelled at most once, invoiced at most
        /// once and never after it was cancelled, never leaves cancellation, every input is recorded,
        /// and a deadline exists exactly in the steps that wait for a reply.
        #[test]
        fn no_sequence_of_inputs_compensates_twice(
            inputs in proptest::collection::vec((input(), 0i64..50), 0..40)
        ) {
            let mut saga = started();
            let (mut cancelled, mut invoiced) = (0, 0);
            let mut secs = 0;
            for (input, step) in inputs {
                secs += step;
                let handled = take(&mut saga, input, secs);
                for effect in handled.effects {
                    match effect {
                        Effect::CancelOrder(_) => cancelled += 1,
                        Effect::MarkOrderInvoiced => {
                            prop_assert_eq!(cancelled, 0);
                            invoiced += 1;
                        }
                        Effect::IssueInvoice | Effect::VoidInvoice => {}
                    }
                }
                prop_assert!(cancelled <= 1 && invoiced <= 1);
                if cancelled == 1 {
                    prop_assert!(matches!(saga.step, Step::Cancelled | Step::VoidingLateInvoice));
                }
                prop_assert_eq!(saga.deadline.is_some(), spec(saga.step).has_deadline());
                prop_assert_eq!(saga.history.len() as i64, saga.version);
            }
        }
    }
}
