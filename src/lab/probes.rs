//! Probe steps: a step that speaks some protocol other than plain HTTP to the
//! learner's service (or runs its program) and gets back an answer as JSON.
//! Expectations (`expect.json` pointers, `expect.within`), `save`, `repeat` and
//! `retry_for` then work on that answer exactly as on an HTTP body.
//!
//! Each probe kind is one variant here with its spec struct, and one file in
//! `src/probe/` that runs it. Strings inside a spec are templates: they are
//! rendered (with the check's variables) before the probe runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One probe, written as a single-key map: `probe: {exec: {...}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Probe {
    /// Run a program (the learner's CLI, by default) and read its exit code,
    /// output and the files it wrote.
    Exec(ExecProbe),
}

impl Probe {
    /// The probe's kind, as written in lab.yaml.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Exec(_) => "exec",
        }
    }
}

/// Run a program on the host. The answer is
/// `{"exit": 0, "signal": null, "stdout": "...", "stderr": "...", "json": <stdout parsed as JSON or null>}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecProbe {
    /// The program; default the learner's built solution (`{{ solution }}`).
    #[serde(default)]
    pub program: Option<String>,
    /// Arguments (templates).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment (templates). The environment is otherwise cleared but for PATH and HOME.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text written to the program's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Kill the program after this long (its answer is then a failure to answer).
    #[serde(default = "exec_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn exec_timeout() -> Duration {
    Duration::from_secs(10)
}
