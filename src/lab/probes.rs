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

/// Run a program on the host, in the check's own directory (`{{ run.dir }}`,
/// also its HOME and working directory; every check gets a fresh one). The answer is
/// `{"exit": 0, "signal": null, "stdout": "...", "stderr": "...", "json": <stdout parsed as JSON or null>,
/// "truncated": false, "files": {"<path>": {"size", "sha256", "content", "json", "valid_json", "json_error", "unchanged"}}}`:
/// `files` has an entry for each path of `read` that exists after the run (a missing file has none,
/// so `/files/<path>: {present: false}` tests that it was not written); `unchanged` is there for a
/// path that `files` wrote before the run, and says whether it still holds that content.
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
    /// Files to write before the run: path (relative to the check's directory) -> content (templates).
    /// E.g. a config file, or a corrupt data file.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Files to read after the run (relative to the check's directory), into `files` of the answer.
    #[serde(default)]
    pub read: Vec<String>,
    /// The largest file the program may write, in bytes (RLIMIT_FSIZE; SIGXFSZ is ignored, so a
    /// write beyond it fails with "file too large", as on a full disk). Default 64 MiB.
    #[serde(default)]
    pub fsize_limit: Option<u64>,
}

fn exec_timeout() -> Duration {
    Duration::from_secs(10)
}
