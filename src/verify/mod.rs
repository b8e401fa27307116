//! Running a lab's checks against the learner's service: ordered stages of
//! checks, each a list of steps (HTTP requests with expectations, actions on
//! the lab). Every failure says what was sent, what came back, what was
//! expected, and a hint.

pub mod expect;
mod polled;
mod probes;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;

use crate::backend::Backend;
use crate::backend::FaultRecord;
use crate::chaos::{Chaos, Fault};
use crate::event::{CheckResult, Event, Failure, Outcome, RunReport, Summary};
use crate::lab::{Action, Check, IntOrTemplate, Lab, Request, Step};
use crate::plan::{ContainerSpec, Plan, Role};
use crate::probe::http::{self, HttpFailure, HttpRequest, HttpResponse};
use crate::probe::wait_ready;
use expect::{fmt_dur, Mismatch};

/// What the checks run against.
pub struct Target<'a> {
    pub lab: &'a Lab,
    pub plan: &'a Plan,
    pub backend: &'a Backend,
    /// Whether lab runs the service (false with `--target`: actions on it are skipped).
    pub managed: bool,
    /// The image network faults' helpers run.
    pub helper_image: String,
    /// The workload's history, recorded once per run.
    pub history: tokio::sync::Mutex<Option<Arc<workload::Recorded>>>,
    /// Operations (indices into the history) a checker blamed.
    pub witness: std::sync::Mutex<Vec<usize>>,
    /// The learner's program as lab built it (exec probes run it), if any.
    pub solution: Option<std::path::PathBuf>,
    /// `--seed`: the workload's seed, over the lab's.
    pub seed: Option<u64>,
    /// A scratch directory of this run, removed at the end; each check works in its own
    /// folder inside it (`{{ run.dir }}`; HOME of exec probes).
    pub workdir: tempfile::TempDir,
    /// `--check` and `--stage`: run only these (and the required stages before them).
    pub only: Selection,
}

/// The checks a run is limited to; empty: all of them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub checks: Vec<String>,
    pub stages: Vec<String>,
}

impl Selection {
    pub fn is_all(&self) -> bool {
        self.checks.is_empty() && self.stages.is_empty()
    }

    /// Names that are not a check or stage of the lab, each with what there is.
    pub fn unknown(&self, def: &crate::lab::LabDef) -> Option<String> {
        let checks: Vec<&str> = def.stages.iter().flat_map(|s| s.checks.iter().map(|c| c.name.as_str())).collect();
        let stages: Vec<&str> = def.stages.iter().map(|s| s.stage.as_str()).collect();
        let mut out = Vec::new();
        for c in self.checks.iter().filter(|c| !checks.contains(&c.as_str())) {
            out.push(format!("--check {c}: {} has no such check; its checks: {}", def.name, checks.join(", ")));
        }
        for s in self.stages.iter().filter(|s| !stages.contains(&s.as_str())) {
            out.push(format!("--stage {s}: {} has no such stage; its stages: {}", def.name, stages.join(", ")));
        }
        (!out.is_empty()).then(|| out.join("\n"))
    }

    /// The checks to run, stage by stage: the selected ones, and every check
    /// of a required stage that comes before one of them (the service must
    /// start, its basics work, before a later check means anything).
    pub fn pick<'d>(&self, def: &'d crate::lab::LabDef) -> Vec<(&'d crate::lab::Stage, Vec<&'d Check>)> {
        let chosen = |st: &crate::lab::Stage, c: &Check| self.is_all() || self.stages.contains(&st.stage) || self.checks.contains(&c.name);
        let last = def.stages.iter().rposition(|st| st.checks.iter().any(|c| chosen(st, c)));
        let mut out = Vec::new();
        for (i, st) in def.stages.iter().enumerate() {
            let picked: Vec<&Check> = if last.is_some_and(|l| i < l) && st.required { st.checks.iter().collect() } else { st.checks.iter().filter(|c| chosen(st, c)).collect() };
            if !picked.is_empty() {
                out.push((st, picked));
            }
        }
        out
    }
}

impl<'a> Target<'a> {
    pub fn new(lab: &'a Lab, plan: &'a Plan, backend: &'a Backend, managed: bool, helper_image: String) -> Self {
        let workdir = tempfile::Builder::new().prefix("lab-verify-").tempdir().unwrap_or_else(|_| tempfile::tempdir_in(".").expect("a scratch directory"));
        Target {
            lab,
            plan,
            backend,
            managed,
            helper_image,
            history: tokio::sync::Mutex::new(None),
            witness: std::sync::Mutex::new(Vec::new()),
            solution: None,
            seed: None,
            workdir,
            only: Selection::default(),
        }
    }
}

/// Render a template string (plain strings pass as they are).
pub(crate) fn render(s: &str, ctx: &tera::Context) -> Result<String, String> {
    if !s.contains("{{") && !s.contains("{%") {
        return Ok(s.to_string());
    }
    tera::Tera::one_off(s, ctx, false).map_err(|e| format!("template {s:?}: {}", crate::lab::tera_message(&e)))
}

pub(crate) fn render_json(v: &serde_json::Value, ctx: &tera::Context) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, ctx)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|x| render_json(x, ctx)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(o) => serde_json::Value::Object(o.iter().map(|(k, x)| Ok((k.clone(), render_json(x, ctx)?))).collect::<Result<_, String>>()?),
        other => other.clone(),
    })
}

