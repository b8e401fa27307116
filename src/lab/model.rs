//! Serde structs mirroring `lab.yaml` one to one. Unknown fields are refused so
//! that a typo is an error with a location, never a silently ignored key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole lab definition: `labs/<lab>/lab.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabDef {
    /// Lab name; must match the folder name.
    pub name: String,
    /// One line shown by `lab list`.
    pub title: String,
    /// Place on the learners' ladder (1 = first project).
    #[serde(default)]
    pub rung: Option<u32>,
    /// Where the lab sits in the learners' roadmap (`Project 2`, `Module 11`,
    /// `System Design 1`), shown by `lab list` and `lab show`.
    #[serde(default)]
    pub module: Option<String>,
    /// What the learner builds, a paragraph for `lab show`.
    #[serde(default)]
    pub summary: String,
    /// Dependencies, keyed by the name the learner's service reaches them by.
    #[serde(default)]
    pub dependencies: BTreeMap<String, Dependency>,
    /// The learner's service.
    pub service: Service,
    /// Ordered stages of checks.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Named chaos scenarios.
    #[serde(default)]
    pub chaos: BTreeMap<String, Scenario>,
    /// A workload of concurrent clients that records a history (for history checks).
    #[serde(default)]
    pub workload: Option<Workload>,
    /// What `lab init` gives the learner: the contract's routes, the work
    /// beside them, the Go libraries, the lab's files to copy.
    #[serde(default)]
    pub starter: Starter,
}

impl LabDef {
    /// What kind of program the learner writes, as `lab init` sees it.
    pub fn starter_kind(&self) -> StarterKind {
        if self.service.run == RunKind::Cli {
            StarterKind::Cli
        } else if self.service.ready.as_ref().is_some_and(|r| r.grpc) {
            StarterKind::Grpc
        } else {
            StarterKind::Http
        }
    }
}

/// The kinds of starter `lab init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StarterKind {
    /// An HTTP server (Go's ServeMux patterns: `GET /links/{code}`).
    Http,
    /// A gRPC server (full method names: `/auth.v1.Auth/Login`).
    Grpc,
    /// A command-line program (its commands: `add`).
    Cli,
}

/// The learner's starter (`lab init`), rendered from the lab's definition.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Starter {
    /// The Go libraries the lab's solutions use: go.mod requires those with
    /// a version; CI and the dev container install their Debian packages.
    #[serde(default)]
    pub libraries: Vec<GoLibrary>,
    /// The contract's entry points, in the order a learner meets them: an
    /// HTTP route (`POST /api/links`, `GET /{code}`), a gRPC method
    /// (`/auth.v1.Auth/Login`) or a command (`add`), each with the check that
    /// exercises it. The starter answers each "not written yet" with a TODO
    /// naming that check (an HTTP service answers its readiness path 200).
    #[serde(default)]
    pub routes: Vec<StarterRoute>,
    /// Work beside the routes (a consumer, a consensus loop): logged at start as a TODO of its check.
    #[serde(default)]
    pub work: Vec<StarterWork>,
    /// Files of the lab's folder copied into the starter (a .proto).
    #[serde(default)]
    pub files: Vec<String>,
}

/// A Go library of a lab.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoLibrary {
    /// Its module path (`github.com/gomodule/redigo`).
    pub module: String,
    /// The version go.mod requires (the Debian package's); none: not required, only installed.
    #[serde(default)]
    pub version: Option<String>,
    /// The Debian package holding it (`golang-github-gomodule-redigo-dev`).
    pub debian: String,
}

/// A route of the starter: `"GET /healthz"` or `{route: ..., check: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct StarterRoute {
    pub route: String,
    /// The check that exercises it (none: a route of the contract no check calls).
    pub check: Option<String>,
}

