//! The invoicing saga that confirming an order starts: [`machine`] is the state machine as data (step,
//! the command it sends, the replies it awaits, the next step or compensation for every input), and
//! [`instance`] is one saga applying inputs to it, with its deadline, version and history. Both are
//! pure; the store and the service persist what they decide.

pub mod instance;
pub mod machine;
#[cfg(test)]
mod simulation;

pub use instance::{Entry, Handled, Saga};
pub use machine::{
    spec, transition, CancelReason, Effect, Input, Outcome, SagaStatus, Step, StepSpec, Transition,
};
