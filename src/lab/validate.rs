//! Checks that go beyond the shape of the YAML: names, references between
//! services, ports, templates, regular expressions, JSON pointers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

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
    ctx.insert("self", &serde_json::json!({"url": "http://127.0.0.1:1", "node": 1, "host": "app-1", "port": 1, "peer_addr": "app-1:1", "data_dir": crate::plan::DATA_DIR}));
    ctx.insert("nodes", &(1..=def.service.replicas).map(|n| serde_json::json!({"node": n, "host": format!("app-{n}"), "peer_addr": format!("app-{n}:1")})).collect::<Vec<_>>());
    ctx.insert("instance", "lab-x");
    ctx.insert("student", "");
    ctx.insert("replicas", &def.service.replicas);
    ctx.insert("peers", &Vec::<String>::new());
    ctx.insert("secret", "0123456789abcdef0123456789abcdef");
    ctx
}

/// The service's environment as the plan renders it, with sample values.
fn sample_env(def: &LabDef) -> BTreeMap<String, String> {
    let ctx = env_sample_context(def);
    def.service.env.iter().map(|(k, t)| (k.clone(), tera::Tera::one_off(t, &ctx, false).unwrap_or_else(|_| t.clone()))).collect()
}

/// What a node's argument and id templates see: the environment templates'
/// variables and the node's rendered environment as `env`, as the plan has them.
fn node_sample_context(def: &LabDef) -> tera::Context {
    let mut ctx = env_sample_context(def);
    ctx.insert("env", &sample_env(def));
    ctx
}

/// The variables a step's templates may use, as `lab verify` renders them
/// (`verify::CheckRunner::context`), with sample values: what every step has,
/// plus what earlier steps of the same check set (`save:`, `wait-leader`, `chaos`).
#[derive(Clone)]
struct Scope {
    vars: serde_json::Map<String, serde_json::Value>,
    /// Variables set by steps; their shape is only known when the check runs.
    set: BTreeSet<String>,
    /// Why a variable that is not here is not.
    why: BTreeMap<String, Why>,
    /// The step (from 1) and its check, for messages.
    step: usize,
    check: String,
}

/// Why a variable some step sets is not defined at another.
#[derive(Clone)]
enum Why {
    /// Set by this step (its `save:`), or a later one, of this check.
    Step(usize, &'static str),
    /// Saved only in another check.
    OtherCheck(String),
    /// Set by an action that this check does not have.
    Action(&'static str),
}

/// What every step of a check can use: `service`, `run`, `env`, `deps`, `i`, `secret`
/// (and `solution` in a command-line lab), with sample values.
fn step_base_vars(def: &LabDef) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut v = serde_json::Map::new();
    let replicas = def.service.replicas.max(1);
    v.insert("service".into(), json!({"url": "http://127.0.0.1:1", "urls": (1..=replicas).map(|n| format!("http://127.0.0.1:{n}")).collect::<Vec<_>>()}));
    v.insert("run".into(), json!({"id": "0123abcd", "net": "198.18.0", "dir": "/tmp/lab-verify/check"}));
    if def.service.run == RunKind::Cli {
        v.insert("solution".into(), json!("/tmp/solution"));
    }
    // The service's environment as the plan renders it.
    v.insert("env".into(), json!(sample_env(def)));
    // Every container of the plan with the role of a dependency: the lab's, the fault proxy, the webhook sink.
    let mut deps: Vec<String> = def.dependencies.keys().cloned().collect();
    if def.dependencies.values().any(|d| d.proxy) || (def.service.replicas > 1 && def.service.peers.as_ref().is_some_and(|p| p.proxy)) {
        deps.push("proxy".into());
    }
    let webhook = def.dependencies.iter().any(|(name, d)| crate::template::render(&d.template, "image", name, "lab-x", &d.options).is_ok_and(|(_, spec)| spec.lab.webhook));
    if webhook {
        deps.push(crate::plan::WEBHOOK_SERVICE.to_string());
    }
    v.insert("deps".into(), serde_json::Value::Object(deps.into_iter().map(|d| (d.clone(), json!({"host": "127.0.0.1", "port": 1, "addr": "127.0.0.1:1"}))).collect()));
    v.insert("i".into(), json!(1));
    v.insert("secret".into(), json!("0123456789abcdef0123456789abcdef"));
    v
}

/// The variables a step sets for the steps after it, with a sample value.
fn step_sets(step: &Step) -> Vec<(String, serde_json::Value)> {
    use serde_json::json;
    let mut v: Vec<(String, serde_json::Value)> = step.save.keys().map(|k| (k.clone(), json!("1"))).collect();
    match &step.action {
        Some(Action::WaitLeader(_)) => v.extend([("leader".into(), json!(1)), ("follower".into(), json!(2)), ("election".into(), json!("1.2s"))]),
        Some(Action::Chaos(_)) => v.push(("target".into(), json!(1))),
        _ => {}
    }
    v
}

/// How a step sets its variables, in words.
fn set_by(step: &Step) -> &'static str {
    match &step.action {
        Some(Action::WaitLeader(_)) => "the `wait-leader` action",
        Some(Action::Chaos(_)) => "the `chaos` action",
        _ => "the `save:`",
    }
}

