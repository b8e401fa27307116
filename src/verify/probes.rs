//! Running probe steps (see `lab::probes`): render the spec's templates, run
//! the probe, and hand back its answer for the step's expectations.

use std::path::Path;

use crate::lab::Probe;
use crate::probe::{amqp, burst, exec, grpc, jwt, redis, sql, ws, Answer};

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
    pub lab: &'a crate::lab::Lab,
    /// The instance (dependencies' published ports).
    pub plan: &'a crate::plan::Plan,
    /// Base URLs of the service's nodes, as lab reaches them.
    pub nodes: &'a [String],
    /// (URL as lab reaches a node, the node's own address inside the lab's network),
    /// for the probes that [`wants_direct`].
    pub direct: &'a [(String, String)],
    /// The engine, when lab runs the service (for the container probe).
    pub backend: Option<&'a crate::backend::Backend>,
}

/// Whether a probe needs the nodes' own addresses: a WebSocket client that never
/// reads must fill the service's socket, not a proxy's buffers on its way.
pub(crate) fn wants_direct(p: &Probe) -> bool {
    matches!(p, Probe::Ws(x) if matches!(x.scenario, crate::lab::WsScenario::SlowClient))
}

/// The published address of the lab's first dependency made from `template`.
fn dep_url(env: &ProbeEnv<'_>, template: &str) -> Option<String> {
    let name = env.lab.def.dependencies.iter().find(|(_, d)| d.template == template).map(|(n, _)| n.clone()).unwrap_or_else(|| template.to_string());
    env.plan.dependency_url(&name)
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
        Probe::Prometheus(x) => {
            use crate::probe::prometheus::{self, Op, PromError};
            let ops: Vec<Op> = [
                x.query.clone().map(|q| Op::Query { query: q, name: x.name.clone() }),
                x.metadata.clone().map(Op::Metadata),
                x.alert.clone().map(Op::Alert),
                x.alertmanager.clone().map(Op::Alertmanager),
                x.targets.clone().map(Op::Targets),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [op] = &ops[..] else {
                return (String::new(), Err(ProbeError::Lab("a prometheus probe takes exactly one of query, metadata, alert, alertmanager, targets".into())));
            };
            let Some(url) = x.url.clone().or_else(|| dep_url(env, "prometheus")) else {
                return (String::new(), Err(ProbeError::Lab("this instance has no prometheus dependency; give the probe a `url`".into())));
            };
            let spec = prometheus::Spec { prometheus: url, alertmanager: x.alertmanager_url.clone().or_else(|| dep_url(env, "alertmanager")), op: op.clone(), fresh: x.fresh, timeout: x.timeout };
            let res = prometheus::run(&spec).await.map_err(|e| match e {
                PromError::NoAnswer(m) => ProbeError::NoAnswer(m),
                PromError::Lab(m) => ProbeError::Lab(m),
            });
            (prometheus::sent(&spec), res)
        }
        Probe::Webhook(x) => {
            use crate::probe::webhook;
            let Some(url) = x.url.clone().or_else(|| env.plan.dependency_url(crate::plan::WEBHOOK_SERVICE)) else {
                return (String::new(), Err(ProbeError::Lab("this instance runs no webhook sink (no dependency delivers to it); give the probe a `url`".into())));
            };
            let since = match x.since.as_deref().map(str::trim) {
                None | Some("") => 1,
                Some(s) => match s.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => return (String::new(), Err(ProbeError::Lab(format!("webhook probe: since {s:?} is not a notification number")))),
                },
            };
            let sent = format!("read lab's webhook sink (notifications from #{since}){}", x.alert.as_ref().map(|a| format!(" for alert {a}")).unwrap_or_default());
            let start = std::time::Instant::now();
            let res = match webhook::read(&url, since, x.timeout).await {
                Ok(page) => {
                    let (value, shown) = webhook::answer_of(&page, x.alert.as_deref());
                    Ok(Answer { value, shown, elapsed: start.elapsed() })
                }
                Err(m) => Err(ProbeError::Lab(m)),
            };
            (sent, res)
        }
        Probe::Amqp(x) => {
            let count = |what: &str, v: &Option<crate::lab::IntOrTemplate>, default: i64| -> Result<i64, String> {
                match v {
                    None => Ok(default),
                    Some(crate::lab::IntOrTemplate::Int(n)) => Ok(*n as i64),
                    Some(crate::lab::IntOrTemplate::Template(s)) => s.trim().parse().map_err(|_| format!("{what} {s:?} is not a whole number")),
                }
            };
            let publish = match &x.publish {
                None => None,
                Some(p) => match count("publish count", &p.count, 1) {
                    Ok(n) if n >= 1 => Some(amqp::PublishSpec {
                        exchange: p.exchange.clone(),
                        routing_key: p.routing_key.clone(),
                        body: p.body.clone(),
                        headers: p.headers.clone().into_iter().collect(),
                        count: n.min(u32::MAX as i64) as u32,
                        persistent: p.persistent,
                        content_type: p.content_type.clone(),
                    }),
                    Ok(n) => return (String::new(), Err(ProbeError::Lab(format!("publish count {n}: at least 1")))),
                    Err(e) => return (String::new(), Err(ProbeError::Lab(e))),
                },
            };
            let drain = match &x.drain {
                None => None,
                Some(d) => match count("drain until", &Some(d.until.clone()), 0) {
                    Ok(until) => Some(amqp::DrainSpec { url: d.url.clone(), pointer: d.pointer.clone(), until, timeout: d.timeout }),
                    Err(e) => return (String::new(), Err(ProbeError::Lab(e))),
                },
            };
            let spec = amqp::AmqpSpec {
                url: x.url.clone(),
                purge: x.purge.clone(),
                publish,
                get: x.get.as_ref().map(|g| amqp::GetSpec { queue: g.queue.clone(), count: g.count, ack: g.ack }),
                queues: x.queues.clone(),
                drain,
                timeout: x.timeout,
            };
            let sent = amqp::describe(&spec);
            let res = amqp::run(&spec, &crate::probe::http::client()).await.map_err(|e| match e {
                amqp::AmqpFailure::Spec(m) => ProbeError::Lab(m),
                // The broker is lab's own dependency: when it cannot be reached, lab could not run the check.
                amqp::AmqpFailure::Connect { .. } => ProbeError::Lab(e.to_string()),
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
            let slow_url = urls.first().and_then(|u| env.direct.iter().find(|(at, _)| at.trim_end_matches('/') == u.trim_end_matches('/'))).map(|(_, d)| d.clone());
            let spec = ws::WsSpec {
                scenario,
                urls,
                slow_url,
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
        Probe::Burst(x) => {
            let count = match &x.count {
                crate::lab::IntOrTemplate::Int(n) => *n as usize,
                crate::lab::IntOrTemplate::Template(t) => match t.trim().parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => return (String::new(), Err(ProbeError::Lab(format!("burst count {t:?} is not a number")))),
                },
            };
            if !(1..=10_000).contains(&count) {
                return (String::new(), Err(ProbeError::Lab(format!("burst count {count} is out of range: give 1 to 10000 requests"))));
            }
            let all: Vec<u32> = (1..=env.nodes.len() as u32).collect();
            let spread = if x.nodes.is_empty() { &all } else { &x.nodes };
            let base = |n: u32| env.nodes.get(n as usize - 1).cloned().ok_or_else(|| ProbeError::Lab(format!("burst: there is no node {n} (the service has {})", env.nodes.len())));
            let mut kinds = Vec::new();
            let mut first = String::new();
            for r in &x.requests {
                let nodes: Vec<u32> = match &r.node {
                    Some(n) => match n.trim().parse() {
                        Ok(k) => vec![k],
                        Err(_) => return (String::new(), Err(ProbeError::Lab(format!("burst: node {n:?} is not a node number")))),
                    },
                    None => spread.clone(),
                };
                let mut shots = Vec::new();
                for n in nodes {
                    let b = match base(n) {
                        Ok(b) => b,
                        Err(e) => return (String::new(), Err(e)),
                    };
                    // The spec's templates were rendered already: nothing is left to render.
                    match super::render_request(r, &tera::Context::new(), &b) {
                        Ok((req, shown)) => {
                            if first.is_empty() {
                                first = shown.replace('\n', " ");
                            }
                            shots.push(burst::Shot { node: n, request: req });
                        }
                        Err(e) => return (String::new(), Err(ProbeError::Lab(e))),
                    }
                }
                kinds.push(shots);
            }
            if kinds.is_empty() {
                return (String::new(), Err(ProbeError::Lab("a burst needs at least one request".into())));
            }
            let spec = burst::BurstSpec { kinds, count, concurrency: x.concurrency.clamp(1, 256) as usize };
            let sent = burst::sent(&spec, &first);
            (sent, Ok(burst::run(&spec).await))
        }
        Probe::Redis(x) => {
            let Some(dep) = env.plan.dependencies().find(|c| c.service == x.dep) else {
                return (String::new(), Err(ProbeError::Lab(format!("this instance has no dependency `{}` for the redis probe", x.dep))));
            };
            let addr = format!("127.0.0.1:{}", dep.port.host);
            let what = match (&x.keys, x.command.is_empty()) {
                (Some(p), true) => redis::Ask::Keys(p.clone()),
                (None, false) => redis::Ask::Command(x.command.clone()),
                _ => return (String::new(), Err(ProbeError::Lab("a redis probe takes exactly one of `command` and `keys`".into()))),
            };
            let sent = redis::sent(&x.dep, &what);
            (sent, redis::ask(&addr, &what, x.timeout).await.map_err(|e| ProbeError::NoAnswer(e.to_string())))
        }
        Probe::Container(x) => {
            let sent = format!("read node {}'s container from the engine", x.node);
            let (Some(backend), Some(c)) = (env.backend, env.plan.replicas().find(|c| c.node == x.node)) else {
                return (sent, Err(ProbeError::Lab(format!("the container probe reads a node lab runs, and lab runs no node {} here (with --target it runs none)", x.node))));
            };
            let started = std::time::Instant::now();
            let ended = match backend.exited(&c.name).await {
                Ok(e) => e,
                Err(e) => return (sent, Err(ProbeError::Lab(e.to_string()))),
            };
            let mib = |b: u64| b >> 20;
            let memory = if ended.is_none() { backend.memory(&c.name).await.ok().flatten() } else { None };
            let value = serde_json::json!({
                "node": x.node,
                "container": c.name,
                "running": ended.is_none(),
                "exit_code": ended.map(|(code, _)| code),
                "oom_killed": ended.is_some_and(|(_, oom)| oom),
                "memory_limit_mib": mib(c.limits.memory),
                "memory_mib": memory.map(|(u, _)| mib(u)),
                "memory_peak_mib": memory.and_then(|(_, p)| p).map(mib),
            });
            let shown = match ended {
                Some((_, true)) => format!("{} was killed by the kernel for memory (OOMKilled), at its limit of {} MiB", c.name, mib(c.limits.memory)),
                Some((code, false)) => format!("{} is not running: it exited with code {code}", c.name),
                None => format!(
                    "{} is running; memory {} of its {} MiB{}",
                    c.name,
                    memory.map(|(u, _)| format!("{} MiB", mib(u))).unwrap_or_else(|| "unknown".into()),
                    mib(c.limits.memory),
                    memory.and_then(|(_, p)| p).map(|p| format!(", at most {} MiB so far", mib(p))).unwrap_or_default()
                ),
            };
            (sent, Ok(Answer { value, shown, elapsed: started.elapsed() }))
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

/// A ws scenario as a learner reads it.
fn ws_sent(s: &ws::WsSpec) -> String {
    // A `redis://` entry is lab's own subscription to the room, not a node.
    let nodes: Vec<&String> = s.urls.iter().filter(|u| !u.starts_with("redis://")).collect();
    let first = nodes.first().copied().map(|u| ws::ws_url(u, &s.path).unwrap_or_else(|_| u.clone())).unwrap_or_default();
    let origin = s.origin.as_deref().map(|o| format!(" with Origin: {o}")).unwrap_or_default();
    match s.scenario {
        ws::Scenario::Fanout => format!(
            "WebSocket fanout: {} clients round robin over {} node(s) ({first} ...){origin}; {} of them send {} message(s) each, every client should receive every message once, in order per sender",
            s.clients,
            nodes.len(),
            s.senders,
            s.messages
        ),
        ws::Scenario::SlowClient => format!(
            "WebSocket slow client: one client on node 1 never reads; {} others round robin over {} node(s) ({first} ...){origin}; {} of them send {} message(s) of {} bytes each",
            s.clients,
            nodes.len(),
            s.senders,
            s.messages,
            s.size
        ),
        ws::Scenario::Origin => format!("WebSocket handshake to {first}{}", if origin.is_empty() { " without Origin".into() } else { origin }),
        ws::Scenario::SilentClient => format!("two WebSocket clients of {first}{origin}: one stops reading (never answers a ping), one reads but never sends; wait up to {} ms", s.wait.as_millis()),
    }
}