impl<'de> Deserialize<'de> for StarterRoute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            route: String,
            #[serde(default)]
            check: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Plain(String),
            Full(Full),
        }
        match Either::deserialize(d).map_err(|_| serde::de::Error::custom("a route is \"METHOD /path\" or {route: \"METHOD /path\", check: <check name>}"))? {
            Either::Plain(route) => Ok(StarterRoute { route, check: None }),
            Either::Full(f) => Ok(StarterRoute { route: f.route, check: f.check }),
        }
    }
}

/// Work of the starter beside its routes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StarterWork {
    /// The check that needs it.
    pub check: String,
    /// What to write, one sentence.
    pub todo: String,
}

/// The starter's form of a route: a ServeMux pattern (`GET /kv/{key}`), a
/// gRPC full method (`/pkg.Service/Method`) or a command, trimmed.
pub fn route_pattern(kind: StarterKind, route: &str) -> String {
    let r = route.split_whitespace().collect::<Vec<_>>().join(" ");
    match kind {
        StarterKind::Grpc if !r.starts_with('/') => format!("/{r}"),
        _ => r,
    }
}

/// Why a route of the starter is not one of its kind, if it is not.
pub fn route_problem(kind: StarterKind, route: &str) -> Option<String> {
    let r = route_pattern(kind, route);
    match kind {
        StarterKind::Http => {
            let Some((method, path)) = r.split_once(' ') else {
                return Some(format!("route `{r}` needs a method and a path, e.g. `GET /kv/{{key}}`"));
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method) {
                return Some(format!("route `{r}`: `{method}` is not an HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS)"));
            }
            if !path.starts_with('/') || path.contains(' ') || path.contains('?') {
                return Some(format!("route `{r}`: the path must start with / and hold no spaces or query"));
            }
            let segs: Vec<&str> = path[1..].split('/').collect();
            for (i, seg) in segs.iter().enumerate() {
                if !(seg.contains('{') || seg.contains('}')) {
                    continue;
                }
                let last = i + 1 == segs.len();
                let inner = seg.strip_prefix('{').and_then(|x| x.strip_suffix('}'));
                let ok = match inner {
                    Some("$") => last,
                    Some(n) => {
                        let (name, rest) = n.strip_suffix("...").map(|x| (x, true)).unwrap_or((n, false));
                        (!rest || last) && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with(|c: char| c.is_ascii_digit())
                    }
                    None => false,
                };
                if !ok {
                    return Some(format!("route `{r}`: `{seg}` is not a wildcard Go's ServeMux knows: a whole segment `{{name}}`, or last `{{name...}}` or `{{$}}`"));
                }
            }
            None
        }
        StarterKind::Grpc => {
            let parts: Vec<&str> = r[1..].split('/').collect();
            let ok = parts.len() == 2 && parts[0].contains('.') && !parts[1].is_empty() && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
            (!ok).then(|| format!("route `{r}` is not a gRPC method: write /<package>.<Service>/<Method>, e.g. /auth.v1.Auth/Login"))
        }
        StarterKind::Cli => {
            let ok = !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') && !r.starts_with('-');
            (!ok).then(|| format!("route `{r}` is not a command: one word such as `add`"))
        }
    }
}

/// Concurrent clients through random nodes, with a nemesis, recording a history
/// of invocations and completions that checkers judge.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default = "four")]
    pub clients: u32,
    #[serde(default = "ten_secs", with = "humantime_serde")]
    pub duration: Duration,
    /// Operations per second, all clients together.
    #[serde(default = "forty")]
    pub rate: f64,
    /// How many keys (k0, k1, ...).
    #[serde(default = "three")]
    pub keys: u32,
    /// Relative weights of reads, writes and compare-and-sets.
    #[serde(default)]
    pub mix: Mix,
    /// Per-operation timeout; an operation with no answer by then is unknown.
    #[serde(default = "one_sec", with = "humantime_serde")]
    pub timeout: Duration,
    /// The seed of the random choices (keys, values, nodes, op kinds, nemesis targets).
    #[serde(default)]
    pub seed: Option<u64>,
    /// How each operation maps to HTTP.
    pub ops: WorkloadOps,
    /// How a node that is not the leader redirects (if it does rather than forwarding).
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Faults during the workload, healed before the final reads.
    #[serde(default)]
    pub nemesis: Vec<NemesisStep>,
}