/// Render a request against a base URL; also returns how it reads in a report.
pub(crate) fn render_request(req: &Request, ctx: &tera::Context, base: &str) -> Result<(HttpRequest, String), String> {
    let path = render(&req.path, ctx)?;
    let mut headers = BTreeMap::new();
    for (k, v) in &req.headers {
        headers.insert(k.clone(), render(v, ctx)?);
    }
    let (body, json, body_text) = match (&req.json, &req.body) {
        _ if req.fill.is_some() => {
            let n = req.fill.unwrap_or(0) as usize;
            (Some(b"abcdefghijklmnopqrstuvwxyz".iter().copied().cycle().take(n).collect()), false, Some(format!("({n} bytes of filler)")))
        }
        (Some(j), _) => {
            let text = render_json(j, ctx)?.to_string();
            (Some(text.clone().into_bytes()), true, Some(text))
        }
        (None, Some(b)) => {
            let text = render(b, ctx)?;
            (Some(text.clone().into_bytes()), false, Some(text))
        }
        _ => (None, false, None),
    };
    let mut sent = format!("{} {path}", req.method);
    for (k, v) in &headers {
        sent.push_str(&format!("\n{k}: {v}"));
    }
    if let Some(b) = body_text {
        sent.push_str(&format!("\n\n{}", shorten(&b, 300)));
    }
    Ok((HttpRequest { method: req.method.clone(), url: format!("{base}{path}"), headers, body, json, timeout: req.timeout }, sent))
}

/// How long a stop waits before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// Run every stage; events go to `emit` as they happen.
pub async fn run(t: &Target<'_>, emit: &mut (dyn FnMut(&Event) + Send)) -> RunReport {
    let start = Instant::now();
    let def = &t.lab.def;
    let picked = t.only.pick(def);
    let url = t.plan.service_url(1).unwrap_or_default();
    // What is checked, as reports name it: the service's URL, or a command-line lab's program.
    let shown_target = match (&t.plan.program, &t.solution) {
        (Some(p), _) | (None, Some(p)) if url.is_empty() => p.display().to_string(),
        _ => url.clone(),
    };
    emit(&Event::RunStarted { lab: def.name.clone(), instance: t.plan.instance.clone(), target: shown_target.clone(), stages: picked.len(), checks: picked.iter().map(|(_, c)| c.len()).sum() });
    let mut rng = rand::thread_rng();
    let run_id: String = (0..8).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect();
    let run_net = format!("198.18.{}", rng.gen_range(0..=255u8));
    let mut results = Vec::new();
    let mut summary = Summary::default();
    let mut skip_rest: Option<String> = None;
    for (stage, checks) in &picked {
        if let Some(reason) = &skip_rest {
            for c in checks {
                let r = CheckResult {
                    stage: stage.stage.clone(),
                    name: c.name.clone(),
                    expect: c.expect.clone(),
                    outcome: Outcome::Skipped { reason: reason.clone() },
                    duration: Duration::ZERO,
                    notes: vec![],
                    measured: vec![],
                };
                summary.add(&r.outcome);
                emit(&Event::CheckFinished(r.clone()));
                results.push(r);
            }
            continue;
        }
        emit(&Event::StageStarted { stage: stage.stage.clone() });
        let mut stage_failed = false;
        for check in checks.iter().copied() {
            emit(&Event::CheckStarted { stage: stage.stage.clone(), check: check.name.clone(), expect: check.expect.clone() });
            let began = Instant::now();
            // Each check gets its own scratch directory (`run.dir`, HOME of exec probes), so checks do not see each other's files.
            let dir = t.workdir.path().join(&check.name);
            let _ = std::fs::create_dir_all(&dir);
            let mut runner = CheckRunner {
                t,
                check,
                url: url.clone(),
                vars: BTreeMap::new(),
                run_id: run_id.clone(),
                run_net: run_net.clone(),
                stopped: BTreeSet::new(),
                faults: Vec::new(),
                fault_names: BTreeMap::new(),
                dir,
                notes: Vec::new(),
                measured: Vec::new(),
            };
            let mut outcome = runner.run(emit).await;
            if let Err(e) = runner.restore().await {
                if !matches!(outcome, Outcome::Failed(_)) {
                    outcome = Outcome::Error { message: e };
                }
            }
            if let Outcome::Failed(f) = &mut outcome {
                f.logs = service_logs(t).await;
            }
            stage_failed |= matches!(outcome, Outcome::Failed(_) | Outcome::Error { .. });
            let r = CheckResult {
                stage: stage.stage.clone(),
                name: check.name.clone(),
                expect: check.expect.clone(),
                outcome,
                duration: began.elapsed(),
                notes: std::mem::take(&mut runner.notes),
                measured: std::mem::take(&mut runner.measured),
            };
            summary.add(&r.outcome);
            emit(&Event::CheckFinished(r.clone()));
            results.push(r);
        }
        if stage_failed && stage.required {
            let reason = format!("stage `{}` failed and later stages depend on it", stage.stage);
            emit(&Event::StagesSkipped { after: stage.stage.clone(), reason: reason.clone() });
            skip_rest = Some(reason);
        }
    }
    summary.duration = start.elapsed();
    emit(&Event::RunFinished(summary.clone()));
    let history = t.history.lock().await.as_ref().map(|r| crate::event::HistoryReport {
        ops: r.ops.clone(),
        nemesis: r.nemesis.clone(),
        witness: t.witness.lock().unwrap().clone(),
        clients: r.clients,
        seed: r.seed,
    });
    RunReport { lab: def.name.clone(), instance: t.plan.instance.clone(), target: shown_target, checks: results, summary, history }
}

/// The last log lines of each replica of the service, each excerpt headed by
/// the node it came from (`log of app-2 (last 8 lines):`): 20 lines of a
/// single node, 8 of each of several.
async fn service_logs(t: &Target<'_>) -> Vec<String> {
    if !t.managed {
        return vec![];
    }
    let replicas: Vec<&ContainerSpec> = t.plan.replicas().collect();
    let tail = if replicas.len() > 1 { 8 } else { 20 };
    let mut out = Vec::new();
    for c in replicas {
        let node = format!("{}-{}", c.service, c.node);
        let lines = match t.backend.logs(&c.name, tail, false).await {
            Ok(mut stream) => {
                let mut lines = Vec::new();
                while let Some(Ok(chunk)) = stream.next().await {
                    lines.extend(chunk.lines().map(str::to_string));
                }
                Ok(lines)
            }
            Err(e) => Err(e.to_string()),
        };
        out.extend(log_excerpt(&node, lines, tail));
    }
    out
}

