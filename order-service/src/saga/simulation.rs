//! The saga against a model of the invoice-service over an at-least-once, reordering transport: any
//! interleaving of deliveries, redeliveries, deadlines and cancel requests ends, once everything is
//! delivered, with the order and its invoice agreeing and the order compensated at most once.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::{Effect, Input, Saga, Step};

const TIMEOUT: Duration = Duration::seconds(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invoice {
    None,
    Rejected,
    Issued,
    Voided,
}

/// The invoice-service: issues or rejects once per order, voids an issued invoice, and answers a
/// repeated command with the same reply.
struct InvoiceService {
    invoice: Invoice,
    rejects: bool,
}

impl InvoiceService {
    fn on(&mut self, command: Effect) -> Option<Input> {
        match (command, self.invoice) {
            (Effect::IssueInvoice, Invoice::None) if self.rejects => {
                self.invoice = Invoice::Rejected;
                Some(Input::InvoiceRejected)
            }
            (Effect::IssueInvoice, Invoice::None) => {
                self.invoice = Invoice::Issued;
                Some(Input::InvoiceIssued)
            }
            (Effect::IssueInvoice, Invoice::Rejected) => Some(Input::InvoiceRejected),
            (Effect::IssueInvoice, _) => Some(Input::InvoiceIssued),
            (Effect::VoidInvoice, Invoice::Issued | Invoice::Voided) => {
                self.invoice = Invoice::Voided;
                Some(Input::InvoiceVoided)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    DeliverCommand { redeliver: bool },
    DeliverReply { pick: usize, redeliver: bool },
    Wait { secs: i64 },
    Cancel,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        any::<bool>().prop_map(|redeliver| Action::DeliverCommand { redeliver }),
        (any::<usize>(), any::<bool>())
            .prop_map(|(pick, redeliver)| Action::DeliverReply { pick, redeliver }),
        (1i64..40).prop_map(|secs| Action::Wait { secs }),
        Just(Action::Cancel),
    ]
}

struct World {
    saga: Saga,
    service: InvoiceService,
    /// In order: one key, one partition.
    commands: Vec<Effect>,
    /// Any order: replies may overtake each other across redeliveries.
    replies: Vec<Input>,
    now: DateTime<Utc>,
    order_cancellations: usize,
    order_invoiced: bool,
}

impl World {
    fn take(&mut self, input: Input) {
        let handled = self.saga.handle(input, None, self.now, TIMEOUT);
        for effect in handled.effects {
            match effect {
                Effect::CancelOrder(_) => self.order_cancellations += 1,
                Effect::MarkOrderInvoiced => self.order_invoiced = true,
                Effect::IssueInvoice | Effect::VoidInvoice => self.commands.push(*effect),
            }
        }
    }

    fn deliver_command(&mut self, redeliver: bool) {
        if self.commands.is_empty() {
            return;
        }
        let command = if redeliver {
            self.commands[0]
        } else {
            self.commands.remove(0)
        };
        self.replies.extend(self.service.on(command));
    }

    fn deliver_reply(&mut self, pick: usize, redeliver: bool) {
        if self.replies.is_empty() {
            return;
        }
        let i = pick % self.replies.len();
        let reply = if redeliver {
            self.replies[i]
        } else {
            self.replies.remove(i)
        };
        self.take(reply);
    }

    fn wait(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
        if self.saga.is_overdue(self.now) {
            self.take(Input::DeadlinePassed);
        }
    }
}

proptest! {
    #[test]
    fn every_interleaving_ends_with_the_order_and_its_invoice_agreeing(
        rejects in any::<bool>(),
        actions in proptest::collection::vec(action(), 0..60),
    ) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (saga, start) = Saga::start(Uuid::new_v4(), Uuid::new_v4(), now, TIMEOUT);
        let mut world = World {
            saga,
            service: InvoiceService { invoice: Invoice::None, rejects },
            commands: start.to_vec(),
            replies: Vec::new(),
            now,
            order_cancellations: 0,
            order_invoiced: false,
        };
        for action in actions {
            match action {
                Action::DeliverCommand { redeliver } => world.deliver_command(redeliver),
                Action::DeliverReply { pick, redeliver } => world.deliver_reply(pick, redeliver),
                Action::Wait { secs } => world.wait(secs),
                Action::Cancel => world.take(Input::CancelRequested),
            }
        }
        // Everything in flight arrives, and deadlines keep firing, until nothing is left to do.
        for _ in 0..100 {
            while !world.commands.is_empty() || !world.replies.is_empty() {
                world.deliver_command(false);
                world.deliver_reply(0, false);
            }
            if world.saga.deadline.is_none() {
                break;
            }
            world.wait(TIMEOUT.num_seconds());
        }
        prop_assert!(world.saga.deadline.is_none(), "still waiting: {:?}", world.saga.step);
        prop_assert!(world.order_cancellations <= 1);
        match world.saga.step {
            Step::Invoiced => {
                prop_assert_eq!(world.service.invoice, Invoice::Issued);
                prop_assert_eq!(world.order_cancellations, 0);
                prop_assert!(world.order_invoiced);
            }
            Step::Cancelled => {
                prop_assert_eq!(world.order_cancellations, 1);
                prop_assert!(
                    matches!(world.service.invoice, Invoice::Rejected | Invoice::Voided | Invoice::None),
                    "a cancelled order left invoice {:?}",
                    world.service.invoice
                );
            }
            other => prop_assert!(false, "ended in {other:?}"),
        }
    }
}