impl Scope {
    fn context(&self) -> tera::Context {
        tera::Context::from_value(serde_json::Value::Object(self.vars.clone())).unwrap_or_default()
    }

    fn with(&self, sets: &[(String, serde_json::Value)]) -> Scope {
        let mut s = self.clone();
        for (k, v) in sets {
            s.vars.insert(k.clone(), v.clone());
            s.set.insert(k.clone());
            s.why.remove(k);
        }
        s
    }

    /// Why a variable is not defined at this step, when some step sets it.
    fn why(&self, name: &str) -> Option<String> {
        Some(match self.why.get(name)? {
            Why::Step(n, by) if *n == self.step => format!("`{name}` is set by {by} of this step, after its request: only its `expect` can use it"),
            Why::Step(n, by) => format!("`{name}` is set by {by} of step {n}, after this one; move that step before this one"),
            Why::OtherCheck(c) => format!("`{name}` is saved in check `{c}`; variables do not carry over from one check to another, so save it again in this check"),
            Why::Action(a) => format!("`{name}` is set by {a}; add one before this step"),
        })
    }

    /// The variables, as a learner would write them: `run.{id,net,dir}`, `deps.cache.{host,port,addr}`, `leader`.
    fn known(&self) -> String {
        fn describe(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(o) if o.values().all(|x| x.is_object()) && !o.is_empty() => o.iter().for_each(|(k, x)| describe(&format!("{prefix}.{k}"), x, out)),
                serde_json::Value::Object(o) if o.is_empty() => out.push(format!("{prefix} (empty)")),
                serde_json::Value::Object(o) => out.push(format!("{prefix}.{{{}}}", o.keys().cloned().collect::<Vec<_>>().join(","))),
                _ => out.push(prefix.to_string()),
            }
        }
        let mut fixed = Vec::new();
        let mut set = Vec::new();
        for (k, v) in &self.vars {
            if self.set.contains(k) {
                set.push(k.clone());
            } else {
                describe(k, v, &mut fixed);
            }
        }
        let mut s = format!("variables here: {}", fixed.join(", "));
        if !set.is_empty() {
            s.push_str(&format!("; set by earlier steps of this check: {}", set.join(", ")));
        }
        s
    }
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
            Some(r) if r.grpc && r.tcp => {
                out.push(problem("service.ready.tcp", "readiness is one of an HTTP GET of `path`, `grpc: true` or `tcp: true`, not several", "keep the one that fits the service"))
            }
            Some(r) if (r.grpc || r.tcp) && !r.path.is_empty() => out.push(problem(
                "service.ready.path",
                format!("readiness is either an HTTP GET of `path` or `{}: true`, not both", if r.grpc { "grpc" } else { "tcp" }),
                if r.grpc { "drop `path` for a gRPC service" } else { "drop `path` to wait only for the port, or `tcp` to wait for the GET" },
            )),
            Some(r) if !r.grpc && !r.tcp && !r.path.starts_with('/') => out.push(problem(
                "service.ready.path",
                if r.path.is_empty() { "readiness needs a way: an HTTP GET of `path`, `grpc: true` or `tcp: true`".to_string() } else { format!("readiness path `{}` must start with /", r.path) },
                "for example ready: {path: /healthz}; a program with no health route: ready: {tcp: true}",
            )),
            Some(_) => {}
        }
    }
    let ctx = env_sample_context(def);
    for (k, v) in &svc.env {
        if let Err(e) = tera::Tera::one_off(v, &ctx, false) {
            out.push(problem(
                format!("service.env.{k}"),
                format!("template of {k} does not render: {}", tera_message(&e)),
                "variables: deps.<dependency>.{host,port,addr}, self.{url,node,host,port,peer_addr,data_dir}, nodes, instance, student, replicas, peers, secret",
            ));
        }
    }
    // The arguments see the same variables, and the node's environment as `env`.
    let arg_ctx = node_sample_context(def);
    for (i, a) in svc.command.iter().enumerate() {
        if let Err(e) = tera::Tera::one_off(a, &arg_ctx, false) {
            out.push(problem(
                format!("service.command[{i}]"),
                format!("argument {} does not render: {}", i + 1, tera_message(&e)),
                "variables: those of service.env, and env.<VAR> (the node's environment)",
            ));
        }
    }
    if svc.run == crate::lab::RunKind::Cli && !svc.command.is_empty() {
        out.push(problem("service.command", "a command-line program (`run: cli`) gets its arguments from each check, not from `service.command`", "give the arguments in the checks' exec probes"));
    }
    if let Some(p) = &svc.program {
        if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..") {
            out.push(problem("service.program", format!("program `{p}` is not a path inside the solution folder"), "name the executable relative to the folder's top, e.g. program: bin/store"));
        }
    }

    if def.stages.is_empty() {
        out.push(problem("stages", "the lab has no checks", "add at least one stage with checks; `lab verify` needs something to check"));
    }
    let mut names = HashSet::new();
    let base_vars = step_base_vars(def);
    // Variables saved by some check, for the hint when another check uses them.
    let mut saved_in: BTreeMap<String, String> = BTreeMap::new();
    for check in def.stages.iter().flat_map(|s| &s.checks) {
        for step in &check.steps {
            for (name, _) in step_sets(step) {
                saved_in.entry(name).or_insert_with(|| check.name.clone());
            }
        }
    }
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
            hints_can_show(check, &cp, &mut out);
            // What each step may use: the base variables and what the steps before it set.
            let mut scope = Scope { vars: base_vars.clone(), set: BTreeSet::new(), why: BTreeMap::new(), step: 0, check: check.name.clone() };
            for (name, other) in &saved_in {
                if *other != check.name {
                    scope.why.insert(name.clone(), Why::OtherCheck(other.clone()));
                }
            }
            for name in ["leader", "follower", "election"] {
                scope.why.insert(name.into(), Why::Action("a `wait-leader` action"));
            }
            scope.why.insert("target".into(), Why::Action("a `chaos` action (the node it hit)"));
            // The first step that sets a name is the one to name.
            for (i, step) in check.steps.iter().enumerate().rev() {
                for (name, _) in step_sets(step) {
                    scope.why.insert(name, Why::Step(i + 1, set_by(step)));
                }
            }
            for (i, step) in check.steps.iter().enumerate() {
                let sp = format!("{cp}.steps[{i}]");
                scope.step = i + 1;
                validate_step(step, &sp, &targets, &def.service.name, &scope, &mut out);
                scope = scope.with(&step_sets(step));
                match &step.action {
                    Some(Action::Chaos(c)) if !FAULTS.contains(&c.fault.as_str()) => {
                        out.push(problem(format!("{sp}.action"), format!("unknown fault `{}`", c.fault), format!("faults: {}", FAULTS.join(", "))));
                    }
                    Some(Action::WaitLeader(_)) if def.service.leader.is_none() => {
                        out.push(problem(format!("{sp}.action"), "wait-leader needs `service.leader`, and the service has none", no_leader_hint()));
                    }
                    Some(Action::Chaos(c)) if c.target.as_deref() == Some("leader") && def.service.leader.is_none() => {
                        out.push(problem(format!("{sp}.action.chaos.target"), "the target `leader` needs `service.leader`, and the service has none", no_leader_hint()));
                    }
                    Some(Action::Workload(_) | Action::Check(_)) if def.workload.is_none() => {
                        out.push(problem(format!("{sp}.action"), "this step needs the lab's `workload`", "declare a workload (clients, ops, nemesis) at the top level"));
                    }
                    Some(Action::Heal(which)) if !check.steps[..i].iter().any(|s| matches!(&s.action, Some(Action::Chaos(c)) if which == "all" || c.fault == *which)) => {
                        let earlier: Vec<String> = check.steps[..i]
                            .iter()
                            .filter_map(|s| match &s.action {
                                Some(Action::Chaos(c)) => Some(format!("`{}`", c.fault)),
                                _ => None,
                            })
                            .collect();
                        out.push(problem(
                            format!("{sp}.action.heal"),
                            format!("heal `{which}`, but no earlier step of this check injects {}", if which == "all" { "a fault".to_string() } else { format!("`{which}`") }),
                            if earlier.is_empty() {
                                "put a `chaos` step before it, or remove it (a check's faults are healed when it ends anyway)".to_string()
                            } else {
                                format!("heal `all` or one of the faults injected before it: {}", earlier.join(", "))
                            },
                        ));
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
                out.push(problem(format!("workload.nemesis[{i}].target"), "the target `leader` needs `service.leader`, and the service has none", no_leader_hint()));
            } else if let Some(t) = n.target.as_deref() {
                check_target(def, &targets, t, &format!("workload.nemesis[{i}].target"), &mut out);
            }
            if FAULTS.contains(&n.fault.as_str()) {
                match crate::chaos::Fault::parse(&n.fault, &n.options) {
                    Err(e) => out.push(problem(format!("workload.nemesis[{i}].options"), format!("the options of {} do not parse: {e}", n.fault), "")),
                    Ok(f) if n.target.is_none() && crate::chaos::default_target(&f).is_none() => {
                        out.push(problem(format!("workload.nemesis[{i}]"), crate::chaos::missing_target(&f), "add `target:` to this step"));
                    }
                    Ok(_) => {}
                }
            }
        }
        if w.mix.read + w.mix.write + w.mix.cas == 0 {
            out.push(problem("workload.mix", "the mix has no operations", "give weights, e.g. {read: 50, write: 40, cas: 10}"));
        }
        if w.mix.cas > 0 && w.ops.cas.is_none() {
            out.push(problem("workload.ops", "the mix has cas but ops has no cas mapping", ""));
        }
        if w.redirect.is_some() && !def.service.leader.as_ref().is_some_and(|l| l.id.is_some() || l.id_env.is_some()) {
            out.push(problem(
                "workload.redirect",
                "a redirect names the leader by its id, and the service does not say what each node's id is",
                "give `service.leader.id_env` (the variable of service.env holding each node's id, e.g. NODE_ID) or `service.leader.id` (a template, e.g. \"n{{ self.node }}\")",
            ));
        }
        for (op, m) in [("read", Some(&w.ops.read)), ("write", Some(&w.ops.write)), ("cas", w.ops.cas.as_ref())] {
            if let Some(ValueAt::Pointer(ptr)) = m.and_then(|m| m.value.as_ref()) {
                if !ptr.is_empty() && !ptr.starts_with('/') {
                    out.push(problem(
                        format!("workload.ops.{op}.value"),
                        format!("`{ptr}` is not a JSON pointer, so no answer would ever hold the value there"),
                        format!("a JSON pointer starts with /: write /{ptr}; for a body that is the value itself write {{body: text}}"),
                    ));
                }
            }
        }
    }
    for (name, sc) in &def.chaos {
        if !FAULTS.contains(&sc.fault.as_str()) {
            out.push(problem(format!("chaos.{name}.fault"), format!("unknown fault `{}`", sc.fault), format!("faults: {}", FAULTS.join(", "))));
        }
        if sc.target.as_deref() == Some("leader") && def.service.leader.is_none() {
            out.push(problem(format!("chaos.{name}.target"), "the target `leader` needs `service.leader`, and the service has none", no_leader_hint()));
        } else if let Some(t) = sc.target.as_deref() {
            check_target(def, &targets, t, &format!("chaos.{name}.target"), &mut out);
        }
    }
    if def.service.run != RunKind::Cli {
        validate_leader(def, &mut out);
    }
    validate_starter(def, &mut out);
    out
}