/// One node's log excerpt under its heading.
fn log_excerpt(node: &str, lines: Result<Vec<String>, String>, tail: usize) -> Vec<String> {
    match lines {
        Err(e) => vec![format!("log of {node}: could not be read ({e})")],
        Ok(l) if l.iter().all(|x| x.trim().is_empty()) => vec![format!("log of {node}: empty (it wrote nothing to stdout or stderr)")],
        Ok(mut l) => {
            let l = l.split_off(l.len().saturating_sub(tail));
            let mut v = vec![format!("log of {node} (last {} line{}):", l.len(), if l.len() == 1 { "" } else { "s" })];
            v.extend(l);
            v
        }
    }
}

#[cfg(test)]
mod log_excerpt_tests {
    #[test]
    fn a_passed_step_measures_its_poll_time_and_its_bounded_numbers() {
        let step: crate::lab::Step =
            serde_yaml::from_str("request: { path: /x }\nretry_for: 5s\nexpect: { json: { /rate: { min: 100 }, /n: { equals: \"3\" }, /s: { max: 9 }, /gone: { min: 1 } } }").unwrap();
        let got = super::measured(&step, 3, &serde_json::json!({"rate": 1540.5, "n": 3, "s": "7"}), Some(std::time::Duration::from_millis(4211)));
        let shown: Vec<String> = got.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, ["step 3: passed after 4.21 s", "step 3: /rate = 1540.50", "step 3: /s = 7"]);
        // Not polled, nothing bounded: nothing measured.
        let plain: crate::lab::Step = serde_yaml::from_str("request: { path: /x }\nexpect: { status: 200 }").unwrap();
        assert!(super::measured(&plain, 1, &serde_json::json!({}), None).is_empty());
    }

    #[test]
    fn each_excerpt_names_its_node() {
        let lines = (1..=30).map(|i| format!("line {i}")).collect::<Vec<_>>();
        let v = super::log_excerpt("app-2", Ok(lines), 8);
        assert_eq!(v[0], "log of app-2 (last 8 lines):");
        assert_eq!((v.len(), v[1].as_str(), v[8].as_str()), (9, "line 23", "line 30"));
        assert_eq!(super::log_excerpt("app-1", Ok(vec!["panic: boom".into()]), 20), vec!["log of app-1 (last 1 line):".to_string(), "panic: boom".to_string()]);
        assert!(super::log_excerpt("app-3", Ok(vec![]), 8)[0].starts_with("log of app-3: empty"));
        assert!(super::log_excerpt("app-3", Err("no such container".into()), 8)[0].contains("app-3: could not be read (no such container)"));
    }
}

struct CheckRunner<'a> {
    t: &'a Target<'a>,
    check: &'a Check,
    url: String,
    vars: BTreeMap<String, serde_json::Value>,
    run_id: String,
    run_net: String,
    /// Containers this check stopped; started again when it ends.
    stopped: BTreeSet<String>,
    /// Faults this check injected, with the step's fault name; reverted when
    /// it ends, or earlier by a `heal` step.
    faults: Vec<FaultRecord>,
    fault_names: BTreeMap<String, String>,
    /// This check's scratch directory (`run.dir`).
    dir: std::path::PathBuf,
    /// Lines for the verdict whatever the outcome (see `CheckResult::notes`).
    notes: Vec<String>,
    /// What passed steps measured (see `CheckResult::measured`).
    measured: Vec<crate::event::Measured>,
}

/// What one attempt of a request or probe step got.
enum Got {
    Http(Result<HttpResponse, HttpFailure>),
    Probe(Result<crate::probe::Answer, String>),
}

/// Why a step did not pass.
enum StepError {
    Failed(Failure),
    Skip(String),
    Lab(String),
}

impl<'a> CheckRunner<'a> {
    async fn run(&mut self, emit: &mut (dyn FnMut(&Event) + Send)) -> Outcome {
        // A check that acts on the learner's service needs lab to run it.
        if !self.t.managed {
            for s in &self.check.steps {
                if let Some(Action::Restart(n) | Action::Stop(n) | Action::Start(n)) = &s.action {
                    if *n == self.t.lab.def.service.name {
                        return Outcome::Skipped { reason: format!("it {} the service, which lab does not run with --target", verb(s.action.as_ref().unwrap())) };
                    }
                }
            }
        }
        for (i, step) in self.check.steps.iter().enumerate() {
            let res = match (&step.request, &step.action) {
                (Some(_), _) => self.request_step(step, i + 1, emit).await,
                (None, None) if step.probe.is_some() => self.request_step(step, i + 1, emit).await,
                (None, Some(a)) => {
                    emit(&Event::Step { check: self.check.name.clone(), text: action_text(a) });
                    self.action(a, i + 1).await
                }
                _ => Err(StepError::Lab("a step has neither request nor action".into())),
            };
            match res {
                Ok(()) => {}
                Err(StepError::Failed(f)) => return Outcome::Failed(f),
                Err(StepError::Skip(r)) => return Outcome::Skipped { reason: r },
                Err(StepError::Lab(m)) => return Outcome::Error { message: format!("step {}: {m}", i + 1) },
            }
        }
        Outcome::Passed
    }

    /// Every node's base URL (the one service URL when lab runs no replica, e.g. with `--target`).
    fn node_urls(&self) -> Vec<String> {
        let urls = self.t.plan.service_urls();
        if urls.is_empty() {
            vec![self.url.clone()]
        } else {
            urls
        }
    }

    /// Each node's URL inside the lab's network, by the URL lab reaches it at
    /// (Docker's port publishing puts a proxy of its own in between, which reads
    /// and buffers on a client's behalf); none for nodes lab does not run or
    /// whose address it cannot find.
    async fn direct_urls(&self) -> Vec<(String, String)> {
        if !self.t.managed {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (c, url) in self.t.plan.replicas().zip(self.t.plan.service_urls()) {
            if let Ok(ip) = self.t.backend.ip(&c.name).await {
                out.push((url, format!("http://{ip}:{}", c.port.container)));
            }
        }
        out
    }

    fn context(&self, i: u32) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("service", &serde_json::json!({"url": self.url, "urls": self.node_urls()}));
        ctx.insert("run", &serde_json::json!({"id": self.run_id, "net": self.run_net, "dir": self.dir}));
        if let Some(s) = &self.t.solution {
            ctx.insert("solution", s);
        }
        ctx.insert("env", &self.t.plan.service_env.first().cloned().unwrap_or_default());
        let mut deps = serde_json::Map::new();
        for d in self.t.plan.dependencies() {
            deps.insert(d.service.clone(), serde_json::json!({"host": "127.0.0.1", "port": d.port.host, "addr": format!("127.0.0.1:{}", d.port.host)}));
        }
        ctx.insert("deps", &deps);
        ctx.insert("i", &i);
        ctx.insert("secret", &self.t.plan.secret);
        for (k, v) in &self.vars {
            ctx.insert(k.as_str(), v);
        }
        ctx
    }