fn four() -> u32 {
    4
}
fn three() -> u32 {
    3
}
fn forty() -> f64 {
    40.0
}
fn ten_secs() -> Duration {
    Duration::from_secs(10)
}
fn one_sec() -> Duration {
    Duration::from_secs(1)
}

/// Weights of the operation kinds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub read: u32,
    #[serde(default)]
    pub write: u32,
    #[serde(default)]
    pub cas: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { read: 50, write: 40, cas: 10 }
    }
}

/// HTTP mappings of read, write and compare-and-set. Templates see `key`,
/// `value` (write), `from` and `to` (cas).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadOps {
    pub read: OpMapping,
    pub write: OpMapping,
    #[serde(default)]
    pub cas: Option<OpMapping>,
}

/// One operation's request and how to read its answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpMapping {
    pub request: Request,
    /// Statuses meaning it happened.
    pub ok: Vec<u16>,
    /// Statuses meaning it certainly did not happen (e.g. 409 for a cas whose `from` did not match).
    #[serde(default)]
    pub fail: Vec<u16>,
    /// For reads: statuses meaning "no value" (e.g. 404).
    #[serde(default)]
    pub missing: Vec<u16>,
    /// For reads: where the value is in the answer, a JSON pointer into a
    /// JSON body (`/value`) or the whole body (`{body: text}`, `{body: json}`,
    /// `{body: base64}`).
    #[serde(default)]
    pub value: Option<ValueAt>,
}

/// Where a read's answer holds the value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ValueAt {
    /// A JSON pointer into the body parsed as JSON: `/value`, `/data/0/v`.
    Pointer(String),
    /// The whole body, as it is on the wire.
    Body {
        /// How the body encodes the value.
        body: BodyEncoding,
    },
}

/// How a body carries a value.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BodyEncoding {
    /// The text itself (one trailing newline dropped).
    Text,
    /// A JSON document: a string is the value, a number or other JSON its text.
    Json,
    /// The value, base64-encoded (standard alphabet; one trailing newline dropped).
    Base64,
}

/// How a follower points at the leader.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub status: Vec<u16>,
    /// The header naming the leader (matched against the nodes' `service.leader.id_env`).
    pub leader_header: String,
}

/// One fault of the nemesis schedule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisStep {
    /// When, from the start of the workload.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    pub fault: String,
    #[serde(default)]
    pub target: Option<String>,
    /// How long it lasts (healed after), default until the workload ends.
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub duration: Option<Duration>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A dependency rendered from `compose-templates/<template>.yaml.tera`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Template name (redis, postgres, rabbitmq, prometheus, alertmanager).
    pub template: String,
    /// Values handed to the template as `options` (database names, passwords...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Route the service's traffic to it through lab's fault proxy, so that
    /// latency, loss, bandwidth, reset and blackhole faults apply to that link.
    #[serde(default)]
    pub proxy: bool,
    /// Limits beyond the defaults of a dependency (1 GiB, 1 CPU, 1024 processes).
    #[serde(default)]
    pub resources: Resources,
}

/// A container's limits; what is left out keeps its role's default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory, swap included: `256MiB`, `1GiB`, `512M` (at least 16 MiB).
    #[serde(default, deserialize_with = "memory_amount")]
    pub memory: Option<u64>,
    /// CPUs, possibly fractional: `0.5`, `2`.
    #[serde(default, deserialize_with = "cpu_amount")]
    pub cpus: Option<f64>,
    /// Most processes and threads at once (at least 16).
    #[serde(default, deserialize_with = "pids_amount")]
    pub pids: Option<u32>,
}

