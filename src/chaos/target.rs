//! Choosing targets: a node number, a name, random, the leader, a minority, a
//! majority, or all replicas of the learner's service; and finding the leader
//! the way the lab's `service.leader` says.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use super::{Chaos, ChaosError, Fault, PartitionShape};
use crate::lab::LeaderProbe;
use crate::plan::{ContainerSpec, Role};

/// The target a fault takes when none is given, the same for `lab chaos`, a
/// scenario, and the workload's nemesis: a split names its nodes in its
/// sides, so it acts on all of them; a fault on the network or the life of a
/// node picks one node at random; an outage, a black hole and a reset act on
/// a dependency (or a proxied link), which must be named (None).
pub fn default_target(fault: &Fault) -> Option<&'static str> {
    match fault {
        Fault::Partition(PartitionShape::Split(_)) => Some("all"),
        Fault::Kill | Fault::Stop | Fault::Pause | Fault::Restart | Fault::Partition(_) | Fault::Bandwidth { .. } | Fault::Netem { .. } => Some("random"),
        Fault::Outage | Fault::Blackhole | Fault::Reset => None,
    }
}

/// Why a fault without a target cannot have one by default.
pub fn missing_target(fault: &Fault) -> String {
    format!("{} needs a target: the dependency (or proxied link) it acts on, e.g. redis; it has no default, as it never acts on the service's own nodes", fault.kind())
}

/// The containers a fault acts on: its target, or the default (`default_target`).
pub async fn resolve_for<'a>(c: &Chaos<'a>, fault: &Fault, target: Option<&str>) -> Result<Vec<&'a ContainerSpec>, ChaosError> {
    match target.or_else(|| default_target(fault)) {
        Some(t) => resolve(c, t).await,
        None => Err(ChaosError::Usage(missing_target(fault))),
    }
}

/// The containers a target selector names.
pub async fn resolve<'a>(c: &Chaos<'a>, sel: &str) -> Result<Vec<&'a ContainerSpec>, ChaosError> {
    let replicas: Vec<&'a ContainerSpec> = c.plan.containers.iter().filter(|x| x.role == Role::Service).collect();
    let n = replicas.len();
    let mut rng = rand::thread_rng();
    let found: Vec<&'a ContainerSpec> = match sel {
        "all" => replicas.clone(),
        "random" => replicas.choose(&mut rng).copied().into_iter().collect(),
        "minority" => replicas.choose_multiple(&mut rng, n.saturating_sub(1) / 2).copied().collect(),
        "majority" => replicas.choose_multiple(&mut rng, n / 2 + 1).copied().collect(),
        "leader" => {
            // A lab that does not say how to find its leader is a definition
            // problem: say so at once, never after waiting for an election.
            method(c, "the target `leader`")?;
            // During an election nobody leads for a moment: ask again for a few seconds.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match leader(c, &replicas).await {
                    Ok(l) => break vec![l],
                    Err(e) if e.is_definition() || std::time::Instant::now() >= until => return Err(e),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
        s => {
            if let Ok(k) = s.parse::<u32>() {
                replicas.iter().copied().filter(|x| x.node == k).collect()
            } else {
                c.plan.containers.iter().filter(|x| x.name == s || format!("{}-{}", x.service, x.node) == s || x.service == s).collect()
            }
        }
    };
    if found.is_empty() {
        let mut known: Vec<String> = c.plan.containers.iter().map(|x| if x.role == Role::Service { format!("{}-{}", x.service, x.node) } else { x.service.clone() }).collect();
        known.dedup();
        return Err(ChaosError::NoTarget { target: sel.to_string(), instance: c.plan.instance.clone(), nodes: n as u32, known: known.join(", ") });
    }
    Ok(found)
}

/// The forms of `service.leader`, for messages.
pub const LEADER_FORMS: &str = "`{path: /status, pointer: /leader, id_env: NODE_ID}` (a JSON field naming the leader, matched against each node's NODE_ID), \
`{path: /status, regex: \"leader=(\\\\S+)\", id: \"n{{ self.node }}\"}` (the first group of a regular expression over the body), \
`{path: /status, pointer: /state, is: Leader}` or `{header: X-Raft-State, is: Leader}` (each node says whether it leads itself), \
`{path: /metrics, metric: raft_is_leader, is: 1}` (a Prometheus metric, labels allowed: `raft_state{state=\"leader\"}`), \
or `{writes: true}` (the node that accepts the workload's write while the others redirect it; needs workload.redirect)";