    fn render(&self, s: &str, ctx: &tera::Context) -> Result<String, StepError> {
        render(s, ctx).map_err(StepError::Lab)
    }

    fn build_request(&self, step: &Step, ctx: &tera::Context) -> Result<(HttpRequest, String), StepError> {
        let req = step.request.as_ref().expect("request step");
        if let Some(d) = &req.dep {
            let base = self.t.plan.dependency_url(d).ok_or_else(|| StepError::Lab(format!("no dependency `{d}` in this instance")))?;
            return render_request(req, ctx, &base).map_err(StepError::Lab);
        }
        let base = match &req.node {
            None => self.url.clone(),
            Some(n) => {
                let n = self.render(n, ctx)?;
                let k: u32 = n.trim().parse().map_err(|_| StepError::Lab(format!("node {n:?} is not a node number")))?;
                self.t.plan.service_url(k).ok_or_else(|| StepError::Lab(format!("there is no node {k}")))?
            }
        };
        render_request(req, ctx, &base).map_err(StepError::Lab)
    }

    /// Render the templates inside an expectation.
    fn render_expect(&self, step: &Step, ctx: &tera::Context) -> Result<crate::lab::Expect, StepError> {
        let mut e = step.expect.clone().unwrap_or_default();
        let fix = |m: &mut crate::lab::Matcher| -> Result<(), StepError> {
            if let Some(x) = &m.equals {
                m.equals = Some(self.render(x, ctx)?);
            }
            if let Some(x) = &m.contains {
                m.contains = Some(self.render(x, ctx)?);
            }
            if let Some(x) = &m.not_contains {
                m.not_contains = Some(self.render(x, ctx)?);
            }
            for b in [&mut m.min, &mut m.max].into_iter().flatten() {
                if let crate::lab::Bound::Template(t) = b {
                    let r = self.render(t, ctx)?;
                    let n = r.trim().parse::<f64>().map_err(|_| StepError::Lab(format!("the bound {t:?} rendered {r:?}, not a number")))?;
                    *b = crate::lab::Bound::Int(n.round() as i64);
                }
            }
            Ok(())
        };
        for m in e.headers.values_mut().chain(e.json.values_mut()).chain(e.body.iter_mut()) {
            fix(m)?;
        }
        Ok(e)
    }

