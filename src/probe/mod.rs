//! Protocol clients with timeouts and size caps. `ready` tells whether a
//! dependency or service answers at protocol level; `http` sends the requests of
//! checks and reads answers with a cap on their size.

pub mod http;
mod ready;

pub use ready::{check_ready, wait_ready, Readiness};