/// `starter`: routes of the service's kind, each naming a check of the lab,
/// no route twice, work naming a check, libraries with their Debian package.
fn validate_starter(def: &LabDef, out: &mut Vec<Problem>) {
    let kind = def.starter_kind();
    let checks: Vec<&str> = def.stages.iter().flat_map(|s| s.checks.iter().map(|c| c.name.as_str())).collect();
    let known = |c: &str| checks.contains(&c);
    let check_hint = || format!("checks of this lab: {}", checks.join(", "));
    let mut seen = BTreeSet::new();
    for (i, r) in def.starter.routes.iter().enumerate() {
        let p = format!("starter.routes[{i}]");
        if let Some(why) = super::model::route_problem(kind, &r.route) {
            out.push(problem(&p, why, ""));
        } else if !seen.insert(super::model::route_pattern(kind, &r.route)) {
            out.push(problem(&p, format!("route `{}` is listed twice", r.route), "keep one"));
        }
        if let Some(c) = &r.check {
            if !known(c) {
                out.push(problem(format!("{p}.check"), format!("no check named `{c}`"), check_hint()));
            }
        }
    }
    for (i, w) in def.starter.work.iter().enumerate() {
        let p = format!("starter.work[{i}]");
        if !known(&w.check) {
            out.push(problem(format!("{p}.check"), format!("no check named `{}`", w.check), check_hint()));
        }
        if w.todo.trim().is_empty() {
            out.push(problem(format!("{p}.todo"), "the work's `todo` is empty", "one sentence saying what to write"));
        }
    }
    for (i, l) in def.starter.libraries.iter().enumerate() {
        let p = format!("starter.libraries[{i}]");
        if l.module.is_empty() || l.module.contains(char::is_whitespace) || !l.module.split('/').next().unwrap_or("").contains('.') {
            out.push(problem(format!("{p}.module"), format!("`{}` is not a Go module path", l.module), "e.g. github.com/gomodule/redigo"));
        }
        if let Some(v) = &l.version {
            if !v.starts_with('v') || v.contains(char::is_whitespace) {
                out.push(problem(format!("{p}.version"), format!("`{v}` is not a module version"), "e.g. v1.8.3 (the Debian package's version)"));
            }
        }
        if l.debian.is_empty() || !l.debian.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)) {
            out.push(problem(format!("{p}.debian"), format!("`{}` is not a Debian package name", l.debian), "e.g. golang-github-gomodule-redigo-dev"));
        }
    }
    for (i, f) in def.starter.files.iter().enumerate() {
        if f.is_empty() || f.starts_with('/') || f.split('/').any(|s| s == ".." || s.is_empty()) {
            out.push(problem(format!("starter.files[{i}]"), format!("`{f}` is not a path inside the lab's folder"), "a relative path such as auth.proto"));
        }
    }
}