/// What a leader probe reads from each node's answer.
#[derive(Debug, Clone)]
pub(crate) enum Read {
    /// The JSON value at this pointer ("" is the whole body).
    Pointer(String),
    /// The first group of this expression over the body (or the whole match).
    Regex(regex::Regex),
    /// This response header.
    Header(String),
    /// The value of one series of this metric in a Prometheus text exposition.
    Metric(MetricSelector),
    /// Which node accepts the workload's write.
    Writes,
}

/// A lab's `service.leader`, checked: what to GET, what to read, and whether
/// the thing read says the node itself leads (`is`) or names the leader.
#[derive(Debug, Clone)]
pub(crate) struct Method {
    pub path: String,
    pub read: Read,
    pub is: Option<String>,
}

impl Method {
    /// Check a probe as lab.yaml gives it; the error says what is wrong with it.
    pub(crate) fn of(p: &LeaderProbe) -> Result<Method, String> {
        let given: Vec<&str> = [("pointer", p.pointer.is_some()), ("regex", p.regex.is_some()), ("header", p.header.is_some()), ("metric", p.metric.is_some()), ("writes", p.writes)]
            .iter()
            .filter(|(_, g)| *g)
            .map(|(k, _)| *k)
            .collect();
        let read = match given.as_slice() {
            [] => return Err("it says neither what to read from a node's answer (pointer, regex, header, metric) nor `writes: true`".into()),
            [_] => match (&p.pointer, &p.regex, &p.header, &p.metric) {
                (Some(ptr), ..) => {
                    if !ptr.is_empty() && !ptr.starts_with('/') {
                        return Err(format!("pointer `{ptr}` is not a JSON pointer: one starts with / (e.g. /leader), or is \"\" for the whole body"));
                    }
                    Read::Pointer(ptr.clone())
                }
                (_, Some(re), ..) => Read::Regex(regex::Regex::new(re).map_err(|e| format!("regex `{re}` is not a regular expression: {e}"))?),
                (_, _, Some(h), _) => {
                    reqwest::header::HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("header `{h}` is not a valid header name"))?;
                    Read::Header(h.clone())
                }
                (_, _, _, Some(m)) => Read::Metric(MetricSelector::parse(m)?),
                _ => Read::Writes,
            },
            many => return Err(format!("it gives {} ways to read the leader ({}); give exactly one", many.len(), many.join(", "))),
        };
        let path = p.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            return Err(format!("path `{path}` must start with /"));
        }
        if let (Read::Metric(_), Some(is)) = (&read, &p.is) {
            if number(is).is_none() {
                return Err(format!("a metric's value is a number, and `is: {is}` is not one (write e.g. is: 1)"));
            }
        }
        let is = if matches!(read, Read::Writes) { None } else { p.is.clone() };
        Ok(Method { path, read, is })
    }

    /// What is read, for messages: `/status /leader`, `the X-State header`, `/metrics raft_is_leader`.
    pub(crate) fn what(&self) -> String {
        match &self.read {
            Read::Pointer(p) if p.is_empty() => format!("the body of GET {}", self.path),
            Read::Pointer(p) => format!("{} {p}", self.path),
            Read::Regex(re) => format!("/{}/ over GET {}", re.as_str(), self.path),
            Read::Header(h) => format!("the {h} header of GET {}", self.path),
            Read::Metric(m) => format!("{} {m}", self.path),
            Read::Writes => "the workload's write".into(),
        }
    }
}

/// How lab asks for the leader, in words (what a failed `wait-leader` sent).
pub fn leader_asked(lab: &crate::lab::Lab) -> String {
    let Some(p) = lab.def.service.leader.as_ref() else {
        return "nothing: the lab has no service.leader".into();
    };
    let m = match Method::of(p) {
        Ok(m) => m,
        Err(e) => return format!("nothing: service.leader cannot be used ({e})"),
    };
    match (&m.read, &m.is) {
        (Read::Writes, _) => match &lab.def.workload {
            Some(w) => format!("{} {} (workload.ops.write, key lab-leader-probe) to every node; the leader accepts it, the others redirect", w.ops.write.request.method, w.ops.write.request.path),
            None => "the workload's write to every node".into(),
        },
        (_, Some(is)) => format!("GET {} to every node; a node leads when {} is {is}", m.path, m.what()),
        (_, None) => format!("GET {} to every node; {} names the leader by its id, and the leader names itself", m.path, m.what()),
    }
}

