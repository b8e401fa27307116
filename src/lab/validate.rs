//! Checks that go beyond the shape of the YAML: names, references between
//! services, ports, templates, regular expressions, JSON pointers.

use std::collections::{BTreeSet, HashSet};

use super::model::*;
use super::probes::Probe;

/// One problem, located by its path in the document.
pub(crate) struct Problem {
    pub path: String,
    pub on_key: bool,
    pub message: String,
    pub hint: Option<String>,
}

fn problem(path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Problem {
    let hint = hint.into();
    Problem { path: path.into(), on_key: false, message: message.into(), hint: (!hint.is_empty()).then_some(hint) }
}

fn is_name(s: &str) -> bool {
    crate::plan::is_name(s, 40)
}

const NAME_HINT: &str = "use lower-case letters and digits with single dashes between them, at most 40 characters (it becomes part of container names)";

/// Every variable an environment template may use, with sample values.
pub(crate) fn env_sample_context(def: &LabDef) -> tera::Context {
    let mut ctx = tera::Context::new();
    let mut deps = serde_json::Map::new();
    for name in def.dependencies.keys() {
        deps.insert(name.clone(), serde_json::json!({"host": name, "port": 1, "addr": format!("{name}:1")}));
    }
    ctx.insert("deps", &deps);
    ctx.insert("self", &serde_json::json!({"url": "http://127.0.0.1:1", "node": 1, "host": "app-1", "port": 1, "peer_addr": "app-1:1"}));
    ctx.insert("nodes", &(1..=def.service.replicas).map(|n| serde_json::json!({"node": n, "host": format!("app-{n}"), "peer_addr": format!("app-{n}:1")})).collect::<Vec<_>>());
    ctx.insert("instance", "lab-x");
    ctx.insert("student", "");
    ctx.insert("replicas", &def.service.replicas);
    ctx.insert("peers", &Vec::<String>::new());
    ctx.insert("secret", "0123456789abcdef0123456789abcdef");
    ctx
}

pub(crate) fn validate(def: &LabDef, folder: Option<&str>) -> Vec<Problem> {
    let mut out = Vec::new();
    if !is_name(&def.name) {
        out.push(problem("name", format!("lab name `{}` is not a valid name", def.name), NAME_HINT));
    } else if let Some(folder) = folder {
        if folder != def.name {
            out.push(problem("name", format!("lab name `{}` differs from its folder `{folder}`", def.name), format!("rename the folder or set `name: {folder}`")));
        }
    }
    if def.title.trim().is_empty() {
        out.push(problem("title", "title is empty", "one line saying what the learner builds"));
    }

    let templates = crate::template::names();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for (name, dep) in &def.dependencies {
        let path = format!("dependencies.{name}");
        if !is_name(name) {
            out.push(Problem { on_key: true, ..problem(&path, format!("dependency name `{name}` is not a valid name"), NAME_HINT) });
        }
        if name == "proxy" {
            out.push(Problem { on_key: true, ..problem(&path, "`proxy` is the name of lab's fault proxy", "give the dependency another name") });
        }
        if name == crate::plan::WEBHOOK_SERVICE {
            out.push(Problem { on_key: true, ..problem(&path, "`webhook` is the name of lab's webhook sink", "give the dependency another name") });
        }
        if !templates.contains(&dep.template.as_str()) {
            out.push(problem(format!("{path}.template"), format!("no compose template named `{}`", dep.template), format!("known templates: {}", templates.join(", "))));
        }
        targets.insert(name.clone());
    }

    let svc = &def.service;
    if !is_name(&svc.name) {
        out.push(problem("service.name", format!("service name `{}` is not a valid name", svc.name), NAME_HINT));
    }
    if targets.contains(&svc.name) {
        out.push(problem("service.name", format!("service name `{}` is also a dependency's name", svc.name), "names must be unique within a lab"));
    }
    targets.insert(svc.name.clone());
    if svc.replicas == 0 || svc.replicas > 9 {
        out.push(problem("service.replicas", format!("replicas must be 1 to 9, not {}", svc.replicas), ""));
    }
    let cli = svc.run == RunKind::Cli;
    if cli {
        validate_cli(def, &mut out);
    } else {
        if svc.port == 0 {
            out.push(problem("service.port", "the service needs a port (0 is not one)", "the TCP port your service listens on, e.g. 8080"));
        }
        match &svc.ready {
            None => out.push(problem("service", "the service needs `ready`", "say when it has started, e.g. ready: {path: /healthz}")),
            Some(r) if r.grpc && !r.path.is_empty() => out.push(problem("service.ready.path", "readiness is either an HTTP GET of `path` or `grpc: true`, not both", "drop `path` for a gRPC service")),
            Some(r) if !r.grpc && !r.path.starts_with('/') => out.push(problem("service.ready.path", format!("readiness path `{}` must start with /", r.path), "for example /healthz")),
            Some(_) => {}
        }
    }
    let ctx = env_sample_context(def);
    for (k, v) in &svc.env {
        if let Err(e) = tera::Tera::one_off(v, &ctx, false) {
            out.push(problem(
                format!("service.env.{k}"),
                format!("template of {k} does not render: {}", tera_message(&e)),
                "variables: deps.<dependency>.{host,port,addr}, self.{url,node,host,port}, instance, student, replicas, peers, secret",
            ));
        }
    }

    if def.stages.is_empty() {
        out.push(problem("stages", "the lab has no checks", "add at least one stage with checks; `lab verify` needs something to check"));
    }
    let mut names = HashSet::new();
    for (si, stage) in def.stages.iter().enumerate() {
        let sp = format!("stages[{si}]");
        if !is_name(&stage.stage) {
            out.push(problem(format!("{sp}.stage"), format!("stage name `{}` is not a valid name", stage.stage), NAME_HINT));
        }
        if stage.checks.is_empty() {
            out.push(problem(format!("{sp}.checks"), "a stage needs at least one check", ""));
        }
        for (ci, check) in stage.checks.iter().enumerate() {
            let cp = format!("{sp}.checks[{ci}]");
            if !is_name(&check.name) {
                out.push(problem(format!("{cp}.name"), format!("check name `{}` is not a valid name", check.name), NAME_HINT));
            }
            if !names.insert(check.name.clone()) {
                out.push(problem(format!("{cp}.name"), format!("check name `{}` is used twice", check.name), "check names are unique within a lab; reports and CI key on them"));
            }
            if check.steps.is_empty() {
                out.push(problem(format!("{cp}.steps"), "a check needs at least one step", ""));
            }
            for (i, step) in check.steps.iter().enumerate() {
                let sp = format!("{cp}.steps[{i}]");
                validate_step(step, &sp, &targets, &def.service.name, &mut out);
                match &step.action {
                    Some(Action::Chaos(c)) if !FAULTS.contains(&c.fault.as_str()) => {
                        out.push(problem(format!("{sp}.action"), format!("unknown fault `{}`", c.fault), format!("faults: {}", FAULTS.join(", "))));
                    }
                    Some(Action::WaitLeader(_)) if def.service.leader.is_none() => {
                        out.push(problem(
                            format!("{sp}.action"),
                            "wait-leader needs `service.leader`",
                            "say how to ask a node who leads: service.leader: {path: /status, pointer: /leader, id_env: NODE_ID}",
                        ));
                    }
                    Some(Action::Workload(_) | Action::Check(_)) if def.workload.is_none() => {
                        out.push(problem(format!("{sp}.action"), "this step needs the lab's `workload`", "declare a workload (clients, ops, nemesis) at the top level"));
                    }
                    Some(Action::Check(k)) if !["linearizable", "no-lost-writes"].contains(&k.as_str()) => {
                        out.push(problem(format!("{sp}.action"), format!("unknown history check `{k}`"), "history checks: linearizable, no-lost-writes"));
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(w) = &def.workload {
        for (i, n) in w.nemesis.iter().enumerate() {
            if !FAULTS.contains(&n.fault.as_str()) {
                out.push(problem(format!("workload.nemesis[{i}].fault"), format!("unknown fault `{}`", n.fault), format!("faults: {}", FAULTS.join(", "))));
            }
            if n.target.as_deref() == Some("leader") && def.service.leader.is_none() {
                out.push(problem(format!("workload.nemesis[{i}].target"), "target `leader` needs `service.leader`", ""));
            } else if let Some(t) = n.target.as_deref() {
                check_target(def, &targets, t, &format!("workload.nemesis[{i}].target"), &mut out);
            }
        }
        if w.mix.read + w.mix.write + w.mix.cas == 0 {
            out.push(problem("workload.mix", "the mix has no operations", "give weights, e.g. {read: 50, write: 40, cas: 10}"));
        }
        if w.mix.cas > 0 && w.ops.cas.is_none() {
            out.push(problem("workload.ops", "the mix has cas but ops has no cas mapping", ""));
        }
        if w.redirect.is_some() && def.service.leader.is_none() {
            out.push(problem("workload.redirect", "redirects name the leader by id, which needs `service.leader.id_env`", ""));
        }
    }
    for (name, sc) in &def.chaos {
        if !FAULTS.contains(&sc.fault.as_str()) {
            out.push(problem(format!("chaos.{name}.fault"), format!("unknown fault `{}`", sc.fault), format!("faults: {}", FAULTS.join(", "))));
        }
        if let Some(t) = sc.target.as_deref() {
            check_target(def, &targets, t, &format!("chaos.{name}.target"), &mut out);
        }
    }
    out
}

/// A fault's target as `lab chaos` resolves it: a selector, a node number,
/// or a name of the instance (`redis`, `app`, `app-2`). Templates are checked when they are rendered.
fn check_target(def: &LabDef, targets: &BTreeSet<String>, t: &str, path: &str, out: &mut Vec<Problem>) {
    if t.contains("{{") || matches!(t, "all" | "random" | "minority" | "majority" | "leader") {
        return;
    }
    let replicas = def.service.replicas.max(1);
    let svc = &def.service.name;
    let node_of = |s: &str| s.strip_prefix(svc.as_str()).and_then(|r| r.strip_prefix('-')).and_then(|n| n.parse::<u32>().ok());
    let ok = match t.parse::<u32>() {
        Ok(n) => (1..=replicas).contains(&n),
        Err(_) => targets.contains(t) || node_of(t).is_some_and(|n| (1..=replicas).contains(&n)),
    };
    if !ok {
        let mut known: Vec<String> = (1..=replicas).map(|n| format!("{n}, {svc}-{n}")).collect();
        known.extend(targets.iter().cloned());
        out.push(problem(path, format!("no target `{t}` in this lab"), format!("targets: all, random, minority, majority, leader, {}", known.join(", "))));
    }
}

/// A command-line lab (`service.run: cli`) runs no service between checks: its
/// checks run the program with `exec` probes; nothing listens, nothing can be broken.
fn validate_cli(def: &LabDef, out: &mut Vec<Problem>) {
    let svc = &def.service;
    const WHY: &str = "with `run: cli` the learner's program is run by `exec` probes; nothing listens between checks";
    if svc.port != 0 {
        out.push(problem("service.port", "a command-line program (`run: cli`) listens on no port", "remove `port`"));
    }
    if svc.ready.is_some() {
        out.push(problem("service.ready", "a command-line program (`run: cli`) has no readiness probe", "remove `ready`"));
    }
    if svc.replicas != 1 {
        out.push(problem("service.replicas", "a command-line program (`run: cli`) has no replicas", "remove `replicas`"));
    }
    if svc.leader.is_some() {
        out.push(problem("service.leader", "a command-line program (`run: cli`) has no leader", "remove `leader`"));
    }
    if def.workload.is_some() {
        out.push(problem("workload", "a command-line lab has no service for a workload to call", WHY));
    }
    for name in def.chaos.keys() {
        out.push(Problem { on_key: true, ..problem(format!("chaos.{name}"), "a command-line lab has nothing for chaos to break", WHY) });
    }
    for (si, stage) in def.stages.iter().enumerate() {
        for (ci, check) in stage.checks.iter().enumerate() {
            for (i, step) in check.steps.iter().enumerate() {
                let p = format!("stages[{si}].checks[{ci}].steps[{i}]");
                if step.request.as_ref().is_some_and(|r| r.dep.is_none()) {
                    out.push(problem(format!("{p}.request"), "a command-line lab has no service to send HTTP requests to", "run the program with `probe: {exec: {args: [...]}}`"));
                }
                match &step.action {
                    Some(Action::Sleep(_)) | None => {}
                    Some(a) => out.push(problem(format!("{p}.action"), format!("a command-line lab cannot {}", action_word(a)), WHY)),
                }
            }
        }
    }
}

fn action_word(a: &Action) -> &'static str {
    match a {
        Action::Restart(_) => "restart anything",
        Action::Stop(_) => "stop anything",
        Action::Start(_) => "start anything",
        Action::Sleep(_) => "sleep",
        Action::Chaos(_) => "inject a fault: there is nothing for chaos to break",
        Action::WaitLeader(_) => "wait for a leader",
        Action::Workload(_) | Action::Check(_) => "run a workload",
    }
}

/// Fault names, as `lab chaos` takes them.
const FAULTS: &[&str] = &["kill", "stop", "pause", "restart", "partition", "outage", "bandwidth", "latency", "jitter", "loss", "blackhole", "reset"];

fn validate_probe_step(step: &Step, probe: &Probe, p: &str, out: &mut Vec<Problem>) {
    let kind = probe.kind();
    if let Some(e) = &step.expect {
        if e.status.is_some() || !e.status_in.is_empty() || !e.headers.is_empty() || e.body.is_some() {
            out.push(problem(
                format!("{p}.expect"),
                format!("the answer of the `{kind}` probe has no status, headers or body"),
                "test its fields with `json: {/pointer: matcher}` (see the probe's documentation for the answer's shape)",
            ));
        }
        for (ptr, m) in &e.json {
            if !ptr.is_empty() && !ptr.starts_with('/') {
                out.push(Problem { on_key: true, ..problem(format!("{p}.expect.json.{ptr}"), format!("`{ptr}` is not a JSON pointer"), "a JSON pointer starts with /, e.g. /exit or /stdout") });
            }
            validate_matcher(m, &format!("{p}.expect.json.{ptr}"), out);
        }
    }
    if let Some(IntOrTemplate::Template(t)) = &step.repeat {
        check_template(t, &format!("{p}.repeat"), out);
    }
    // Every string in the spec is a template.
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<Problem>) {
        match v {
            serde_json::Value::String(s) => check_template(s, path, out),
            serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| walk(x, &format!("{path}.{i}"), out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, &format!("{path}.{k}"), out)),
            _ => {}
        }
    }
    if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(probe) {
        for (k, v) in &o {
            walk(v, &format!("{p}.probe.{k}"), out);
        }
    }
}

fn validate_step(step: &Step, p: &str, targets: &BTreeSet<String>, service: &str, out: &mut Vec<Problem>) {
    let kinds = [step.request.is_some(), step.action.is_some(), step.probe.is_some()].iter().filter(|x| **x).count();
    if kinds != 1 {
        out.push(problem(p, "a step has exactly one of `request`, `action` or `probe`", "split it into steps"));
        return;
    }
    if let Some(probe) = &step.probe {
        validate_probe_step(step, probe, p, out);
        return;
    }
    match (&step.request, &step.action) {
        (Some(_), Some(_)) | (None, None) => unreachable!("counted above"),
        (None, Some(action)) => {
            if step.expect.is_some() || step.repeat.is_some() || step.retry_for.is_some() || !step.save.is_empty() {
                out.push(problem(p, "`expect`, `repeat`, `retry_for` and `save` go with a `request`, not an `action`", ""));
            }
            if let Action::Restart(t) | Action::Stop(t) | Action::Start(t) = action {
                if !targets.contains(t) {
                    out.push(problem(format!("{p}.action"), format!("`{t}` is neither a dependency nor the service"), format!("known: {}", targets.iter().cloned().collect::<Vec<_>>().join(", "))));
                }
            }
        }
        (Some(req), None) => {
            const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
            if !METHODS.contains(&req.method.as_str()) {
                out.push(problem(format!("{p}.request.method"), format!("unknown method `{}`", req.method), format!("one of {}", METHODS.join(", "))));
            }
            if !req.path.starts_with('/') {
                out.push(problem(format!("{p}.request.path"), format!("path `{}` must start with /", req.path), ""));
            }
            if let Some(d) = &req.dep {
                if !targets.contains(d) || d == service {
                    out.push(problem(format!("{p}.request.dep"), format!("`{d}` is not a dependency of this lab"), format!("known: {}", targets.iter().cloned().collect::<Vec<_>>().join(", "))));
                }
                if req.node.is_some() {
                    out.push(problem(format!("{p}.request"), "give `dep` or `node`, not both", ""));
                }
            }
            if req.json.is_some() && req.body.is_some() {
                out.push(problem(format!("{p}.request"), "give `json` or `body`, not both", ""));
            }
            for (k, v) in req.headers.iter() {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                    out.push(Problem { on_key: true, ..problem(format!("{p}.request.headers.{k}"), format!("`{k}` is not a valid header name"), "") });
                }
                check_template(v, &format!("{p}.request.headers.{k}"), out);
            }
            check_template(&req.path, &format!("{p}.request.path"), out);
            if let Some(IntOrTemplate::Template(t)) = &step.repeat {
                check_template(t, &format!("{p}.repeat"), out);
            }
            if let Some(expect) = &step.expect {
                for (name, m) in &expect.headers {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        out.push(Problem { on_key: true, ..problem(format!("{p}.expect.headers.{name}"), format!("`{name}` is not a valid header name"), "") });
                    }
                    validate_matcher(m, &format!("{p}.expect.headers.{name}"), out);
                }
                for (ptr, m) in &expect.json {
                    if !ptr.is_empty() && !ptr.starts_with('/') {
                        out.push(Problem {
                            on_key: true,
                            ..problem(format!("{p}.expect.json.{ptr}"), format!("`{ptr}` is not a JSON pointer"), "a JSON pointer starts with /, e.g. /code or /items/0/id")
                        });
                    }
                    validate_matcher(m, &format!("{p}.expect.json.{ptr}"), out);
                }
                if let Some(m) = &expect.body {
                    validate_matcher(m, &format!("{p}.expect.body"), out);
                }
                if expect.status.is_some() && !expect.status_in.is_empty() {
                    out.push(problem(format!("{p}.expect"), "give `status` or `status_in`, not both", ""));
                }
                if let (Some(w), Some(n)) = (expect.within, expect.not_within) {
                    if n >= w {
                        out.push(problem(format!("{p}.expect.not_within"), "`not_within` must be shorter than `within`: no answer could pass both", "lower `not_within` or raise `within`"));
                    }
                }
                if let Some(s) = expect.status {
                    if !(100..=599).contains(&s) {
                        out.push(problem(format!("{p}.expect.status"), format!("{s} is not an HTTP status"), ""));
                    }
                }
            }
            for (var, ptr) in &step.save {
                if !ptr.is_empty() && !ptr.starts_with('/') {
                    out.push(problem(format!("{p}.save.{var}"), format!("`{ptr}` is not a JSON pointer"), "a JSON pointer starts with /, e.g. /code"));
                }
            }
        }
    }
}

fn validate_matcher(m: &Matcher, p: &str, out: &mut Vec<Problem>) {
    if let Some(re) = &m.matches {
        if let Err(e) = regex::Regex::new(re) {
            out.push(problem(format!("{p}.matches"), format!("not a regular expression: {e}"), ""));
        }
    }
    for t in [&m.equals, &m.contains, &m.not_contains].into_iter().flatten() {
        check_template(t, p, out);
    }
    if m.equals.is_none() && m.contains.is_none() && m.not_contains.is_none() && m.matches.is_none() && m.present.is_none() && m.min.is_none() && m.max.is_none() {
        out.push(problem(p, "a matcher needs one of equals, contains, not_contains, matches, present, min, max", ""));
    }
}

fn check_template(t: &str, p: &str, out: &mut Vec<Problem>) {
    if t.contains("{{") || t.contains("{%") {
        let mut tera = tera::Tera::default();
        if let Err(e) = tera.add_raw_template("t", t) {
            out.push(problem(p, format!("template does not parse: {}", tera_message(&e)), ""));
        }
    }
}

/// The innermost message of a tera error (its Display is only the outer one).
pub(crate) fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        msg = s.to_string();
        cur = s.source();
    }
    msg
}