/// What to write when something needs the leader and the service does not say how to find it.
fn no_leader_hint() -> String {
    format!("say how to ask a node who leads, in `service.leader`: {}", crate::chaos::LEADER_FORMS)
}

/// `service.leader`: one way to read the leader, and what that way needs.
fn validate_leader(def: &LabDef, out: &mut Vec<Problem>) {
    let Some(l) = &def.service.leader else {
        return;
    };
    let given: Vec<&str> = [("pointer", l.pointer.is_some()), ("regex", l.regex.is_some()), ("header", l.header.is_some()), ("metric", l.metric.is_some()), ("writes", l.writes)]
        .iter()
        .filter(|(_, g)| *g)
        .map(|(k, _)| *k)
        .collect();
    match given.as_slice() {
        [] => out.push(problem("service.leader", "service.leader does not say what to read from a node's answer: none of pointer, regex, header, metric, or writes: true", no_leader_hint())),
        [_] => {}
        many => out.push(problem(
            "service.leader",
            format!("service.leader gives {} ways to read the leader ({}); lab reads one", many.len(), many.join(", ")),
            format!("keep exactly one of them; the forms: {}", crate::chaos::LEADER_FORMS),
        )),
    }
    if let Some(path) = &l.path {
        if !path.starts_with('/') {
            out.push(problem("service.leader.path", format!("path `{path}` must start with /"), "the path of the GET each node is asked, e.g. /status or /metrics"));
        }
    }
    if let Some(ptr) = &l.pointer {
        if !ptr.is_empty() && !ptr.starts_with('/') {
            out.push(problem("service.leader.pointer", format!("`{ptr}` is not a JSON pointer"), format!("a JSON pointer starts with /: write /{ptr}; \"\" reads the whole body")));
        }
    }
    if let Some(re) = &l.regex {
        if let Err(e) = regex::Regex::new(re) {
            out.push(problem("service.leader.regex", format!("not a regular expression: {e}"), "its first group (or the whole match) is read from the body, e.g. \"leader: (\\\\S+)\""));
        }
    }
    if let Some(h) = &l.header {
        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            out.push(problem("service.leader.header", format!("`{h}` is not a valid header name"), "e.g. X-Raft-State"));
        }
    }
    if let Some(m) = &l.metric {
        if let Err(e) = crate::chaos::MetricSelector::parse(m) {
            out.push(problem("service.leader.metric", e, "a metric's name, with labels that pick one series if it has several: raft_state{state=\"leader\"}"));
        }
    }
    match &l.is {
        Some(is) if l.writes => out.push(problem("service.leader.is", format!("`is: {is}` compares a value read from an answer, and with `writes: true` nothing is read"), "drop `is`")),
        Some(is) if l.metric.is_some() && is.trim().parse::<f64>().is_err() => {
            out.push(problem("service.leader.is", format!("a metric's value is a number, and `{is}` is not one"), "e.g. is: 1 (compared as numbers: 1 matches 1.0)"))
        }
        Some(is) if is.trim().is_empty() => out.push(problem("service.leader.is", "`is` is empty", "the value a node that leads reports, e.g. Leader, 1 or true")),
        _ => {}
    }
    if l.writes {
        match &def.workload {
            None => out.push(problem(
                "service.leader.writes",
                "`writes: true` sends the workload's write (workload.ops.write), and this lab has no `workload`",
                "declare workload.ops.write and workload.redirect, or read the leader from an answer (pointer, regex, header or metric)",
            )),
            Some(w) if w.redirect.is_none() => out.push(problem(
                "service.leader.writes",
                "`writes: true` tells the leader from the followers by their redirects, and `workload.redirect` is not given",
                "add workload.redirect: {status: [307], leader_header: X-Leader}; a service whose followers forward writes hides its leader this way: read it from an answer instead",
            )),
            Some(_) => {}
        }
    }
    // Without `is`, the value read names the leader: each node's name must be known.
    if l.is.is_none() && !l.writes && l.id.is_none() && l.id_env.is_none() {
        out.push(problem(
            "service.leader",
            "service.leader reads a value naming the leader (it has no `is`), but does not say how each node is named",
            "give `id_env: NODE_ID` (the variable of service.env holding each node's id) or `id: \"n{{ self.node }}\"` (a template); or, if the value says whether the node itself leads, `is: Leader`",
        ));
    }
    if l.id.is_some() && l.id_env.is_some() {
        out.push(problem("service.leader", "give `id` or `id_env`, not both", "`id_env` names a variable of service.env; `id` is a template such as \"n{{ self.node }}\""));
    }
    if let Some(v) = &l.id_env {
        if !def.service.env.contains_key(v) {
            out.push(problem(
                "service.leader.id_env",
                format!("`{v}` is not a variable of service.env, so no node has an id"),
                format!("name the variable that holds each node's id; service.env has: {}", def.service.env.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        }
    }
    if let Some(t) = &l.id {
        if let Err(e) = tera::Tera::one_off(t, &node_sample_context(def), false) {
            out.push(problem(
                "service.leader.id",
                format!("template does not render: {}", tera_message(&e)),
                "variables: those of service.env templates, e.g. \"n{{ self.node }}\" or \"{{ self.host }}:7000\"",
            ));
        }
    }
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

/// A check's `hints:` follow how a polled number ended: each needs a step
/// that expects a number with `equals` (`over`), polled with `retry_for`
/// (`rising`, `stuck`); one that no step can trigger is never shown.
fn hints_can_show(check: &crate::lab::Check, cp: &str, out: &mut Vec<Problem>) {
    let numeric = |st: &crate::lab::Step| st.expect.as_ref().is_some_and(|e| e.json.values().any(|m| m.equals.as_deref().is_some_and(|v| v.trim().parse::<f64>().is_ok() || v.contains("{{"))));
    let any = check.steps.iter().any(numeric);
    let polled = check.steps.iter().any(|st| numeric(st) && st.retry_for.is_some());
    let h = &check.hints;
    for (name, given, can) in [("over", h.over.is_some(), any), ("rising", h.rising.is_some(), polled), ("stuck", h.stuck.is_some(), polled)] {
        if given && !can {
            out.push(problem(
                format!("{cp}.hints.{name}"),
                format!("hint `{name}` can never be shown: no step of this check {}", if any { "polls a number (`retry_for`)" } else { "expects a number (`equals` on a JSON pointer)" }),
                "these hints follow how a number a step expects with `equals` ended (above it: over; below and still moving or not when `retry_for` ran out: rising, stuck); add such a step, or put the text in `hint`",
            ));
        }
    }
}

fn action_word(a: &Action) -> &'static str {
    match a {
        Action::Restart(_) => "restart anything",
        Action::Stop(_) => "stop anything",
        Action::Start(_) => "start anything",
        Action::Sleep(_) => "sleep",
        Action::Chaos(_) | Action::Heal(_) => "inject or heal a fault: there is nothing for chaos to break",
        Action::WaitLeader(_) => "wait for a leader",
        Action::Workload(_) | Action::Check(_) => "run a workload",
    }
}

/// Fault names, as `lab chaos` takes them.
const FAULTS: &[&str] = &["kill", "stop", "pause", "restart", "partition", "outage", "bandwidth", "latency", "jitter", "loss", "blackhole", "reset"];

/// What a burst or redis probe's spec must hold beyond its templates.
fn validate_probe_spec(probe: &Probe, p: &str, targets: &BTreeSet<String>, service: &str, out: &mut Vec<Problem>) {
    match probe {
        Probe::Burst(b) => {
            let at = format!("{p}.probe.burst");
            if b.requests.is_empty() {
                out.push(problem(format!("{at}.requests"), "a burst needs at least one request", "e.g. requests: [{method: GET, path: /api/resource}]"));
            }
            for (i, r) in b.requests.iter().enumerate() {
                if !r.path.starts_with('/') {
                    out.push(problem(format!("{at}.requests[{i}].path"), format!("path `{}` must start with /", r.path), ""));
                }
                if r.dep.is_some() {
                    out.push(problem(format!("{at}.requests[{i}].dep"), "a burst goes to the learner's service, not to a dependency", "remove `dep`"));
                }
                if [r.json.is_some(), r.body.is_some(), r.fill.is_some()].iter().filter(|x| **x).count() > 1 {
                    out.push(problem(format!("{at}.requests[{i}]"), "give one of `json`, `body` and `fill`", ""));
                }
            }
            if !(1..=256).contains(&b.concurrency) {
                out.push(problem(format!("{at}.concurrency"), format!("concurrency {} is out of range", b.concurrency), "give 1 to 256 requests in flight at once"));
            }
            if let IntOrTemplate::Int(n) = b.count {
                if !(1..=10_000).contains(&n) {
                    out.push(problem(format!("{at}.count"), format!("count {n} is out of range"), "give 1 to 10000 requests"));
                }
            }
            if b.nodes.contains(&0) {
                out.push(problem(format!("{at}.nodes"), "nodes are numbered from 1", ""));
            }
        }
        Probe::Redis(r) => {
            let at = format!("{p}.probe.redis");
            if r.command.is_empty() == r.keys.is_none() {
                out.push(problem(at.clone(), "a redis probe takes exactly one of `command` and `keys`", "e.g. command: [DBSIZE], or keys: \"rl:*\""));
            }
            if !targets.contains(&r.dep) || r.dep == service {
                let deps: Vec<&String> = targets.iter().filter(|t| *t != service).collect();
                out.push(problem(format!("{at}.dep"), format!("`{}` is not a dependency of this lab", r.dep), format!("known: {}", deps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))));
            }
        }
        _ => {}
    }
}

fn validate_probe_step(step: &Step, probe: &Probe, p: &str, scope: &Scope, out: &mut Vec<Problem>) {
    let kind = probe.kind();
    // The expectation sees what this step saved from its answer.
    let after = scope.with(&step_sets(step));
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
            validate_matcher(m, &format!("{p}.expect.json.{ptr}"), &after, out);
        }
    }
    if let Some(IntOrTemplate::Template(t)) = &step.repeat {
        check_template(t, &format!("{p}.repeat"), scope, out);
    }
    // Every string in the spec is a template.
    if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(probe) {
        for (k, v) in &o {
            check_json_templates(v, &format!("{p}.probe.{k}"), scope, out);
        }
    }
}