/// The lab's checked leader probe, or why there is none (a definition problem, exit 2).
fn method(c: &Chaos<'_>, what: &str) -> Result<Method, ChaosError> {
    let Some(p) = c.lab.def.service.leader.as_ref() else {
        return Err(ChaosError::NoLeaderProbe { lab: c.lab.name().to_string(), what: what.to_string(), forms: LEADER_FORMS });
    };
    Method::of(p).map_err(|e| ChaosError::Usage(format!("lab {}'s service.leader cannot be used: {e}. Its forms: {LEADER_FORMS}", c.lab.name())))
}

/// A metric name with the labels that pick one series: `raft_state{state="leader"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricSelector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl std::fmt::Display for MetricSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.labels.is_empty() {
            write!(f, "{{{}}}", self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect::<Vec<_>>().join(","))?;
        }
        Ok(())
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':') && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Labels as written inside braces: `a="x",b="y\"z"` (the braces stripped); the rest after the closing brace.
fn parse_labels(s: &str) -> Result<(Vec<(String, String)>, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Err("the labels have no closing }".into());
        }
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or_else(|| format!("a label needs name=\"value\" at `{rest}`"))?;
        let name = rest[..eq].trim();
        if !is_metric_name(name) || name.contains(':') {
            return Err(format!("`{name}` is not a label name"));
        }
        let after = rest[eq + 1..].trim_start();
        let mut chars = after.char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("the value of label `{name}` must be in double quotes"));
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("the value of label `{name}` has no closing quote"))?;
        labels.push((name.to_string(), value));
        rest = after[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() && !rest.starts_with('}') {
            return Err(format!("expected , or }} after label `{name}`"));
        }
    }
}

impl MetricSelector {
    /// `name` or `name{label="value",...}`.
    pub(crate) fn parse(s: &str) -> Result<MetricSelector, String> {
        let s = s.trim();
        let (name, labels) = match s.find('{') {
            None => (s, vec![]),
            Some(i) => {
                let (labels, rest) = parse_labels(&s[i + 1..]).map_err(|e| format!("metric `{s}`: {e}"))?;
                if !rest.trim().is_empty() {
                    return Err(format!("metric `{s}`: `{}` after the labels", rest.trim()));
                }
                (s[..i].trim(), labels)
            }
        };
        if !is_metric_name(name) {
            return Err(format!("`{name}` is not a metric name (letters, digits, _ and :, not starting with a digit); write e.g. raft_is_leader or raft_state{{state=\"leader\"}}"));
        }
        Ok(MetricSelector { name: name.to_string(), labels })
    }
}

/// One sample line of a Prometheus text exposition: name, labels, value (as written).
pub(crate) fn parse_sample(line: &str) -> Option<(String, Vec<(String, String)>, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let (labels, rest) = match line[name_end..].trim_start().strip_prefix('{') {
        Some(r) => parse_labels(r).ok()?,
        None => (vec![], &line[name_end..]),
    };
    let value = rest.split_whitespace().next()?;
    Some((name.to_string(), labels, value.to_string()))
}

