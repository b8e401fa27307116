//! lab: an orchestrator for Go practice labs. It reads a lab definition,
//! brings up the lab's dependencies and the learner's service, and verifies
//! the service with checks whose failures a learner can act on.
//!
//! The data flows one way: `lab` (definition) → `plan` (pure) → `backend`
//! (Docker) → `session` → `verify` → `event` → `report`.

pub mod backend;
pub mod build;
pub mod chaos;
pub mod checker;
pub mod cli;
pub mod error;
pub mod event;
pub mod images;
pub mod lab;
pub mod plan;
pub mod probe;
pub mod report;
pub mod session;
pub mod template;
pub mod ui;
pub mod verify;
