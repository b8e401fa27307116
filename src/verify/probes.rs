//! Running probe steps (see `lab::probes`): render the spec's templates, run
//! the probe, and hand back its answer for the step's expectations.

use std::path::Path;

use crate::lab::Probe;
use crate::probe::{exec, Answer};

/// What a probe may use of the run.
pub(crate) struct ProbeEnv<'a> {
    /// A directory of this verify run (HOME and working directory of exec probes).
    pub workdir: &'a Path,
    /// The learner's built program, when lab built one.
    pub solution: Option<&'a Path>,
    /// The environment the learner's program gets on every run (the lab's `service.env` and `--env`);
    /// a step's own `env` comes after it.
    pub solution_env: &'a std::collections::BTreeMap<String, String>,
    /// The lab (its files, such as a .proto, through `lab.source.read_file`).
    #[allow(dead_code)]
    pub lab: &'a crate::lab::Lab,
}

/// Why a probe step got no answer to judge.
pub(crate) enum ProbeError {
    /// The learner's side did not answer (refused, timed out, malformed): the check fails.
    NoAnswer(String),
    /// lab could not run the probe (bad spec after rendering, missing file): an error of the check.
    Lab(String),
}

/// Render every string inside a probe's spec with the check's variables.
pub(crate) fn render_probe(p: &Probe, ctx: &tera::Context) -> Result<Probe, String> {
    let v = serde_json::to_value(p).map_err(|e| e.to_string())?;
    let v = super::render_json(&v, ctx)?;
    serde_json::from_value(v).map_err(|e| format!("the probe after rendering its templates: {e}"))
}

/// Run a rendered probe. Gives what was sent (as a learner reads it) and the answer.
pub(crate) async fn run(p: &Probe, env: &ProbeEnv<'_>) -> (String, Result<Answer, ProbeError>) {
    match p {
        Probe::Exec(x) => {
            let (program, base_env) = match (&x.program, env.solution) {
                (Some(p), _) => (p.clone(), None),
                (None, Some(s)) => (s.display().to_string(), Some(env.solution_env)),
                (None, None) => return (String::new(), Err(ProbeError::Lab("an exec probe without `program` runs the learner's solution, and lab built none (give --solution)".into()))),
            };
            let mut vars: std::collections::BTreeMap<String, String> = base_env.cloned().unwrap_or_default();
            vars.extend(x.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            let spec = exec::ExecSpec {
                program,
                args: x.args.clone(),
                env: vars.into_iter().collect(),
                stdin: x.stdin.clone(),
                timeout: x.timeout,
                dir: env.workdir.to_path_buf(),
                files: x.files.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                read: x.read.clone(),
                fsize_limit: x.fsize_limit,
            };
            let sent = format!("$ {}", exec::command_line(&spec));
            let res = exec::run(&spec).await.map_err(|e| match e {
                exec::ExecFailure::Spawn { .. } | exec::ExecFailure::Setup(_) => ProbeError::Lab(e.to_string()),
                other => ProbeError::NoAnswer(other.to_string()),
            });
            (sent, res)
        }
    }
}