/// A number as Prometheus writes it (`1`, `1.0`, `1e0`, `+Inf`).
fn number(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Whether two values read from answers are the same: equal text, or equal numbers (`1` and `1.0`).
pub(crate) fn same_value(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a == b || matches!((number(a), number(b)), (Some(x), Some(y)) if x == y)
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.is_empty() {
        "an empty body".into()
    } else {
        format!("`{}`", crate::probe::excerpt(&s.replace('\n', "\\n"), 120))
    }
}

/// Read the thing a probe looks at from one node's answer: the value, or why
/// nothing could be read (said as what was expected and what was seen).
pub(crate) fn read_answer(m: &Method, status: u16, headers: &BTreeMap<String, String>, body: &[u8]) -> Result<String, String> {
    let path = &m.path;
    match &m.read {
        Read::Pointer(ptr) => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
                return Err(format!("GET {path} answered {status} with a body that is not JSON: {}", excerpt(body)));
            };
            let shown = if ptr.is_empty() { "the body".to_string() } else { ptr.clone() };
            match v.pointer(ptr) {
                None => Err(format!("GET {path} answered {status} without {shown}: {}", excerpt(body))),
                Some(serde_json::Value::String(s)) if s.is_empty() => Err(format!("{path} {shown} is empty (no leader known)")),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Null) => Err(format!("{path} {shown} is null (no leader known)")),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(serde_json::Value::Bool(b)) => Ok(b.to_string()),
                Some(other) => Err(format!("{path} {shown} is {}, not a string, number or boolean", crate::probe::excerpt(&other.to_string(), 80))),
            }
        }
        Read::Regex(re) => {
            let text = String::from_utf8_lossy(body);
            match re.captures(&text) {
                None => Err(format!("/{}/ matches nothing in the answer to GET {path} ({status}): {}", re.as_str(), excerpt(body))),
                Some(caps) => {
                    let v = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str().trim().to_string()).unwrap_or_default();
                    if v.is_empty() {
                        Err(format!("/{}/ matches an empty value in the answer to GET {path} (no leader known)", re.as_str()))
                    } else {
                        Ok(v)
                    }
                }
            }
        }
        Read::Header(h) => match headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(h)).map(|(_, v)| v.trim()) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            Some(_) => Err(format!("GET {path} answered {status} with an empty {h} header (no leader known)")),
            None => Err(format!("GET {path} answered {status} without a {h} header (headers: {})", headers.keys().cloned().collect::<Vec<_>>().join(", "))),
        },
        Read::Metric(sel) => {
            let text = String::from_utf8_lossy(body);
            let samples: Vec<_> = text.lines().filter_map(parse_sample).filter(|(n, _, _)| *n == sel.name).collect();
            let matching: Vec<_> = samples.iter().filter(|(_, labels, _)| sel.labels.iter().all(|l| labels.contains(l))).collect();
            let show = |s: &(String, Vec<(String, String)>, String)| format!("{} {}", MetricSelector { name: s.0.clone(), labels: s.1.clone() }, s.2);
            match matching.as_slice() {
                [one] => Ok(one.2.clone()),
                [] if samples.is_empty() => Err(format!("{path} has no series {sel} (GET {path} answered {status}: {})", excerpt(body))),
                [] => Err(format!("{path} has no series {sel}; its series of {}: {}", sel.name, samples.iter().map(show).collect::<Vec<_>>().join(", "))),
                many => Err(format!(
                    "{path} has {} series matching {sel} ({}): pick one with labels, e.g. {}",
                    many.len(),
                    many.iter().map(|s| show(s)).collect::<Vec<_>>().join(", "),
                    MetricSelector { name: many[0].0.clone(), labels: many[0].1.clone() }
                )),
            }
        }
        Read::Writes => unreachable!("a write is not read from a GET"),
    }
}

/// One node's reading: its name (app-2), its id as the probe names nodes, and what was read.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub name: String,
    pub id: Option<String>,
    pub read: Result<String, String>,
}

/// With `is`: the one node that says it leads. Two at once is no leader yet
/// (an old leader cut off from the others may not have noticed).
pub(crate) fn decide_is(m: &Method, is: &str, seen: &[Seen]) -> Result<usize, String> {
    let numeric = matches!(m.read, Read::Metric(_));
    let leads = |v: &str| if numeric { matches!((number(v), number(is)), (Some(a), Some(b)) if a == b) } else { same_value(v, is) };
    let claims: Vec<usize> = (0..seen.len()).filter(|i| seen[*i].read.as_ref().is_ok_and(|v| leads(v))).collect();
    let what = m.what();
    match claims.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no node says it leads (expected one whose {what} is {is}): {}",
            seen.iter()
                .map(|s| match &s.read {
                    Ok(v) => format!("{}: {what} = {v}", s.name),
                    Err(e) => format!("{}: {e}", s.name),
                })
                .collect::<Vec<_>>()
                .join("; ")
        )),
        many => Err(format!(
            "{} say they lead at once ({what} = {is}): no single leader yet (an election is settling, or an old leader cut off from the others has not noticed); lab asks again",
            many.iter().map(|i| seen[*i].name.as_str()).collect::<Vec<_>>().join(" and ")
        )),
    }
}