fn memory_amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let text: String = match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Number(n) => n.to_string(),
        other => return Err(D::Error::custom(format!("memory must be an amount such as 256MiB or 1GiB, not {other:?}"))),
    };
    let bytes = text.trim().parse::<bytesize::ByteSize>().map_err(|e| D::Error::custom(format!("memory `{text}` is not an amount ({e}): write e.g. 256MiB or 1GiB")))?.as_u64();
    if bytes < 16 << 20 {
        return Err(D::Error::custom(format!("memory `{text}` is below 16 MiB: no container starts with so little; a bare number counts bytes, write e.g. 256MiB")));
    }
    Ok(Some(bytes))
}

fn fill_amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let text: String = match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Number(n) => n.to_string(),
        other => return Err(D::Error::custom(format!("fill must be an amount such as 4MiB, not {other:?}"))),
    };
    let bytes = text.trim().parse::<bytesize::ByteSize>().map_err(|e| D::Error::custom(format!("fill `{text}` is not an amount ({e}): write e.g. 4MiB or 512KiB")))?.as_u64();
    if bytes > 64 << 20 {
        return Err(D::Error::custom(format!("fill `{text}` is over 64 MiB: lab keeps each request's body in memory")));
    }
    Ok(Some(bytes))
}

fn cpu_amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    let n = f64::deserialize(d)?;
    if !(0.01..=64.0).contains(&n) {
        return Err(D::Error::custom(format!("cpus {n} is out of range: give a number of CPUs from 0.01 to 64, e.g. 0.5")));
    }
    Ok(Some(n))
}

fn pids_amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let n = u32::deserialize(d)?;
    if n < 16 {
        return Err(D::Error::custom(format!("pids {n} is too few: a Go program alone runs several threads; give at least 16")));
    }
    Ok(Some(n))
}

/// How the learner's service is built.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BuildKind {
    /// A Go source directory, built with `go build` (static). An executable
    /// (or a folder holding one, or an archive of that folder) is taken as it is.
    #[default]
    Go,
    /// A program someone built: an executable file, a folder holding it and
    /// its files, or an archive (.tar, .tar.gz, .tgz) of that folder. Nothing
    /// is built; `program` names the executable in a folder.
    Executable,
}

/// Where the learner's service runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// As containers of the base image, with the binary mounted read-only.
    #[default]
    Container,
    /// A command-line program: nothing runs between checks; `exec` probes run
    /// the built program, each run in its own directory (HOME). No port, no
    /// readiness, no container, nothing for chaos to break.
    Cli,
}

/// The learner's own service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name used in container names, checks and actions.
    #[serde(default = "default_service_name")]
    pub name: String,
    #[serde(default)]
    pub build: BuildKind,
    #[serde(default)]
    pub run: RunKind,
    /// How many replicas to run.
    #[serde(default = "one")]
    pub replicas: u32,
    /// The TCP port the service listens on inside its container (none for `run: cli`).
    #[serde(default)]
    pub port: u16,
    /// Environment; values are tera templates (see `lab show` for the variables).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The arguments the program starts with, each a tera template with the
    /// variables of `env` (e.g. `["--id", "{{ self.node }}"]`). The program
    /// runs in its node's data folder (`self.data_dir`).
    #[serde(default)]
    pub command: Vec<String>,
    /// In a solution folder that is not Go source: the executable to run, as
    /// a path inside the folder. Default: the only executable at its top.
    #[serde(default)]
    pub program: Option<String>,
    /// When the service counts as started (required for containers; none for `run: cli`).
    #[serde(default)]
    pub ready: Option<HttpReady>,
    /// How to find the leader of a replicated service (for `leader` targets).
    #[serde(default)]
    pub leader: Option<LeaderProbe>,
    /// How replicas talk to each other (e.g. Raft's port); with `proxy: true`
    /// their traffic goes through lab's fault proxy, so that latency, loss and
    /// friends apply per link between nodes.
    #[serde(default)]
    pub peers: Option<Peers>,
    /// Limits of each replica beyond the service's defaults (512 MiB, 1 CPU, 1024 processes).
    #[serde(default)]
    pub resources: Resources,
}