/// Check every string inside a JSON value as a template (`lab verify` renders them all).
fn check_json_templates(v: &serde_json::Value, path: &str, scope: &Scope, out: &mut Vec<Problem>) {
    match v {
        serde_json::Value::String(s) => check_template(s, path, scope, out),
        serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| check_json_templates(x, &format!("{path}[{i}]"), scope, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| check_json_templates(x, &format!("{path}.{k}"), scope, out)),
        _ => {}
    }
}

fn validate_step(step: &Step, p: &str, targets: &BTreeSet<String>, service: &str, scope: &Scope, out: &mut Vec<Problem>) {
    let kinds = [step.request.is_some(), step.action.is_some(), step.probe.is_some()].iter().filter(|x| **x).count();
    if kinds != 1 {
        out.push(problem(p, "a step has exactly one of `request`, `action` or `probe`", "split it into steps"));
        return;
    }
    if step.interval.is_some() && step.repeat.is_none() {
        out.push(problem(
            format!("{p}.interval"),
            "`interval` paces the repetitions of `repeat`, and this step has none",
            "add `repeat: N`, or remove `interval` (a pause between steps is `action: {sleep: 1s}`)",
        ));
    }
    if let Some(probe) = &step.probe {
        validate_probe_step(step, probe, p, scope, out);
        validate_probe_spec(probe, p, targets, service, out);
        return;
    }
    match (&step.request, &step.action) {
        (Some(_), Some(_)) | (None, None) => unreachable!("counted above"),
        (None, Some(action)) => {
            if step.expect.is_some() || step.repeat.is_some() || step.retry_for.is_some() || !step.save.is_empty() {
                out.push(problem(p, "`expect`, `repeat`, `interval`, `retry_for` and `save` go with a `request`, not an `action`", ""));
            }
            if let Action::Chaos(ChaosStep { target: Some(t), .. }) = action {
                check_template(t, &format!("{p}.action.chaos.target"), scope, out);
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
            if [req.json.is_some(), req.body.is_some(), req.fill.is_some()].iter().filter(|x| **x).count() > 1 {
                out.push(problem(format!("{p}.request"), "give one of `json`, `body` and `fill`", ""));
            }
            for (k, v) in req.headers.iter() {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                    out.push(Problem { on_key: true, ..problem(format!("{p}.request.headers.{k}"), format!("`{k}` is not a valid header name"), "") });
                }
                check_template(v, &format!("{p}.request.headers.{k}"), scope, out);
            }
            check_template(&req.path, &format!("{p}.request.path"), scope, out);
            if let Some(b) = &req.body {
                check_template(b, &format!("{p}.request.body"), scope, out);
            }
            if let Some(j) = &req.json {
                check_json_templates(j, &format!("{p}.request.json"), scope, out);
            }
            if let Some(n) = &req.node {
                check_template(n, &format!("{p}.request.node"), scope, out);
            }
            if let Some(IntOrTemplate::Template(t)) = &step.repeat {
                check_template(t, &format!("{p}.repeat"), scope, out);
            }
            // The expectation sees what this step saved from its answer.
            let after = scope.with(&step_sets(step));
            if let Some(expect) = &step.expect {
                for (name, m) in &expect.headers {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        out.push(Problem { on_key: true, ..problem(format!("{p}.expect.headers.{name}"), format!("`{name}` is not a valid header name"), "") });
                    }
                    validate_matcher(m, &format!("{p}.expect.headers.{name}"), &after, out);
                }
                for (ptr, m) in &expect.json {
                    if !ptr.is_empty() && !ptr.starts_with('/') {
                        out.push(Problem {
                            on_key: true,
                            ..problem(format!("{p}.expect.json.{ptr}"), format!("`{ptr}` is not a JSON pointer"), "a JSON pointer starts with /, e.g. /code or /items/0/id")
                        });
                    }
                    validate_matcher(m, &format!("{p}.expect.json.{ptr}"), &after, out);
                }
                if let Some(m) = &expect.body {
                    validate_matcher(m, &format!("{p}.expect.body"), &after, out);
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

fn validate_matcher(m: &Matcher, p: &str, scope: &Scope, out: &mut Vec<Problem>) {
    if let Some(re) = &m.matches {
        if let Err(e) = regex::Regex::new(re) {
            out.push(problem(format!("{p}.matches"), format!("not a regular expression: {e}"), ""));
        }
    }
    for (field, t) in [("equals", &m.equals), ("contains", &m.contains), ("not_contains", &m.not_contains)] {
        if let Some(t) = t {
            check_template(t, &format!("{p}.{field}"), scope, out);
        }
    }
    for (field, b) in [("min", &m.min), ("max", &m.max)] {
        if let Some(Bound::Template(t)) = b {
            if t.contains("{{") {
                check_template(t, &format!("{p}.{field}"), scope, out);
            } else if t.trim().parse::<i64>().is_err() {
                out.push(problem(format!("{p}.{field}"), format!("`{t}` is not a whole number"), format!("write a number, or a template such as \"{{{{ baseline + 10 }}}}\"")));
            }
        }
    }
    if m.equals.is_none() && m.contains.is_none() && m.not_contains.is_none() && m.matches.is_none() && m.present.is_none() && m.min.is_none() && m.max.is_none() {
        out.push(problem(p, "a matcher needs one of equals, contains, not_contains, matches, present, min, max", ""));
    }
}

/// A step's template must parse, and render against the variables the step has
/// (`lab verify` renders it with the same tera, so what fails here fails there).
fn check_template(t: &str, p: &str, scope: &Scope, out: &mut Vec<Problem>) {
    if !t.contains("{{") && !t.contains("{%") {
        return;
    }
    let mut tera = tera::Tera::default();
    if let Err(e) = tera.add_raw_template("t", t) {
        out.push(problem(p, format!("template does not parse: {}", tera_message(&e)), ""));
        return;
    }
    let Err(e) = tera.render("t", &scope.context()) else {
        return;
    };
    let at = format!("step {} of check `{}`", scope.step, scope.check);
    match undefined(&e) {
        Some(Undefined::Variable(name)) => {
            let root = name.split(['.', '[']).next().unwrap_or(&name).to_string();
            if root != name && scope.set.contains(&root) {
                // A field of a saved value: only the answer says what it holds.
                return;
            }
            let hint = match (scope.vars.get(&root), scope.why(&root)) {
                (Some(v), _) => match v.as_object() {
                    Some(o) => format!("`{root}` has {}; {}", o.keys().map(|k| format!("`{root}.{k}`")).collect::<Vec<_>>().join(", "), scope.known()),
                    None => format!("`{root}` has no fields; {}", scope.known()),
                },
                (None, Some(why)) => format!("{why}; {}", scope.known()),
                (None, None) => match closest(&root, scope.vars.keys().chain(scope.why.keys())) {
                    Some(c) => format!("did you mean `{c}`? {}{}", scope.why(c).map(|w| format!("({w}) ")).unwrap_or_default(), scope.known()),
                    None => format!("check the spelling, or save it with `save: {{{root}: /json/pointer}}` in an earlier step of this check; {}", scope.known()),
                },
            };
            out.push(problem(p, format!("undefined variable `{name}` in template {t:?} ({at})"), hint));
        }
        Some(Undefined::Filter(f)) => {
            out.push(problem(p, format!("unknown filter `{f}` in template {t:?} ({at})"), "see the filters of tera templates: https://keats.github.io/tera/docs/#built-in-filters"))
        }
        Some(Undefined::Test(f)) => out.push(problem(p, format!("unknown test `{f}` in template {t:?} ({at})"), "see the tests of tera templates: https://keats.github.io/tera/docs/#built-in-tests")),
        Some(Undefined::Function(f)) => {
            out.push(problem(p, format!("unknown function `{f}` in template {t:?} ({at})"), "see the functions of tera templates: https://keats.github.io/tera/docs/#built-in-functions"))
        }
        // Anything else depends on the values of the run (a saved value's type, say): not decidable here.
        None => {}
    }
}

/// The name nearest to a misspelt one (at most two edits away).
fn closest<'a>(name: &str, names: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    names.map(|n| (distance(name, n), n)).filter(|(d, n)| *d <= 2 && *d < n.chars().count()).min().map(|(_, n)| n)
}

/// What a template names that does not exist.
enum Undefined {
    Variable(String),
    Filter(String),
    Test(String),
    Function(String),
}

/// The undefined name a tera render error is about, if it is about one.
fn undefined(e: &tera::Error) -> Option<Undefined> {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    let mut last = String::new();
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<tera::Error>() {
            match &t.kind {
                tera::ErrorKind::FilterNotFound(n) => return Some(Undefined::Filter(n.clone())),
                tera::ErrorKind::TestNotFound(n) => return Some(Undefined::Test(n.clone())),
                tera::ErrorKind::FunctionNotFound(n) => return Some(Undefined::Function(n.clone())),
                _ => {}
            }
        }
        last = err.to_string();
        cur = err.source();
    }
    // "Variable `x` not found in context while rendering 't'"; for `a[b]` the message of `b` comes last.
    let i = last.rfind("Variable `")? + "Variable `".len();
    let rest = &last[i..];
    let end = rest.find('`')?;
    rest[end..].starts_with("` not found in context").then(|| Undefined::Variable(rest[..end].to_string()))
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
