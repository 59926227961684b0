//! The delivery contract: how events from asynchronous sources reach event
//! functions. Batching, concurrency and retry backoff come from the shared
//! `Delivery` settings; each trigger kind has a module implementing
//! `trigger::Trigger`.

mod http;
pub mod invoke;
pub mod object;
pub mod ownership;
mod queue;
pub mod retrying;
pub mod schedule;
pub mod stream;
pub mod trigger;
mod worker;

pub use queue::run_queue_trigger;
pub use trigger::{FunctionKind, Trigger, TriggerContext};