/// Without `is`: the values name the leader, matched against the nodes' ids;
/// a node named must name itself too (a dead or cut-off leader is still named
/// by followers for a while). Where nodes name different leaders that each
/// confirm, the one named by most nodes leads; a tie is no leader yet.
pub(crate) fn decide_named(m: &Method, seen: &[Seen]) -> Result<usize, String> {
    let what = m.what();
    let ids: Vec<String> = seen.iter().map(|s| format!("{} is `{}`", s.name, s.id.as_deref().unwrap_or("?"))).collect();
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    let mut reasons = Vec::new();
    for s in seen {
        let v = match &s.read {
            Ok(v) => v,
            Err(e) => {
                reasons.push(format!("{}: {e}", s.name));
                continue;
            }
        };
        let Some(j) = seen.iter().position(|x| x.id.as_deref().is_some_and(|id| same_value(id, v))) else {
            reasons.push(format!("{}: {what} names `{v}`, which is no node's id ({})", s.name, ids.join(", ")));
            continue;
        };
        match &seen[j].read {
            Ok(w) if same_value(w, seen[j].id.as_deref().unwrap_or_default()) => *votes.entry(j).or_default() += 1,
            Ok(w) => reasons.push(format!("{}: names `{v}` ({}), but {} names `{w}`", s.name, seen[j].name, seen[j].name)),
            Err(e) => reasons.push(format!("{}: names `{v}` ({}), which does not confirm: {e}", s.name, seen[j].name)),
        }
    }
    let most = votes.values().copied().max().unwrap_or(0);
    let top: Vec<usize> = votes.iter().filter(|(_, n)| **n == most).map(|(j, _)| *j).collect();
    match top.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no node is named leader by the others and by itself (expected {what} to name a node, by its id: {}): {}", ids.join(", "), reasons.join("; "))),
        tie => Err(format!(
            "the nodes name different leaders, each confirming itself ({}): no single leader yet; lab asks again",
            tie.iter().map(|j| format!("{} by {} node(s)", seen[*j].name, votes[j])).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// How a node answered the leader probe's write.
#[derive(Debug, Clone)]
pub(crate) struct WriteSeen {
    pub name: String,
    /// The status and the redirect's leader header, or why no answer came.
    pub answer: Result<(u16, Option<String>), String>,
}

/// With `writes: true`: the one node that accepts the write (an ok status)
/// while the others redirect it.
pub(crate) fn decide_writes(ok: &[u16], redirect: &[u16], header: &str, seen: &[WriteSeen]) -> Result<usize, String> {
    let accepted: Vec<usize> = (0..seen.len()).filter(|i| seen[*i].answer.as_ref().is_ok_and(|(s, _)| ok.contains(s))).collect();
    let codes = |v: &[u16]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" or ");
    match accepted.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no node accepted the write (expected {} from the leader, {} from the others): {}",
            codes(ok),
            codes(redirect),
            seen.iter()
                .map(|s| match &s.answer {
                    Ok((st, Some(l))) if redirect.contains(st) => format!("{}: redirected ({st}, {header}: {l})", s.name),
                    Ok((st, None)) if redirect.contains(st) => format!("{}: redirected ({st}) without {header}", s.name),
                    Ok((st, _)) => format!("{}: answered {st}", s.name),
                    Err(e) => format!("{}: {e}", s.name),
                })
                .collect::<Vec<_>>()
                .join("; ")
        )),
        many => Err(format!(
            "{} accepted the write at once ({}): a service whose followers forward writes hides its leader from `writes: true`; read it from an answer instead (pointer, regex, header or metric of service.leader)",
            many.iter().map(|i| seen[*i].name.as_str()).collect::<Vec<_>>().join(" and "),
            codes(ok)
        )),
    }
}

