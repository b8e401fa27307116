//! Running probe steps (see `lab::probes`): render the spec's templates, run
//! the probe, and hand back its answer for the step's expectations.

use std::path::Path;

use crate::lab::Probe;
use crate::probe::{exec, grpc, jwt, sql, Answer};

/// What a probe may use of the run.
pub(crate) struct ProbeEnv<'a> {
    /// A directory of this verify run (HOME and working directory of exec probes).
    pub workdir: &'a Path,
    /// The learner's built program, when lab built one.
    pub solution: Option<&'a Path>,
    /// The lab (its files, such as a .proto, through `lab.source.read_file`).
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
        Probe::Grpc(x) => {
            let Some(source) = env.lab.source.read_file(&x.proto) else {
                return (String::new(), Err(ProbeError::Lab(format!("the lab has no file {} (the grpc probe's `proto`)", x.proto))));
            };
            let prepared = grpc::compile(&x.proto, &source).and_then(|pool| {
                let m = grpc::method(&pool, &x.method)?;
                let req = grpc::request(m.input(), &x.request)?;
                Ok((m, req))
            });
            let (m, req) = match prepared {
                Ok(p) => p,
                Err(e) => return (format!("{} {}", x.method, x.request), Err(ProbeError::Lab(e.to_string()))),
            };
            let sent = grpc::shown_request(&m, &req, x.deadline);
            let res = grpc::call(grpc::Call { addr: x.target.trim_end_matches('/').to_string(), method: m, request: req, deadline: x.deadline, metadata: &x.metadata })
                .await
                .map_err(|e| ProbeError::NoAnswer(e.to_string()));
            (sent, res)
        }
        Probe::Jwt(x) => {
            let algorithm: jsonwebtoken::Algorithm = match x.algorithm.parse() {
                Ok(a) => a,
                Err(_) => return (String::new(), Err(ProbeError::Lab(format!("unknown JWT algorithm {:?} (HS256, HS384, HS512, ...)", x.algorithm)))),
            };
            let sent = format!("verify the token {} with the instance's secret ({})", crate::probe::excerpt(&x.token, 80), x.algorithm);
            (sent, Ok(jwt::check(&jwt::JwtSpec { token: &x.token, secret: &x.secret, algorithm, require_exp: x.require_exp })))
        }
        Probe::Sql(x) => {
            let sent = format!("SQL: {}", x.query);
            let res = sql::query(&sql::SqlSpec { url: &x.url, query: &x.query, timeout: x.timeout }).await.map_err(|e| match e {
                sql::SqlFailure::Url(..) => ProbeError::Lab(e.to_string()),
                other => ProbeError::NoAnswer(other.to_string()),
            });
            (sent, res)
        }
    }
}