    async fn request_step(&mut self, step: &Step, n: usize, emit: &mut (dyn FnMut(&Event) + Send)) -> Result<(), StepError> {
        let client = http::client();
        let times = match &step.repeat {
            None => 1,
            Some(IntOrTemplate::Int(k)) => *k,
            Some(IntOrTemplate::Template(s)) => {
                let r = self.render(s, &self.context(1))?;
                r.trim().parse().map_err(|_| StepError::Lab(format!("repeat {s:?} rendered {r:?}, not a number")))?
            }
        };
        let paced_from = Instant::now();
        for i in 1..=times {
            if let Some(every) = step.interval {
                tokio::time::sleep_until((paced_from + every * (i - 1)).into()).await;
            }
            let deadline = step.retry_for.map(|d| Instant::now() + d);
            let mut attempts = 0u32;
            let mut polled = polled::Polled::new();
            loop {
                attempts += 1;
                let ctx = self.context(i);
                let (sent, result) = match &step.probe {
                    None => {
                        let (req, sent) = self.build_request(step, &ctx)?;
                        (sent, Got::Http(http::send(&client, &req).await))
                    }
                    Some(p) => {
                        let p = probes::render_probe(p, &ctx).map_err(StepError::Lab)?;
                        let no_env = BTreeMap::new();
                        let nodes = self.node_urls();
                        let direct = if probes::wants_direct(&p) { self.direct_urls().await } else { Vec::new() };
                        let env = probes::ProbeEnv {
                            workdir: &self.dir,
                            solution: self.t.solution.as_deref(),
                            solution_env: self.t.plan.service_env.first().unwrap_or(&no_env),
                            lab: self.t.lab,
                            plan: self.t.plan,
                            nodes: &nodes,
                            direct: &direct,
                            backend: self.t.managed.then_some(self.t.backend),
                        };
                        let (sent, res) = probes::run(&p, &env).await;
                        match res {
                            Ok(a) => (sent, Got::Probe(Ok(a))),
                            Err(probes::ProbeError::NoAnswer(why)) => (sent, Got::Probe(Err(why))),
                            Err(probes::ProbeError::Lab(m)) => return Err(StepError::Lab(m)),
                        }
                    }
                };
                if i == 1 && attempts == 1 {
                    emit(&Event::Step { check: self.check.name.clone(), text: format!("{}{}", sent.lines().next().unwrap_or(""), if times > 1 { format!(" ×{times}") } else { String::new() }) });
                }
                let outcome = match &result {
                    Got::Http(Ok(resp)) => self.evaluate(step, resp, &ctx),
                    Got::Http(Err(f)) => Err(no_answer(f, step)),
                    Got::Probe(Ok(a)) => self.evaluate_answer(step, a, &ctx),
                    Got::Probe(Err(why)) => Err(Mismatch { expected: "an answer".into(), got: why.clone() }),
                };
                match outcome {
                    Ok(()) => {
                        // What a probe measured (e.g. a drain rate) shows with --verbose.
                        if let (Got::Probe(Ok(a)), 1) = (&result, times) {
                            emit(&Event::Step { check: self.check.name.clone(), text: format!("answer: {}", crate::probe::excerpt(&a.shown.replace('\n', "; "), 300)) });
                        }
                        if times == 1 {
                            let value = match &result {
                                Got::Http(Ok(r)) => serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
                                Got::Probe(Ok(a)) => a.value.clone(),
                                _ => serde_json::Value::Null,
                            };
                            self.measured.extend(measured(step, n, &value, step.retry_for.map(|_| polled.elapsed())));
                        }
                        break;
                    }
                    Err(mismatch) => {
                        polled.see(&mismatch.got);
                        if let Some(d) = deadline {
                            if Instant::now() < d {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                continue;
                            }
                        }
                        let which = if step.probe.is_some() && times == 1 && attempts == 1 {
                            // A probe step runs a program or speaks a protocol: not "a request".
                            match &step.probe {
                                Some(crate::lab::Probe::Exec(_)) => "the run".to_string(),
                                _ => "the probe".to_string(),
                            }
                        } else if times > 1 && attempts > 1 {
                            format!("request {i} of {times}, polled for {}:", fmt_dur(step.retry_for.unwrap_or_default()))
                        } else if times > 1 {
                            format!("request {i} of {times}")
                        } else if attempts > 1 {
                            format!("polled for {}:", fmt_dur(step.retry_for.unwrap_or_default()))
                        } else {
                            "the request".to_string()
                        };
                        // A polled value shows how it moved, and the hint follows how it ended.
                        let got = if attempts > 1 { polled.describe() } else { mismatch.got.clone() };
                        // A node the kernel killed for memory is the story, not the silence that followed.
                        // Docker records the kill a moment after the connections break: when
                        // something went unanswered, it is given a second to.
                        let unanswered = match &result {
                            Got::Http(Err(_)) | Got::Probe(Err(_)) => true,
                            Got::Probe(Ok(a)) => a.value.get("no_answer").and_then(|n| n.as_u64()).is_some_and(|n| n > 0),
                            Got::Http(Ok(_)) => false,
                        };
                        let killed = self.killed_for_memory(if unanswered { Duration::from_secs(1) } else { Duration::ZERO }).await;
                        let h = &self.check.hints;
                        let hint = match polled.observed(&mismatch.expected, step.retry_for.unwrap_or_default()) {
                            Some(polled::Observed::Over) => h.over.clone(),
                            Some(polled::Observed::Rising) if attempts > 1 => h.rising.clone(),
                            Some(polled::Observed::Stuck) if attempts > 1 => h.stuck.clone(),
                            _ => None,
                        }
                        .or_else(|| step.hint.clone())
                        .unwrap_or_else(|| self.check.hint.clone());
                        return Err(StepError::Failed(Failure {
                            summary: match &killed {
                                Some(k) => format!("{k}; {which} got {got}; expected {}", mismatch.expected),
                                None => format!("{which} got {got}; expected {}", mismatch.expected),
                            },
                            sent,
                            got: match &result {
                                Got::Http(Ok(r)) => describe(r),
                                Got::Http(Err(f)) => f.to_string(),
                                Got::Probe(Ok(a)) => a.shown.clone(),
                                Got::Probe(Err(why)) => why.clone(),
                            },
                            expected: mismatch.expected,
                            hint,
                            step: n,
                            logs: vec![],
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// The service's nodes the kernel killed for going over their memory
    /// limit, said as a learner reads it; none when lab does not run them.
    /// Asks again for up to `wait` while none is found.
    async fn killed_for_memory(&self, wait: Duration) -> Option<String> {
        if !self.t.managed || !self.t.backend.tells_oom_kills() {
            return None;
        }
        let until = Instant::now() + wait;
        loop {
            let mut said = Vec::new();
            for c in self.t.plan.replicas() {
                if let Ok(Some((_, true))) = self.t.backend.exited(&c.name).await {
                    said.push(format!("{}-{} was killed by the kernel for memory (OOMKilled), at its limit of {} MiB", c.service, c.node, c.limits.memory >> 20));
                }
            }
            if !said.is_empty() {
                return Some(said.join("; "));
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn evaluate_answer(&mut self, step: &Step, a: &crate::probe::Answer, ctx: &tera::Context) -> Result<(), Mismatch> {
        let mut ctx = ctx.clone();
        for (var, ptr) in &step.save {
            match a.value.pointer(ptr) {
                Some(v) => {
                    self.vars.insert(var.clone(), v.clone());
                    ctx.insert(var.as_str(), v);
                }
                None => return Err(Mismatch { expected: format!("an answer with {ptr}"), got: format!("an answer without it: {}", crate::probe::excerpt(&a.value.to_string(), 200)) }),
            }
        }
        let e = match self.render_expect(step, &ctx) {
            Ok(e) => e,
            Err(StepError::Lab(m)) => return Err(Mismatch { expected: "a renderable expectation".into(), got: m }),
            Err(_) => unreachable!(),
        };
        expect::check_answer(a, &e)
    }

    fn evaluate(&mut self, step: &Step, resp: &HttpResponse, ctx: &tera::Context) -> Result<(), Mismatch> {
        // Save first, so the expectation can use what this answer holds.
        let mut ctx = ctx.clone();
        if !step.save.is_empty() {
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
            for (var, ptr) in &step.save {
                match body.pointer(ptr) {
                    Some(v) => {
                        self.vars.insert(var.clone(), v.clone());
                        ctx.insert(var.as_str(), v);
                    }
                    None => {
                        // Only a problem if the answer otherwise looks right: check status first.
                        if let Some(s) = step.expect.as_ref().and_then(|e| e.status) {
                            if s != resp.status {
                                return expect::check(resp, &crate::lab::Expect { status: Some(s), ..Default::default() });
                            }
                        }
                        return Err(Mismatch { expected: format!("a JSON body with {ptr}"), got: format!("a body without it: {}", resp.body_excerpt(200)) });
                    }
                }
            }
        }
        let e = match self.render_expect(step, &ctx) {
            Ok(e) => e,
            Err(StepError::Lab(m)) => return Err(Mismatch { expected: "a renderable expectation".into(), got: m }),
            Err(_) => unreachable!(),
        };
        expect::check(resp, &e)
    }

    fn containers(&self, name: &str) -> Vec<&'a ContainerSpec> {
        self.t.plan.containers.iter().filter(|c| c.service == name).collect()
    }

    async fn action(&mut self, a: &Action, n: usize) -> Result<(), StepError> {
        let lab_err = |e: crate::backend::BackendError| StepError::Lab(e.to_string());
        match a {
            Action::Sleep(d) => tokio::time::sleep(*d).await,
            Action::Chaos(step) => {
                let chaos = self.chaos();
                let fault = Fault::parse(&step.fault, &step.options).map_err(|e| StepError::Lab(e.to_string()))?;
                let sel = match &step.target {
                    Some(t) => Some(self.render(t, &self.context(1))?),
                    None => None,
                };
                // Without a target, the fault's own default, as `lab chaos` and the nemesis have it.
                let targets = crate::chaos::resolve_for(&chaos, &fault, sel.as_deref()).await.map_err(|e| StepError::Lab(e.to_string()))?;
                let rec = chaos.inject(&fault, &targets, None).await.map_err(|e| StepError::Lab(e.to_string()))?;
                // Remember which node it hit, for later steps.
                if let Some(c) = targets.first() {
                    self.vars.insert("target".into(), serde_json::json!(c.node));
                }
                self.fault_names.insert(rec.id.clone(), step.fault.clone());
                self.faults.push(rec);
            }
            Action::Heal(which) => {
                let (heal, keep): (Vec<FaultRecord>, Vec<FaultRecord>) = std::mem::take(&mut self.faults).into_iter().partition(|f| which == "all" || self.fault_names.get(&f.id) == Some(which));
                self.faults = keep;
                let chaos = self.chaos();
                for f in heal.iter().rev() {
                    chaos.revert(f).await.map_err(|e| StepError::Lab(format!("healing {}: {e}", f.id)))?;
                }
                // What the faults stopped (kill, stop, outage) is started by
                // the heal: wait until it is ready (and routed) again.
                let mut back = BTreeSet::new();
                for name in heal.iter().flat_map(|f| f.targets.iter()) {
                    let Some(c) = self.t.plan.containers.iter().find(|c| &c.name == name) else { continue };
                    if self.stopped.contains(name) || !back.insert(name.clone()) {
                        continue;
                    }
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], c.port.host));
                    wait_ready(&c.ready, addr, c.ready_timeout).await.map_err(|e| StepError::Lab(format!("{name} did not come back after the heal: {e}")))?;
                    self.t.backend.wait_routed(name, c.ready_timeout).await.map_err(lab_err)?;
                }
            }
            Action::WaitLeader(within) => {
                let chaos = self.chaos();
                let replicas: Vec<&ContainerSpec> = self.t.plan.replicas().collect();
                let start = Instant::now();
                let mut last;
                loop {
                    match crate::chaos::leader(&chaos, &replicas).await {
                        Ok(l) => {
                            self.vars.insert("leader".into(), serde_json::json!(l.node));
                            let follower = replicas.iter().find(|c| c.node != l.node && !self.stopped.contains(&c.name) && !self.faults.iter().any(|f| f.targets.contains(&c.name))).map(|c| c.node);
                            self.vars.insert("follower".into(), serde_json::json!(follower.unwrap_or(l.node)));
                            self.vars.insert("election".into(), serde_json::json!(fmt_dur(start.elapsed())));
                            break;
                        }
                        // The lab does not say how to find a leader (or says it wrongly): asking again cannot help.
                        Err(e) if e.is_definition() => return Err(StepError::Lab(e.to_string())),
                        Err(e) => last = e.to_string(),
                    }
                    if start.elapsed() > *within {
                        return Err(StepError::Failed(Failure {
                            summary: format!("no leader within {}", fmt_dur(*within)),
                            sent: crate::chaos::leader_asked(self.t.lab),
                            got: last,
                            expected: format!("a leader that the nodes agree on within {}", fmt_dur(*within)),
                            hint: self.check.hint.clone(),
                            step: n,
                            logs: vec![],
                        }));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Action::Workload(_) => {
                let rec = self.recorded(&mut |_: &Event| {}).await?;
                self.note_nemesis(&rec);
            }
            Action::Check(kind) => {
                let rec = self.recorded(&mut |_: &Event| {}).await?;
                self.note_nemesis(&rec);
                self.judge(kind, &rec, n)?;
            }
            Action::Stop(name) => {
                for c in self.containers(name) {
                    self.t.backend.stop(&c.name, GRACE).await.map_err(lab_err)?;
                    self.stopped.insert(c.name.clone());
                }
            }
            Action::Start(name) | Action::Restart(name) => {
                let cs = self.containers(name);
                if cs.is_empty() {
                    return Err(StepError::Skip(format!("`{name}` has no containers in this instance")));
                }
                for c in &cs {
                    if matches!(a, Action::Restart(_)) {
                        self.t.backend.restart(&c.name, GRACE).await.map_err(lab_err)?;
                    } else {
                        self.t.backend.start(&c.name).await.map_err(lab_err)?;
                    }
                    self.stopped.remove(&c.name);
                }
                // Faults still in force on a node started again hold on it (a
                // partition is cut again at its new address).
                let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
                self.chaos().after_start(&names).await.map_err(|e| StepError::Lab(e.to_string()))?;
                for c in cs {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], c.port.host));
                    if let Err(last) = wait_ready(&c.ready, addr, c.ready_timeout).await {
                        if c.role == Role::Service {
                            return Err(StepError::Failed(Failure {
                                summary: format!("{} did not become ready again within {}", c.name, fmt_dur(c.ready_timeout)),
                                sent: action_text(a),
                                got: last,
                                expected: format!("{} ready after the {}", c.service, verb(a)),
                                hint: self.check.hint.clone(),
                                step: n,
                                logs: vec![],
                            }));
                        }
                        return Err(StepError::Lab(format!("{} did not become ready again: {last}", c.name)));
                    }
                    // On a cluster, also reachable again through its Services (not only its port-forward).
                    self.t.backend.wait_routed(&c.name, c.ready_timeout).await.map_err(lab_err)?;
                }
            }
        }
        Ok(())
    }

    fn chaos(&self) -> Chaos<'a> {
        Chaos { backend: self.t.backend, plan: self.t.plan, lab: self.t.lab, helper_image: self.t.helper_image.clone() }
    }

    /// The workload's history, run now if this run has none yet.
    async fn recorded(&mut self, emit: &mut (dyn FnMut(&Event) + Send)) -> Result<Arc<workload::Recorded>, StepError> {
        let mut slot = self.t.history.lock().await;
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let w = self.t.lab.def.workload.as_ref().ok_or_else(|| StepError::Lab(format!("lab {} declares no workload", self.t.lab.name())))?;
        let rec = Arc::new(workload::run(self.t, w, &self.run_id, emit).await.map_err(StepError::Lab)?);
        *slot = Some(rec.clone());
        Ok(rec)
    }

    /// Faults of the workload's nemesis that lab could not inject or heal:
    /// lines of the verdict of their own (a warning when the check passes),
    /// since they are lab's problem, not the service's.
    fn note_nemesis(&mut self, rec: &workload::Recorded) {
        for note in workload::nemesis_notes(rec) {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }

    /// Judge a recorded history (see `workload::judge`).
    fn judge(&self, kind: &str, rec: &workload::Recorded, n: usize) -> Result<(), StepError> {
        match workload::judge(kind, rec).map_err(StepError::Lab)? {
            None => Ok(()),
            Some(p) => {
                if kind == "linearizable" {
                    *self.t.witness.lock().unwrap() = p.witness;
                }
                Err(StepError::Failed(Failure { summary: p.summary, sent: workload::describe_run(rec), got: p.got, expected: p.expected, hint: self.check.hint.clone(), step: n, logs: vec![] }))
            }
        }
    }

    /// Start what this check stopped, and wait until it is ready.
    async fn restore(&mut self) -> Result<(), String> {
        let faults: Vec<FaultRecord> = std::mem::take(&mut self.faults);
        let chaos = self.chaos();
        for f in faults.iter().rev() {
            chaos.revert(f).await.map_err(|e| format!("healing {}: {e}", f.id))?;
        }
        let names: Vec<String> = std::mem::take(&mut self.stopped).into_iter().collect();
        for name in names {
            let Some(c) = self.t.plan.containers.iter().find(|c| c.name == name) else {
                continue;
            };
            self.t.backend.start(&name).await.map_err(|e| e.to_string())?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], c.port.host));
            wait_ready(&c.ready, addr, c.ready_timeout).await.map_err(|e| format!("{name} did not come back after the check: {e}"))?;
            self.t.backend.wait_routed(&name, c.ready_timeout).await.map_err(|e| format!("{name} did not come back after the check: {e}"))?;
        }
        Ok(())
    }
}

/// What a passed step measured: how long it was polled until it passed, and
/// each number its expectation bounds with `min`/`max`.
fn measured(step: &Step, n: usize, answer: &serde_json::Value, polled: Option<Duration>) -> Vec<crate::event::Measured> {
    let mut out = Vec::new();
    if let Some(d) = polled {
        out.push(crate::event::Measured { step: n, what: "passed after".into(), value: (d.as_secs_f64() * 1000.0).round() / 1000.0, unit: "s".into() });
    }
    for (ptr, m) in step.expect.iter().flat_map(|e| e.json.iter()) {
        if m.min.is_none() && m.max.is_none() {
            continue;
        }
        let v = answer.pointer(ptr).and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
        if let Some(value) = v {
            out.push(crate::event::Measured { step: n, what: ptr.clone(), value, unit: String::new() });
        }
    }
    out
}

fn verb(a: &Action) -> &'static str {
    match a {
        Action::Restart(_) => "restarts",
        Action::Stop(_) => "stops",
        Action::Start(_) => "starts",
        Action::Sleep(_) => "sleeps",
        Action::Chaos(_) => "breaks",
        Action::Heal(_) => "heals",
        Action::WaitLeader(_) => "waits for a leader of",
        Action::Workload(_) => "runs a workload on",
        Action::Check(_) => "checks",
    }
}

fn action_text(a: &Action) -> String {
    match a {
        Action::Restart(n) => format!("restart {n}"),
        Action::Stop(n) => format!("stop {n}"),
        Action::Start(n) => format!("start {n}"),
        Action::Sleep(d) => format!("sleep {}", fmt_dur(*d)),
        Action::Chaos(c) => format!("chaos {} {}", c.fault, c.target.as_deref().unwrap_or("(its default target)")),
        Action::Heal(w) => format!("heal {w}"),
        Action::WaitLeader(d) => format!("wait up to {} for a leader", fmt_dur(*d)),
        Action::Workload(_) => "run the workload".into(),
        Action::Check(k) => format!("check the history: {k}"),
    }
}

/// Check a recorded history for linearizability: Ok(None) when it is,
/// Ok(Some((explanation, witness op indices))) when not, Err(reason) when the
/// checker cannot decide. Every time in the explanation is in seconds from
/// the start of the workload (`[2.178 s, 2.180 s]`). Reads lab could not read
/// a value from are `fail` in the history, so they are left out.
pub fn linearizability(rec: &workload::Recorded) -> Result<Option<(String, Vec<usize>)>, String> {
    use crate::checker::{self, CheckOptions, Func, Op, TimeUnit, Verdict};
    fn value(v: &serde_json::Value) -> checker::Value {
        match v {
            serde_json::Value::Null => checker::Value::Null,
            serde_json::Value::Bool(b) => checker::Value::Bool(*b),
            serde_json::Value::Number(n) => n.as_i64().map(checker::Value::Int).unwrap_or_else(|| checker::Value::Str(n.to_string())),
            serde_json::Value::String(s) => checker::Value::Str(s.clone()),
            serde_json::Value::Array(a) => checker::Value::List(a.iter().map(value).collect()),
            other => checker::Value::Str(other.to_string()),
        }
    }
    let mut ops = Vec::new();
    let mut index = Vec::new();
    for (i, o) in rec.ops.iter().enumerate() {
        let f = match o.f.as_str() {
            "read" => Func::Read,
            "write" => Func::Write,
            "cas" => Func::Cas,
            _ => continue,
        };
        let p = o.process as u64;
        let op = match o.kind {
            workload::OpType::Ok => Op::ok(p, &o.key, f, value(&o.value), value(&o.output), o.invoke, o.complete),
            workload::OpType::Info => Op::info(p, &o.key, f, value(&o.value), o.invoke, None),
            // It did not happen: it constrains nothing.
            workload::OpType::Fail => continue,
        };
        ops.push(op);
        index.push(i);
    }
    let history = checker::History::new(ops);
    let unit = TimeUnit::Nanos;
    let result = checker::check(&history, &CheckOptions { time_unit: unit, ..CheckOptions::with_budget(Duration::from_secs(30)) });
    match result.verdict {
        Verdict::Linearizable => Ok(None),
        Verdict::Unknown => Err(result.reason.unwrap_or_else(|| "the time budget ran out".into())),
        Verdict::NotLinearizable => {
            let Some(w) = result.witness else {
                return Ok(Some(("no witness was found within the budget".into(), vec![])));
            };
            let mut text = format!("{}\nthe operations that cannot be ordered (times in seconds from the start of the workload):", w.explanation);
            let mut blamed = Vec::new();
            for op in &w.ops {
                let i = index.get(op.index).copied().unwrap_or(op.index);
                blamed.push(i);
                let h = &rec.ops[i];
                let who = if h.process < rec.clients.max(1) { format!("client {}", h.process) } else { "lab's read after healing".into() };
                let what = match h.f.as_str() {
                    "read" => format!("read {} -> {}", h.key, h.output),
                    "cas" => format!("cas {} {} -> {}", h.key, h.value[0], h.value[1]),
                    f => format!("{f} {} {}", h.key, h.value),
                };
                // The status a write or cas got (a read shows what it read).
                let what = if h.f == "read" || h.note.is_empty() { what } else { format!("{what} ({})", h.note) };
                let span = if h.kind == workload::OpType::Info { format!("{} (unknown outcome)", unit.span(h.invoke, None)) } else { unit.span(h.invoke, Some(h.complete)) };
                let via = if h.node == h.answered_by { format!("via node {}", h.node) } else { format!("sent to node {}, answered by node {}", h.node, h.answered_by) };
                text.push_str(&format!("\n  process {} ({who}): {what} {span} {via}{}", h.process, if op.context { " (context)" } else { "" }));
            }
            Ok(Some((text, blamed)))
        }
    }
}

fn no_answer(f: &HttpFailure, step: &Step) -> Mismatch {
    let expected = match step.expect.as_ref().and_then(|e| e.status) {
        Some(s) => format!("status {s} {}{}", expect::reason(s), step.expect.as_ref().and_then(|e| e.within).map(|w| format!(" within {}", fmt_dur(w))).unwrap_or_default()),
        None => "an answer".into(),
    };
    let got = match f {
        HttpFailure::Timeout(_) => format!("no answer within {} (the service hung)", fmt_dur(step.request.as_ref().map(|r| r.timeout).unwrap_or_default())),
        other => other.to_string(),
    };
    Mismatch { expected, got }
}

/// A response as shown in a failure.
fn describe(r: &HttpResponse) -> String {
    let mut s = format!("HTTP {} {} after {}", r.status, r.reason, fmt_dur(r.elapsed));
    for (k, v) in &r.headers {
        if ["location", "retry-after", "content-type"].contains(&k.as_str()) {
            s.push_str(&format!("\n{k}: {v}"));
        }
    }
    let body = r.body_excerpt(300);
    if !body.is_empty() {
        s.push_str(&format!("\n\n{body}"));
    }
    if r.truncated {
        s.push_str(&format!("\n(body cut at {} bytes)", http::MAX_BODY));
    }
    s
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod selection_tests {
    use super::Selection;

    fn names(s: &Selection, lab: &str) -> Vec<String> {
        let lab = crate::lab::Catalogue::new(vec![]).find(lab).unwrap();
        s.pick(&lab.def).iter().flat_map(|(_, cs)| cs.iter().map(|c| c.name.clone())).collect()
    }

    #[test]
    fn one_check_runs_with_the_required_stages_before_it() {
        let lab = crate::lab::Catalogue::new(vec![]).find("url-shortener").unwrap();
        let all: Vec<String> = lab.def.stages.iter().flat_map(|s| s.checks.iter().map(|c| c.name.clone())).collect();
        assert_eq!(names(&Selection::default(), "url-shortener"), all);
        // The last check of the last stage: every required stage before it comes along.
        let last = lab.def.stages.last().unwrap();
        let pick = Selection { checks: vec![last.checks.last().unwrap().name.clone()], stages: vec![] };
        let mut want: Vec<String> = lab.def.stages.iter().rev().skip(1).rev().filter(|s| s.required).flat_map(|s| s.checks.iter().map(|c| c.name.clone())).collect();
        want.push(last.checks.last().unwrap().name.clone());
        assert_eq!(names(&pick, "url-shortener"), want);
        // A check of the first stage runs alone.
        let first = &lab.def.stages[0].checks[0].name;
        assert_eq!(names(&Selection { checks: vec![first.clone()], stages: vec![] }, "url-shortener"), vec![first.clone()]);
        // A stage runs whole.
        let st = &lab.def.stages[0];
        assert_eq!(names(&Selection { checks: vec![], stages: vec![st.stage.clone()] }, "url-shortener"), st.checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
        let bad = Selection { checks: vec!["nope".into()], stages: vec!["later".into()] }.unknown(&lab.def).unwrap();
        assert!(bad.contains("--check nope: url-shortener has no such check; its checks: ") && bad.contains(first), "{bad}");
        assert!(bad.contains("--stage later: url-shortener has no such stage; its stages: "), "{bad}");
    }
}