/// The node that leads now, found the way the lab's `service.leader` says.
pub async fn leader<'a>(c: &Chaos<'a>, replicas: &[&'a ContainerSpec]) -> Result<&'a ContainerSpec, ChaosError> {
    let m = method(c, "finding the leader")?;
    let client = crate::probe::http::client();
    let timeout = std::time::Duration::from_secs(2);
    let alias = |r: &ContainerSpec| format!("{}-{}", r.service, r.node);
    if let Read::Writes = m.read {
        let w = c
            .lab
            .def
            .workload
            .as_ref()
            .ok_or_else(|| ChaosError::Usage(format!("lab {}'s service.leader has `writes: true`, which sends the workload's write, and the lab has no `workload`", c.lab.name())))?;
        let redirect = w.redirect.as_ref().ok_or_else(|| {
            ChaosError::Usage(format!("lab {}'s service.leader has `writes: true`, which tells the leader by the others' redirects, and workload.redirect is not given", c.lab.name()))
        })?;
        let mut ctx = tera::Context::new();
        ctx.insert("key", "lab-leader-probe");
        ctx.insert("value", "probe");
        let asks = replicas.iter().map(|r| {
            let (client, ctx) = (&client, &ctx);
            async move {
                let base = format!("http://127.0.0.1:{}", r.port.host);
                let (req, _) = crate::verify::render_request(&w.ops.write.request, ctx, &base).map_err(|e| format!("lab could not render workload.ops.write: {e}"))?;
                let req = crate::probe::http::HttpRequest { timeout: req.timeout.min(timeout), ..req };
                match crate::probe::http::send(client, &req).await {
                    Ok(resp) => Ok((resp.status, resp.header(&redirect.leader_header).map(str::to_string))),
                    Err(e) => Err(format!("no answer to {} {}: {e}", req.method, req.url.trim_start_matches(&base))),
                }
            }
        });
        let answers = futures_util::future::join_all(asks).await;
        let seen: Vec<WriteSeen> = replicas.iter().zip(answers).map(|(r, answer)| WriteSeen { name: alias(r), answer }).collect();
        return decide_writes(&w.ops.write.ok, &redirect.status, &redirect.leader_header, &seen).map(|i| replicas[i]).map_err(ChaosError::NoLeader);
    }
    let asks = replicas.iter().map(|r| {
        let (client, m) = (&client, &m);
        async move {
            let req = crate::probe::http::HttpRequest { method: "GET".into(), url: format!("http://127.0.0.1:{}{}", r.port.host, m.path), headers: BTreeMap::new(), body: None, json: false, timeout };
            match crate::probe::http::send(client, &req).await {
                Ok(resp) => read_answer(m, resp.status, &resp.headers, &resp.body),
                Err(e) => Err(format!("no answer to GET {}: {e}", m.path)),
            }
        }
    });
    let reads = futures_util::future::join_all(asks).await;
    let seen: Vec<Seen> = replicas.iter().zip(reads).map(|(r, read)| Seen { name: alias(r), id: r.id.clone(), read }).collect();
    let found = match &m.is {
        Some(is) => decide_is(&m, is, &seen),
        None => decide_named(&m, &seen),
    };
    found.map(|i| replicas[i]).map_err(ChaosError::NoLeader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(yaml: &str) -> Method {
        Method::of(&serde_yaml::from_str::<LeaderProbe>(yaml).unwrap()).unwrap()
    }

    fn read(m: &Method, headers: &[(&str, &str)], body: &str) -> Result<String, String> {
        let h: BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read_answer(m, 200, &h, body.as_bytes())
    }

    fn seen(reads: &[(&str, Option<&str>, Result<&str, &str>)]) -> Vec<Seen> {
        reads.iter().map(|(n, id, r)| Seen { name: n.to_string(), id: id.map(str::to_string), read: r.map(str::to_string).map_err(str::to_string) }).collect()
    }

    #[test]
    fn a_pointer_reads_strings_numbers_and_booleans() {
        let m = probe("{path: /status, pointer: /leader, id_env: NODE_ID}");
        assert_eq!(read(&m, &[], r#"{"leader": "n2"}"#).unwrap(), "n2");
        assert_eq!(read(&m, &[], r#"{"leader": 3}"#).unwrap(), "3");
        let m = probe("{pointer: /raft/leader, is: \"true\"}");
        assert_eq!(m.path, "/");
        assert_eq!(read(&m, &[], r#"{"raft": {"leader": true}}"#).unwrap(), "true");
        let e = read(&m, &[], "leader").unwrap_err();
        assert!(e.contains("not JSON") && e.contains("`leader`"), "{e}");
        let e = read(&m, &[], r#"{"raft": {}}"#).unwrap_err();
        assert!(e.contains("without /raft/leader"), "{e}");
        assert!(read(&probe("{pointer: /leader, id: x}"), &[], r#"{"leader": ""}"#).unwrap_err().contains("empty"));
        // The whole body: a JSON string.
        assert_eq!(read(&probe("{pointer: \"\", id: x}"), &[], r#""n1""#).unwrap(), "n1");
    }

    #[test]
    fn a_regex_reads_its_first_group_or_the_whole_match() {
        let m = probe(r#"{path: /status, regex: "leader: (\\S+)", id: "n{{ self.node }}"}"#);
        assert_eq!(read(&m, &[], "term: 4\nleader: n3\nstate: Follower\n").unwrap(), "n3");
        let m = probe(r#"{regex: "Leader|Follower|Candidate", is: Leader}"#);
        assert_eq!(read(&m, &[], "state=Leader").unwrap(), "Leader");
        let e = read(&m, &[], "state=Shutdown").unwrap_err();
        assert!(e.contains("matches nothing") && e.contains("Shutdown"), "{e}");
    }

    #[test]
    fn a_header_is_read_whatever_its_case() {
        let m = probe("{path: /, header: X-Raft-State, is: Leader}");
        assert_eq!(read(&m, &[("x-raft-state", "Leader")], "").unwrap(), "Leader");
        let e = read(&m, &[("content-type", "text/plain")], "").unwrap_err();
        assert!(e.contains("without a X-Raft-State header") && e.contains("content-type"), "{e}");
    }

    #[test]
    fn a_metric_is_read_from_the_text_format_with_labels_picking_the_series() {
        let text = "# HELP raft_state The node's state.\n# TYPE raft_state gauge\nraft_state{state=\"follower\",cluster=\"a\"} 0\nraft_state{cluster=\"a\",state=\"leader\"} 1.0\nraft_is_leader 1\nraft_leader_id{kind=\"x \\\"y\\\" ,}\"} 2 1712345678\n";
        let m = probe("{path: /metrics, metric: raft_is_leader, is: 1}");
        assert_eq!(read(&m, &[], text).unwrap(), "1");
        let m = probe("{path: /metrics, metric: 'raft_state{state=\"leader\"}', is: \"1\"}");
        assert_eq!(read(&m, &[], text).unwrap(), "1.0");
        let m = probe("{path: /metrics, metric: raft_leader_id, id: \"{{ self.node }}\"}");
        assert_eq!(read(&m, &[], text).unwrap(), "2");
        // Several series and no labels to pick one: say which there are.
        let e = read(&probe("{path: /metrics, metric: raft_state, is: 1}"), &[], text).unwrap_err();
        assert!(e.contains("2 series matching raft_state") && e.contains("state=\"leader\""), "{e}");
        let e = read(&probe("{path: /metrics, metric: raft_is_leaderr, is: 1}"), &[], text).unwrap_err();
        assert!(e.contains("/metrics has no series raft_is_leaderr"), "{e}");
        let e = read(&probe("{path: /metrics, metric: 'raft_state{state=\"candidate\"}', is: 1}"), &[], text).unwrap_err();
        assert!(e.contains("no series raft_state{state=\"candidate\"}") && e.contains("raft_state{state=\"follower\",cluster=\"a\"} 0"), "{e}");
        assert!(MetricSelector::parse("raft state").is_err());
        assert!(MetricSelector::parse("raft_state{state=leader}").unwrap_err().contains("double quotes"));
        assert!(MetricSelector::parse("raft_state{state=\"leader\"").unwrap_err().contains("closing"));
    }

    #[test]
    fn is_compares_text_or_numbers_and_wants_exactly_one_claim() {
        let m = probe("{path: /metrics, metric: raft_is_leader, is: 1}");
        let s = seen(&[("app-1", None, Ok("0")), ("app-2", None, Ok("1.0")), ("app-3", None, Err("no answer to GET /metrics: could not connect"))]);
        assert_eq!(decide_is(&m, "1", &s), Ok(1));
        let s = seen(&[("app-1", None, Ok("1")), ("app-2", None, Ok("1e0")), ("app-3", None, Ok("0"))]);
        let e = decide_is(&m, "1", &s).unwrap_err();
        assert!(e.contains("app-1 and app-2 say they lead at once"), "{e}");
        let m = probe("{path: /status, pointer: /state, is: Leader}");
        let s = seen(&[("app-1", None, Ok("Follower")), ("app-2", None, Ok("Candidate"))]);
        let e = decide_is(&m, "Leader", &s).unwrap_err();
        assert!(e.contains("expected one whose /status /state is Leader") && e.contains("app-2: /status /state = Candidate"), "{e}");
        assert_eq!(decide_is(&m, "Leader", &seen(&[("app-1", None, Ok("Follower")), ("app-2", None, Ok("Leader"))])), Ok(1));
        // Text is compared as text: `leader` is not `Leader`.
        assert!(decide_is(&m, "Leader", &seen(&[("app-1", None, Ok("leader"))])).is_err());
    }

    #[test]
    fn a_named_leader_must_name_itself_and_the_majority_view_wins() {
        let m = probe("{path: /status, pointer: /leader, id_env: NODE_ID}");
        let s = seen(&[("app-1", Some("n1"), Ok("n2")), ("app-2", Some("n2"), Ok("n2")), ("app-3", Some("n3"), Ok("n2"))]);
        assert_eq!(decide_named(&m, &s), Ok(1));
        // A dead leader still named by the others does not confirm.
        let s = seen(&[("app-1", Some("n1"), Ok("n2")), ("app-2", Some("n2"), Err("no answer to GET /status: could not connect")), ("app-3", Some("n3"), Ok("n2"))]);
        let e = decide_named(&m, &s).unwrap_err();
        assert!(e.contains("app-1: names `n2` (app-2), which does not confirm: no answer"), "{e}");
        // An old leader cut off from the others still names itself; the others agree on a new one.
        let s = seen(&[("app-1", Some("n1"), Ok("n1")), ("app-2", Some("n2"), Ok("n3")), ("app-3", Some("n3"), Ok("n3"))]);
        assert_eq!(decide_named(&m, &s), Ok(2));
        let s = seen(&[("app-1", Some("n1"), Ok("n1")), ("app-2", Some("n2"), Ok("n2"))]);
        assert!(decide_named(&m, &s).unwrap_err().contains("no single leader yet"));
        let s = seen(&[("app-1", Some("n1"), Ok("node-7"))]);
        assert!(decide_named(&m, &s).unwrap_err().contains("`node-7`, which is no node's id (app-1 is `n1`)"));
        // Numbers name nodes whatever their spelling.
        let s = seen(&[("app-1", Some("1"), Ok("2.0")), ("app-2", Some("2"), Ok("2"))]);
        assert_eq!(decide_named(&m, &s), Ok(1));
    }

    #[test]
    fn the_node_that_accepts_the_write_leads() {
        let w = |n: &str, a: Result<(u16, Option<&str>), &str>| WriteSeen { name: n.into(), answer: a.map(|(s, h)| (s, h.map(str::to_string))).map_err(str::to_string) };
        let s = vec![w("app-1", Ok((307, Some("n2")))), w("app-2", Ok((204, None))), w("app-3", Ok((307, Some("n2"))))];
        assert_eq!(decide_writes(&[200, 204], &[307], "X-Leader", &s), Ok(1));
        let s = vec![w("app-1", Ok((307, None))), w("app-2", Err("no answer to PUT /kv/lab-leader-probe: could not connect")), w("app-3", Ok((503, None)))];
        let e = decide_writes(&[200, 204], &[307], "X-Leader", &s).unwrap_err();
        assert!(e.contains("expected 200 or 204 from the leader, 307 from the others") && e.contains("app-1: redirected (307) without X-Leader") && e.contains("app-3: answered 503"), "{e}");
        let s = vec![w("app-1", Ok((200, None))), w("app-2", Ok((200, None)))];
        assert!(decide_writes(&[200], &[307], "X-Leader", &s).unwrap_err().contains("forward writes"));
    }

    #[test]
    fn malformed_probes_say_what_is_wrong() {
        let of = |y: &str| Method::of(&serde_yaml::from_str::<LeaderProbe>(y).unwrap()).unwrap_err();
        assert!(of("{path: /status}").contains("neither what to read"));
        assert!(of("{pointer: /leader, regex: x}").contains("2 ways to read the leader (pointer, regex)"));
        assert!(of("{pointer: leader}").contains("not a JSON pointer"));
        assert!(of("{regex: \"(\"}").contains("not a regular expression"));
        assert!(of("{path: status, pointer: /leader}").contains("must start with /"));
        assert!(of("{metric: up, is: Leader}").contains("not one"));
    }

    #[test]
    fn a_split_acts_on_all_nodes_and_a_dependency_fault_needs_its_target() {
        let o = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert_eq!(default_target(&Fault::parse("partition", &o(&[("split", "1,2|3")])).unwrap()), Some("all"));
        assert_eq!(default_target(&Fault::parse("partition", &o(&[])).unwrap()), Some("random"));
        assert_eq!(default_target(&Fault::Kill), Some("random"));
        assert_eq!(default_target(&Fault::Outage), None);
        assert!(missing_target(&Fault::Outage).contains("outage needs a target"));
    }
}
