//! History checkers: is what the clients saw consistent with one copy of the
//! data, changed one operation at a time (linearizability)?
//!
//! ```
//! use std::time::Duration;
//! use lab::checker::{check, formats, CheckOptions, Verdict};
//!
//! // Process 0 wrote 1 and finished; then process 1 read null: the write was lost.
//! let history = formats::parse(r#"{"ops": [
//!   {"process": 0, "type": "invoke", "f": "write", "key": "x", "value": 1},
//!   {"process": 0, "type": "ok",     "f": "write", "key": "x", "value": 1},
//!   {"process": 1, "type": "invoke", "f": "read",  "key": "x", "value": null},
//!   {"process": 1, "type": "ok",     "f": "read",  "key": "x", "value": null}
//! ]}"#).unwrap();
//! let result = check(&history, &CheckOptions::with_budget(Duration::from_secs(5)));
//! assert_eq!(result.verdict, Verdict::NotLinearizable);
//! println!("{}", result.witness.unwrap().explanation);
//! ```
//!
//! - [`history`]: operations, values, events, and a [`Recorder`] for live runs.
//! - [`formats`]: the project's JSON format, Porcupine-friendly JSON, Jepsen EDN
//!   and log lines, with detection.
//! - [`linearizability`]: [`check`] and its result.
//! - [`sim`]: simulated histories (tests, benchmarks).

pub mod formats;
pub mod history;
pub mod linearizability;
mod model;
mod search;
pub mod sim;
mod witness;

#[cfg(test)]
mod tests;

pub use formats::{parse, Format};
pub use history::{Event, EventType, Func, History, Op, ParseError, Pending, Recorder, SourcedEvent, Status, TimeUnit, Value};
pub use linearizability::{check, CheckOptions, CheckResult, KeyResult, Verdict, Witness, WitnessOp};
pub use model::ModelKind;