/// The replicas' own port for each other, and whether it is proxied.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    pub port: u16,
    #[serde(default)]
    pub proxy: bool,
}

/// How to find the leader. Ask every node with a GET of `path` on the
/// service port and read one thing of the answer: the JSON at `pointer`, the
/// first group of `regex` over the body, the header `header`, or the value of
/// the Prometheus metric `metric`. With `is`, that thing says whether the
/// node itself leads (it leads when it equals `is`: `Leader`, `1`, `true`);
/// without, it names the leader, matched against each node's `id` (a
/// template, e.g. `n{{ self.node }}`) or its environment variable `id_env`.
/// Or, with `writes: true`, the leader is the node that accepts the
/// workload's write without redirecting it (a store whose followers redirect).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderProbe {
    /// The path of the GET (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// A JSON pointer into the body.
    #[serde(default)]
    pub pointer: Option<String>,
    /// A regular expression over the body; its first group (or the whole match) is read.
    #[serde(default)]
    pub regex: Option<String>,
    /// A response header.
    #[serde(default)]
    pub header: Option<String>,
    /// A Prometheus metric in the body (text exposition format), with labels
    /// to pick one series if needed: `raft_state{state="leader"}`.
    #[serde(default)]
    pub metric: Option<String>,
    /// The node reports whether it leads itself: the value read equals this.
    #[serde(default)]
    pub is: Option<String>,
    /// The environment variable holding each node's id, as the leader is named.
    #[serde(default)]
    pub id_env: Option<String>,
    /// Each node's id as the leader is named, a template (`{{ self.node }}`, `{{ self.host }}:7000`).
    #[serde(default)]
    pub id: Option<String>,
    /// The leader is the node that answers the workload's write with an ok
    /// status rather than a redirect (`workload.redirect`).
    #[serde(default)]
    pub writes: bool,
}

/// A named chaos scenario: `lab chaos <lab> <name>` runs it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it does, for `lab show`.
    #[serde(default)]
    pub about: String,
    /// The fault: kill, stop, pause, restart, partition, outage, bandwidth, latency, loss.
    pub fault: String,
    /// The target: a node number, a name (app-2, redis), random, leader, minority, majority, all.
    #[serde(default)]
    pub target: Option<String>,
    /// How long it lasts; without it the fault stays until `lab chaos <lab> heal`.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Fault options (delay, jitter, loss, rate, split, to...), as on the command line.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_service_name() -> String {
    "app".into()
}
fn one() -> u32 {
    1
}

/// Readiness of the learner's service: an HTTP GET that must answer `status`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReady {
    /// The path of the HTTP GET (unless `grpc` or `tcp`).
    #[serde(default)]
    pub path: String,
    /// Instead of an HTTP GET: the service port accepts a TCP connection
    /// (and keeps it open), for a program with no health route.
    #[serde(default)]
    pub tcp: bool,
    /// Instead of an HTTP GET: the standard gRPC health service
    /// (grpc.health.v1.Health/Check) answers SERVING.
    #[serde(default)]
    pub grpc: bool,
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default = "ready_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn ok_status() -> u16 {
    200
}
fn ready_timeout() -> Duration {
    Duration::from_secs(30)
}

/// An ordered group of checks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub stage: String,
    /// When a check of a required stage fails, later stages are not run.
    #[serde(default)]
    pub required: bool,
    pub checks: Vec<Check>,
}

