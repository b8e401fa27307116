//! The contract between a session and its reporters: what happened, in order.
//! Reporters see only these events (and the report they add up to).

use std::time::Duration;

use serde::Serialize;

/// Something that happened during `lab verify`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        lab: String,
        instance: String,
        target: String,
        stages: usize,
        checks: usize,
    },
    StageStarted {
        stage: String,
    },
    CheckStarted {
        stage: String,
        check: String,
        expect: String,
    },
    /// A step inside a check (for live progress).
    Step {
        check: String,
        text: String,
    },
    CheckFinished(CheckResult),
    /// Later stages are not run because a required stage failed.
    StagesSkipped {
        after: String,
        reason: String,
    },
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
    Skipped {
        reason: String,
    },
    /// lab itself could not carry out the check (backend failure...).
    Error {
        message: String,
    },
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
    /// Lines a learner should see whatever the outcome, each on its own line
    /// of the verdict: e.g. a fault of the workload's nemesis that lab could
    /// not inject (`nemesis: partition at 2.000 s could not be applied: …`),
    /// which is lab's problem, not the service's. A passed check with notes
    /// passes with a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the check's passed steps measured (see [`Measured`]), so a run
    /// can be compared with another (e.g. a drain rate alone and after
    /// other checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measured: Vec<Measured>,
}

/// A figure a passed step measured: how long a polled step (`retry_for`)
/// took to pass, or a number the step's expectation held within bounds
/// (`min`/`max` on a JSON pointer).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measured {
    /// The step (1-based).
    pub step: usize,
    /// `passed after` for a polled step, else the JSON pointer.
    pub what: String,
    pub value: f64,
    /// `s` for a time, empty for a number of the answer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = if self.value.fract() == 0.0 && self.value.abs() < 1e15 { format!("{}", self.value as i64) } else { format!("{:.2}", self.value) };
        if self.unit.is_empty() {
            write!(f, "step {}: {} = {v}", self.step, self.what)
        } else {
            write!(f, "step {}: {} {v} {}", self.step, self.what, self.unit)
        }
    }
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

/// Everything a run produced, for the JSON, JUnit and HTML reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub lab: String,
    pub instance: String,
    pub target: String,
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    /// The workload's history, when a check recorded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryReport>,
}

/// A recorded history with its faults, and the operations a checker blamed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryReport {
    pub ops: Vec<HistoryOp>,
    pub nemesis: Vec<NemesisInterval>,
    /// Indices into `ops` of a witness of a violation (empty when none).
    pub witness: Vec<usize>,
    pub clients: u32,
    pub seed: u64,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpType {
    /// It happened, with this result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may or may not have happened (timeout, 503 on a write...).
    Info,
}

/// One operation of the history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryOp {
    pub process: u32,
    pub key: String,
    /// read, write or cas.
    pub f: String,
    /// write: the value; cas: [from, to]; read: null.
    pub value: serde_json::Value,
    /// read: the value read, as `workload.ops.read.value` says where it is in
    /// the answer (null when missing). A read answered with an ok status whose
    /// value lab could not read is recorded as `fail` (it constrains nothing)
    /// with null here and the reason in `note`; the workload keeps a list of
    /// them and the history checks fail on them.
    pub output: serde_json::Value,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// Nanoseconds from the start of the workload.
    pub invoke: u64,
    pub complete: u64,
    /// The node asked first (1-based) and the node that answered (another one
    /// when the first redirected to the leader). The reads after healing ask
    /// every node in turn.
    pub node: u32,
    pub answered_by: u32,
    /// Status or error, for reports.
    pub note: String,
}

/// A fault of the nemesis, as it happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NemesisInterval {
    pub fault: String,
    pub targets: Vec<String>,
    pub start: u64,
    pub end: u64,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.summary.failed == 0 && self.summary.errors == 0
    }

    /// The stages of the checks, in the order they ran.
    pub fn stages(&self) -> Vec<&str> {
        let mut stages: Vec<&str> = Vec::new();
        for c in &self.checks {
            if !stages.contains(&c.stage.as_str()) {
                stages.push(&c.stage);
            }
        }
        stages
    }
}

pub(crate) mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
