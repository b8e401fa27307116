//! The contract between a session and its reporters: what happened, in order.
//! Reporters see only these events (and the report they add up to).

use std::time::Duration;

use serde::Serialize;

/// Something that happened during `lab verify`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted { lab: String, instance: String, target: String, stages: usize, checks: usize },
    StageStarted { stage: String },
    CheckStarted { stage: String, check: String, expect: String },
    /// A step inside a check (for live progress).
    Step { check: String, text: String },
    CheckFinished(CheckResult),
    /// Later stages are not run because a required stage failed.
    StagesSkipped { after: String, reason: String },
    RunFinished(Summary),
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    /// The learner's service did not do what the check expects.
    Failed(Failure),
    /// Not run, with the reason.
    Skipped { reason: String },
    /// lab itself could not carry out the check (backend failure...).
    Error { message: String },
}

/// What a learner needs to act on a failed check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    /// One line: what went wrong.
    pub summary: String,
    /// What lab sent.
    pub sent: String,
    /// What came back.
    pub got: String,
    /// What was expected.
    pub expected: String,
    pub hint: String,
    /// The step (1-based) that failed.
    pub step: usize,
    /// The service's last log lines, when they help.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    pub stage: String,
    pub name: String,
    pub expect: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errors: usize,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl Summary {
    pub fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::Error { .. } => self.errors += 1,
        }
    }
}

/// Everything a run produced, for the JSON and JUnit reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub lab: String,
    pub instance: String,
    pub target: String,
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.summary.failed == 0 && self.summary.errors == 0
    }
}

pub(crate) mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