/// One check: a name, an expectation in words, a hint, and the steps proving it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    /// What is expected, in words a learner reads.
    pub expect: String,
    /// What to look at when it fails.
    #[serde(default)]
    pub hint: String,
    /// Hints for what was seen, used instead of `hint` when a polled number
    /// (a step with `retry_for` whose expectation is `equals` a number) ended
    /// the way each names.
    #[serde(default)]
    pub hints: ObservedHints,
    pub steps: Vec<Step>,
}

/// How a polled number ended, when it did not reach what was expected.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObservedHints {
    /// Above the expected number (applied twice, admitted too many…).
    #[serde(default)]
    pub over: Option<String>,
    /// Below it and still moving when the time ran out (too slow).
    #[serde(default)]
    pub rising: Option<String>,
    /// Below it and no longer moving (lost, stuck).
    #[serde(default)]
    pub stuck: Option<String>,
}

/// One step: either an HTTP request with expectations, or an action on the lab.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub request: Option<Request>,
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub action: Option<Action>,
    /// A probe speaking another protocol (or running a program); see `lab::probes`.
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub probe: Option<super::probes::Probe>,
    /// Send the request this many times (a number or a template such as `"{{ env.RATE_LIMIT }}"`);
    /// the expectation must hold for every one. `{{ i }}` is the repetition, from 1.
    #[serde(default)]
    pub repeat: Option<IntOrTemplate>,
    /// With `repeat`, start repetition `i` this long after repetition `i-1`
    /// started (a steady pace, e.g. one request every 250 ms), not back to back.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Keep sending until the expectation holds or this much time has passed.
    /// With `repeat`, each repetition is retried on its own, for this long
    /// from its first attempt.
    #[serde(default, with = "humantime_serde")]
    pub retry_for: Option<Duration>,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Values to keep for later steps: variable name -> JSON pointer into the response body.
    #[serde(default)]
    pub save: BTreeMap<String, String>,
    /// The hint of this step's failure, instead of the check's (e.g. a step
    /// that waits for what earlier checks left behind).
    #[serde(default)]
    pub hint: Option<String>,
}

/// A number written plainly or as a template that renders to one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IntOrTemplate {
    Int(u32),
    Template(String),
}

/// An HTTP request to the learner's service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default = "get")]
    pub method: String,
    /// Path and query, a template.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (strings inside are templates).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// A raw body, a template.
    #[serde(default)]
    pub body: Option<String>,
    /// A body of this many bytes of filler (`4MiB`, `64KiB`; at most 64 MiB),
    /// for a service that must cope with large uploads or memory pressure.
    #[serde(default, deserialize_with = "fill_amount", skip_serializing_if = "Option::is_none")]
    pub fill: Option<u64>,
    /// Which replica of the service to ask (1-based); default the first.
    #[serde(default)]
    pub node: Option<String>,
    /// Ask this dependency (by its name under `dependencies`, on its published
    /// port) instead of the learner's service, e.g. Prometheus' HTTP API.
    #[serde(default)]
    pub dep: Option<String>,
    /// Give up waiting for an answer after this long.
    #[serde(default = "request_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn get() -> String {
    "GET".into()
}
fn request_timeout() -> Duration {
    Duration::from_secs(5)
}

/// An action on the running lab.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Action {
    /// Restart a dependency or the learner's service and wait until it is ready.
    Restart(String),
    /// Stop a dependency or the learner's service.
    Stop(String),
    /// Start it again and wait until it is ready.
    Start(String),
    /// Wait.
    #[serde(with = "humantime_serde")]
    Sleep(Duration),
    /// Inject a fault (as `lab chaos`): `{fault: kill, target: leader}`; healed when the check ends.
    Chaos(ChaosStep),
    /// Heal, in the middle of the check, the faults its earlier `chaos` steps
    /// injected: `all`, or those of one fault (`partition`); what they
    /// stopped is waited for until ready again.
    Heal(String),
    /// Wait until the service's replicas agree on a leader, at most this long; saves `leader` (its node number).
    #[serde(with = "humantime_serde")]
    WaitLeader(Duration),
    /// Run the lab's workload with its nemesis (once per run; later steps reuse the history).
    Workload(bool),
    /// Judge the recorded history: `linearizable` or `no-lost-writes`.
    Check(String),
}

