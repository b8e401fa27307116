//! Running probe steps (see `lab::probes`): render the spec's templates, run
//! the probe, and hand back its answer for the step's expectations.

use std::path::Path;

use crate::lab::Probe;
use crate::probe::{exec, ws, Answer};

/// What a probe may use of the run.
pub(crate) struct ProbeEnv<'a> {
    /// A directory of this verify run (HOME and working directory of exec probes).
    pub workdir: &'a Path,
    /// The learner's built program, when lab built one.
    pub solution: Option<&'a Path>,
    /// The lab (its files, such as a .proto, through `lab.source.read_file`).
    #[allow(dead_code)]
    pub lab: &'a crate::lab::Lab,
    /// Base URLs of the service's nodes, as lab reaches them.
    pub nodes: &'a [String],
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
            let program = match (&x.program, env.solution) {
                (Some(p), _) => p.clone(),
                (None, Some(s)) => s.display().to_string(),
                (None, None) => return (String::new(), Err(ProbeError::Lab("an exec probe without `program` runs the learner's solution, and lab built none (give --solution)".into()))),
            };
            let spec = exec::ExecSpec {
                program,
                args: x.args.clone(),
                env: x.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                stdin: x.stdin.clone(),
                timeout: x.timeout,
                dir: env.workdir.to_path_buf(),
            };
            let sent = format!("$ {}", exec::command_line(&spec));
            let res = exec::run(&spec).await.map_err(|e| match e {
                exec::ExecFailure::Spawn { .. } => ProbeError::Lab(e.to_string()),
                other => ProbeError::NoAnswer(other.to_string()),
            });
            (sent, res)
        }
        Probe::Ws(x) => {
            let urls = if x.urls.is_empty() { env.nodes.to_vec() } else { x.urls.clone() };
            let scenario = match x.scenario {
                crate::lab::WsScenario::Fanout => ws::Scenario::Fanout,
                crate::lab::WsScenario::Origin => ws::Scenario::Origin,
                crate::lab::WsScenario::SilentClient => ws::Scenario::SilentClient,
                crate::lab::WsScenario::SlowClient => ws::Scenario::SlowClient,
            };
            let expected = (x.clients as usize).saturating_mul(x.senders as usize).saturating_mul(x.messages as usize);
            let spec = ws::WsSpec {
                scenario,
                urls,
                path: x.path.clone(),
                message: x.message.clone(),
                origin: x.origin.clone(),
                clients: x.clients as usize,
                senders: x.senders as usize,
                messages: x.messages as usize,
                size: x.size as usize,
                interval: x.interval,
                settle: x.settle,
                wait: x.wait,
                timeout: x.timeout,
                max_message: x.max_message as usize,
                // Each client receives about senders × messages frames; four times that (and at least 1000) is a flood.
                max_frames: (expected / (x.clients.max(1) as usize)).saturating_mul(4).max(1000),
            };
            let sent = ws_sent(&spec);
            let res = ws::run(&spec).await.map_err(|e| match e {
                ws::WsFailure::Spec(m) => ProbeError::Lab(m),
                other => ProbeError::NoAnswer(other.to_string()),
            });
            (sent, res)
        }
    }
}

/// A ws scenario as a learner reads it.
fn ws_sent(s: &ws::WsSpec) -> String {
    let first = s.urls.first().map(|u| ws::ws_url(u, &s.path).unwrap_or_else(|_| u.clone())).unwrap_or_default();
    let origin = s.origin.as_deref().map(|o| format!(" with Origin: {o}")).unwrap_or_default();
    match s.scenario {
        ws::Scenario::Fanout => format!(
            "WebSocket fanout: {} clients round robin over {} node(s) ({first} ...){origin}; {} of them send {} message(s) each, every client should receive every message once, in order per sender",
            s.clients,
            s.urls.len(),
            s.senders,
            s.messages
        ),
        ws::Scenario::SlowClient => format!(
            "WebSocket slow client: one client on node 1 never reads; {} others round robin over {} node(s) ({first} ...){origin}; {} of them send {} message(s) of {} bytes each",
            s.clients,
            s.urls.len(),
            s.senders,
            s.messages,
            s.size
        ),
        ws::Scenario::Origin => format!("WebSocket handshake to {first}{}", if origin.is_empty() { " without Origin".into() } else { origin }),
        ws::Scenario::SilentClient => format!("two WebSocket clients of {first}{origin}: one stops reading (never answers a ping), one reads but never sends; wait up to {} ms", s.wait.as_millis()),
    }
}
