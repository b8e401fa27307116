//! Protocol clients with timeouts and size caps. `ready` tells whether a
//! dependency or service answers at protocol level; `http` sends the requests of
//! checks and reads answers with a cap on their size.

pub mod http;
mod ready;

pub use ready::{check_ready, wait_ready, Readiness};
pub mod amqp;
pub mod burst;
pub mod exec;
pub mod grpc;
pub mod jwt;
pub mod prometheus;
pub mod redis;
pub mod sql;
pub mod upstream;
pub mod webhook;
pub mod ws;

use std::time::Duration;

/// What a probe got back: a JSON value that expectations look into, and the
/// same answer as a learner reads it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub value: serde_json::Value,
    /// The answer as shown in a failure message.
    pub shown: String,
    pub elapsed: Duration,
}

/// At most `max` characters of `s`, with a mark where it was cut.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}… ({} more bytes)", &s[..i], s.len() - i),
    }
}