/// A fault injected by a check step.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosStep {
    pub fault: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What a response must look like.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Expected status code.
    #[serde(default)]
    pub status: Option<u16>,
    /// Any of these status codes (instead of `status`).
    #[serde(default)]
    pub status_in: Vec<u16>,
    /// Header name -> matcher.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// JSON pointer -> matcher, on the body parsed as JSON.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// Matcher on the raw body.
    #[serde(default)]
    pub body: Option<Matcher>,
    /// The answer must arrive within this long.
    #[serde(default, with = "humantime_serde")]
    pub within: Option<Duration>,
    /// The answer must not arrive sooner than this: a floor that an honest
    /// service cannot beat, such as a commit over links a fault slowed down.
    #[serde(default, with = "humantime_serde")]
    pub not_within: Option<Duration>,
}

/// A test on one value. All given tests must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Equal to this (a template).
    #[serde(default)]
    pub equals: Option<String>,
    /// Contains this (a template).
    #[serde(default)]
    pub contains: Option<String>,
    /// Matches this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// Present (true) or absent (false).
    #[serde(default)]
    pub present: Option<bool>,
    /// A whole number at least this (a number, or a template such as `"{{ baseline - 5 }}"`).
    #[serde(default)]
    pub min: Option<Bound>,
    /// Does not contain this (a template), e.g. `not_contains: "panic:"` on a program's stderr.
    #[serde(default)]
    pub not_contains: Option<String>,
    /// A whole number at most this (a number, or a template such as `"{{ baseline + 15 }}"`).
    #[serde(default)]
    pub max: Option<Bound>,
    /// Of this JSON type (JSON pointers only): `"3"` is a string, not a number.
    #[serde(default, rename = "type")]
    pub kind: Option<JsonKind>,
}

/// A bound of `min` or `max`: a whole number, or a template that renders to
/// one with the check's variables (a value saved by an earlier step).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Bound {
    Int(i64),
    Template(String),
}

impl Bound {
    /// The number, once any template is rendered.
    pub fn value(&self) -> Option<i64> {
        match self {
            Bound::Int(n) => Some(*n),
            Bound::Template(t) => t.trim().parse().ok(),
        }
    }
}

impl From<i64> for Bound {
    fn from(n: i64) -> Self {
        Bound::Int(n)
    }
}

/// A JSON value's type, for `type:` in a matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonKind {
    String,
    /// Any JSON number.
    Number,
    /// A number without a fraction or exponent (`3`, not `3.0`).
    Integer,
    Boolean,
    Null,
    Object,
    Array,
}

impl JsonKind {
    pub fn of(v: &serde_json::Value) -> JsonKind {
        use serde_json::Value as V;
        match v {
            V::String(_) => JsonKind::String,
            V::Number(n) if n.is_i64() || n.is_u64() => JsonKind::Integer,
            V::Number(_) => JsonKind::Number,
            V::Bool(_) => JsonKind::Boolean,
            V::Null => JsonKind::Null,
            V::Object(_) => JsonKind::Object,
            V::Array(_) => JsonKind::Array,
        }
    }

    /// Whether `v` is of this type (an integer is a number too).
    pub fn admits(self, v: &serde_json::Value) -> bool {
        let k = JsonKind::of(v);
        k == self || (self == JsonKind::Number && k == JsonKind::Integer)
    }

    pub fn word(self) -> &'static str {
        match self {
            JsonKind::String => "a string",
            JsonKind::Number => "a number",
            JsonKind::Integer => "a whole number",
            JsonKind::Boolean => "true or false",
            JsonKind::Null => "null",
            JsonKind::Object => "an object",
            JsonKind::Array => "an array",
        }
    }
}
