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
    /// Ask Prometheus (or Alertmanager) what it scraped from the service and
    /// how its alerts stand.
    Prometheus(PrometheusProbe),
    /// Read the notifications lab's webhook sink received (from Alertmanager).
    Webhook(WebhookProbe),
    /// Speak AMQP 0-9-1 to a broker (a dependency such as RabbitMQ): purge
    /// queues, publish messages, get (peek at) messages, read queue counts, and
    /// measure how fast the learner's service drains a burst.
    Amqp(AmqpProbe),
    /// Many WebSocket clients of the service's nodes running one scenario
    /// (fanout, origin, silent-client, slow-client); see `WsProbe`.
    Ws(WsProbe),
    /// Call a unary gRPC method described by a .proto shipped with the lab.
    Grpc(GrpcProbe),
    /// Decode a JSON Web Token and verify it with the instance's secret.
    Jwt(JwtProbe),
    /// Run one SQL query against a PostgreSQL dependency.
    Sql(SqlProbe),
    /// Many HTTP requests to the service at once, spread over its nodes,
    /// answered by counts (how many got each status, per node, per request).
    Burst(BurstProbe),
    /// Ask a Redis dependency: one command, or what keys it holds and whether they expire.
    Redis(RedisProbe),
    /// Read a node's container as the engine sees it: running, killed for memory, memory used.
    Container(ContainerProbe),
}

impl Probe {
    /// The probe's kind, as written in lab.yaml.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Exec(_) => "exec",
            Probe::Prometheus(_) => "prometheus",
            Probe::Webhook(_) => "webhook",
            Probe::Amqp(_) => "amqp",
            Probe::Ws(_) => "ws",
            Probe::Grpc(_) => "grpc",
            Probe::Jwt(_) => "jwt",
            Probe::Sql(_) => "sql",
            Probe::Burst(_) => "burst",
            Probe::Redis(_) => "redis",
            Probe::Container(_) => "container",
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

/// Ask Prometheus' HTTP API (of the lab's dependency made from the
/// `prometheus` template, unless `url` says otherwise). Exactly one of
/// `query`, `metadata`, `alert`, `alertmanager`, `targets`. Answers:
///
/// * `query`: an instant PromQL query; `{"<series>": "<value>", ...}`, each
///   series keyed `name{label="value",...}` with labels sorted, `name` being the
///   series' metric name, else `name` below, else `value`. E.g. `sum by (method)
///   (http_requests_total)` with `name: http_requests_total` answers
///   `{"http_requests_total{method=\"GET\"}": "12"}`; no series answers `{}`.
/// * `metadata: <metric>`: `{"<metric>": {"type": "counter", "help": "...", "unit": ""}}`, or `{}`.
/// * `alert: <name>`: the alert rule's state, `{"<name>": "inactive" | "pending" | "firing"}`.
/// * `alertmanager: <name>`: the alert in Alertmanager, `{"<name>": "active" | "suppressed" | "unprocessed" | "absent"}`.
/// * `targets: <job>`: `{"<job>": "up" | "down" | "unknown" | "absent", "targets": {"<instance>": "<health>"}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProbe {
    /// Prometheus' base URL; default the lab's prometheus dependency on its published port.
    #[serde(default)]
    pub url: Option<String>,
    /// Alertmanager's base URL; default the lab's alertmanager dependency.
    #[serde(default)]
    pub alertmanager_url: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// The name of series that have none (aggregations drop it).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub alertmanager: Option<String>,
    #[serde(default)]
    pub targets: Option<String>,
    /// First wait until Prometheus has scraped every target again (a scrape that
    /// began after the probe did), so the answer counts everything sent before.
    #[serde(default)]
    pub fresh: bool,
    /// Give up after this long (the fresh wait included).
    #[serde(default = "prometheus_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn prometheus_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Read lab's webhook sink (run when a dependency such as Alertmanager delivers
/// to it). The answer is `{"next": N, "received": k, "notifications": [{"seq",
/// "status", "receiver", "alerts": [{"alertname", "status"}]}], "<alert>":
/// {"firing": a, "resolved": b}}`: the notifications numbered `since` or later
/// (save `next` first to look only at what came after), and with `alert`, how
/// many of them carried that alert firing and resolved.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookProbe {
    /// The sink's base URL; default lab's sink of this instance.
    #[serde(default)]
    pub url: Option<String>,
    /// The first notification number to look at (a template, e.g. `"{{ mark }}"`); default all.
    #[serde(default)]
    pub since: Option<String>,
    /// Count this alert's firing and resolved notifications.
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default = "prometheus_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// One AMQP session against a broker. The parts run in this order, each only
/// when given: `purge`, `publish`, `get`, `queues`, `drain`. The answer is
///
/// ```json
/// {"purged": {"orders.dlq": 2},
///  "published": 500, "publish_ms": 84,
///  "received": 1,
///  "messages": [{"body": "...", "json": <body as JSON or null>, "headers": {"x-retries": 3, "x-error": "..."},
///                "exchange": "", "routing_key": "orders.dlq", "redelivered": false, "truncated": false}],
///  "queues": {"orders": {"exists": true, "messages": 0, "consumers": 1},
///             "nope": {"exists": false, "error": "NOT_FOUND - no queue 'nope' in vhost '/'"}},
///  "drain": {"reached": true, "value": 500, "ms": 1310, "rate": 381, "error": null}}
/// ```
///
/// Header tables and arrays (such as `x-death`) become JSON objects and arrays;
/// byte arrays become text; timestamps become seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpProbe {
    /// `amqp://user:password@host:port/vhost`, e.g. `"amqp://lab:lab@{{ deps.rabbitmq.addr }}/"`.
    pub url: String,
    /// Queues to empty first.
    #[serde(default)]
    pub purge: Vec<String>,
    #[serde(default)]
    pub publish: Option<AmqpPublish>,
    #[serde(default)]
    pub get: Option<AmqpGet>,
    /// Queues whose counts to read (a passive declare: nothing is created).
    #[serde(default)]
    pub queues: Vec<String>,
    /// After publishing, poll an HTTP JSON endpoint of the service until a number in it reaches a target.
    #[serde(default)]
    pub drain: Option<AmqpDrain>,
    /// The whole session (without `drain`) must finish within this; otherwise the broker failed to answer.
    #[serde(default = "amqp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Messages to publish.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpPublish {
    /// The exchange; "" is the default exchange (routing key = queue name).
    #[serde(default)]
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
    /// The body. With `count` above 1, `{n}` in it is replaced by the message's number, from 1.
    pub body: String,
    /// Headers: strings, whole numbers or booleans.
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
    /// How many messages (a number or a template; at most 100000).
    #[serde(default)]
    pub count: Option<crate::lab::IntOrTemplate>,
    /// Delivery mode 2 (persistent); default true.
    #[serde(default = "yes")]
    pub persistent: bool,
    #[serde(default = "json_type")]
    pub content_type: String,
}

/// Messages to fetch with basic.get.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpGet {
    pub queue: String,
    /// At most this many (at most 100).
    #[serde(default = "one")]
    pub count: u32,
    /// Acknowledge what was read (it leaves the queue); by default it is put back (a peek).
    #[serde(default)]
    pub ack: bool,
}

/// Wait until the service has processed what was published.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpDrain {
    /// A GET URL answering JSON, e.g. `"{{ service.url }}/stats/burst-{{ run.id }}"`.
    pub url: String,
    /// JSON pointer to a number in its answer.
    pub pointer: String,
    /// Done when the number is at least this (a number or a template).
    pub until: crate::lab::IntOrTemplate,
    /// Give up after this long (from the first publish).
    #[serde(default = "drain_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn amqp_timeout() -> Duration {
    Duration::from_secs(10)
}

fn drain_timeout() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn json_type() -> String {
    "application/json".into()
}

/// WebSocket clients spread round robin over the nodes in `urls`, running one
/// scenario (see `probe::ws`). Answers:
/// - `fanout` and `slow-client`: `{"clients", "senders", "messages", "expected",
///   "delivered", "missing", "missing_cross_node", "duplicates", "out_of_order",
///   "send_errors", "ended_early", "latency_ms": {"max", "p50"}, "per_client": [...]}`;
/// - `origin`: `{"status": 101|<refusal status>, "accepted": bool}`;
/// - `silent-client`: `{"closed", "closed_after_ms", "close_frame", "pings",
///   "idle_open", "idle_closed_after_ms", "idle_pings"}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WsProbe {
    pub scenario: WsScenario,
    /// Base URLs of the nodes (templates, e.g. `"{{ service.urls[1] }}"`); default every node.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Path and query of the WebSocket endpoint (a template); `{client}` becomes the client's name.
    #[serde(default = "ws_path")]
    pub path: String,
    /// The text a sender sends (a template); `{token}` becomes the message's token, `{pad}` `size` bytes of filler.
    #[serde(default = "ws_message")]
    pub message: String,
    /// The Origin header of every handshake.
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default = "ws_clients")]
    pub clients: u32,
    #[serde(default = "ws_senders")]
    pub senders: u32,
    #[serde(default = "ws_messages")]
    pub messages: u32,
    /// Filler bytes per message (`{pad}`).
    #[serde(default)]
    pub size: u32,
    /// Pause between two messages of one sender.
    #[serde(default, with = "humantime_serde")]
    pub interval: Duration,
    /// Pause after connecting, before sending (silent-client: how long the idle client must outlive the silent one).
    #[serde(default = "ws_settle", with = "humantime_serde")]
    pub settle: Duration,
    /// How long deliveries may take after the last send (silent-client: how long the server has to drop the silent client).
    #[serde(default = "ws_wait", with = "humantime_serde")]
    pub wait: Duration,
    /// The whole scenario's deadline.
    #[serde(default = "ws_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The largest frame accepted from the service, in bytes.
    #[serde(default = "ws_max_message")]
    pub max_message: u32,
}

/// What a ws probe does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WsScenario {
    Fanout,
    Origin,
    SilentClient,
    SlowClient,
}

fn ws_path() -> String {
    "/ws?user={client}".into()
}
fn ws_message() -> String {
    r#"{"text": "{token}{pad}"}"#.into()
}
fn ws_clients() -> u32 {
    6
}
fn ws_senders() -> u32 {
    2
}
fn ws_messages() -> u32 {
    10
}
fn ws_settle() -> Duration {
    Duration::from_millis(300)
}
fn ws_wait() -> Duration {
    Duration::from_secs(5)
}
fn ws_timeout() -> Duration {
    Duration::from_secs(30)
}
fn ws_max_message() -> u32 {
    256 * 1024
}

/// Call a unary gRPC method. The lab's .proto is compiled when the probe runs
/// (no protoc needed), so a lab adds gRPC checks without a new build of lab.
/// The answer is `{"code": "OK"|"UNAUTHENTICATED"|..., "message": "...",
/// "response": {...the reply as JSON, field names as in the .proto, 64-bit
/// integers as numbers, defaults included...}|null, "metadata": {...}}`.
/// A service that cannot be reached, answers past the deadline (plus 0.5 s),
/// breaks the connection or sends a reply over 256 KiB fails the check.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcProbe {
    /// The .proto file in the lab's folder, e.g. `auth.proto`.
    pub proto: String,
    /// `package.Service/Method`, e.g. `auth.v1.Auth/Login`.
    pub method: String,
    /// The request message as JSON (protobuf's JSON mapping); strings are templates.
    #[serde(default = "empty_object")]
    pub request: serde_json::Value,
    /// The call's deadline, sent as grpc-timeout.
    #[serde(default = "grpc_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Request metadata (templates).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Where to call; default the learner's service.
    #[serde(default = "service_url")]
    pub target: String,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}
fn grpc_deadline() -> Duration {
    Duration::from_secs(2)
}
fn service_url() -> String {
    "{{ service.url }}".into()
}

/// Decode a JWT and verify it with a shared secret. Never fails to answer:
/// `{"valid": bool, "error": "why not"|null, "header": {...}, "claims": {...},
/// "expires_in_seconds": exp - now | null}`. Valid means: the expected
/// algorithm, a good signature, and no `exp` in the past (with `require_exp`,
/// an `exp` must be there).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProbe {
    /// The token (a template, e.g. `"{{ token }}"` saved from a login).
    pub token: String,
    /// The secret; default the instance's own (`{{ secret }}`).
    #[serde(default = "instance_secret")]
    pub secret: String,
    /// The algorithm the token must be signed with.
    #[serde(default = "hs256")]
    pub algorithm: String,
    /// Count a token without an `exp` claim as invalid (by default only an `exp` in the past is).
    #[serde(default)]
    pub require_exp: bool,
}

fn instance_secret() -> String {
    "{{ secret }}".into()
}
fn hs256() -> String {
    "HS256".into()
}

/// Run one query against PostgreSQL. The answer is `{"rows": [{"column":
/// "value as text"|null}], "count": n, "truncated": bool, "error": "PostgreSQL's
/// refusal"|null}` (at most 1000 rows, 4 KiB per value).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlProbe {
    /// e.g. `postgres://lab:lab@{{ deps.postgres.addr }}/lab`
    pub url: String,
    pub query: String,
    #[serde(default = "sql_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn sql_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `count` HTTP requests to the learner's service, `concurrency` of them in
/// flight at once: the k-th request is `requests[k mod len]`, sent to
/// `nodes[k mod len]` unless that request names its own `node`. What a check
/// judges is the whole: how many were admitted, refused, failed. The answer:
///
/// ```json
/// {"sent": 60, "answered": 60, "no_answer": 0, "no_answer_example": null,
///  "status": {"200": 10, "429": 50},
///  "class": {"2xx": 10, "3xx": 0, "4xx": 50, "5xx": 0},
///  "by_node": {"1": {"status": {...}, "class": {...}}, ...},
///  "by_request": [{"status": {...}, "class": {...}}, ...],
///  "latency_ms": {"p50": 3, "p95": 9, "max": 14}}
/// ```
///
/// `class` always holds its four keys, so `/class/2xx: {max: 10}` reads 0
/// when nothing was admitted. Each request has its own `timeout`; one that
/// gets no answer counts in `no_answer` and is never waited for beyond it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BurstProbe {
    /// The requests, taken in turn (templates are rendered once, before the burst).
    pub requests: Vec<crate::lab::Request>,
    /// How many requests in all (a number or a template; 1 to 10000).
    pub count: crate::lab::IntOrTemplate,
    /// How many are in flight at once (1 to 256).
    #[serde(default = "burst_concurrency")]
    pub concurrency: u32,
    /// Node numbers the requests are spread over, round robin; default every node.
    #[serde(default)]
    pub nodes: Vec<u32>,
}

fn burst_concurrency() -> u32 {
    16
}

/// Ask a Redis dependency (on its published port, never through lab's fault
/// proxy). Exactly one of `command` and `keys`. Answers:
///
/// * `command: [DBSIZE]`: `{"reply": <the reply: text, number, array or null>, "error": "Redis' refusal"|null}`;
/// * `keys: "rl:*"`: the keys matching the pattern (SCAN, at most 100000 looked at):
///   `{"count": n, "without_ttl": k, "longest_ttl_ms": ms|null, "sample": ["a key without an expiry", ...], "truncated": bool}`,
///   where `without_ttl` counts the keys that never expire (a cache or limiter
///   whose keys grow forever) and `sample` names up to 10 of them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisProbe {
    /// The dependency's name under `dependencies`; default `redis`.
    #[serde(default = "redis_dep")]
    pub dep: String,
    /// A command and its arguments (templates).
    #[serde(default)]
    pub command: Vec<String>,
    /// A key pattern (glob, as Redis' SCAN MATCH takes it).
    #[serde(default)]
    pub keys: Option<String>,
    #[serde(default = "sql_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn redis_dep() -> String {
    "redis".into()
}

/// A node of the learner's service as its engine sees it (lab must run it):
/// `{"node": 1, "container": "...", "running": bool, "exit_code": n|null,
/// "oom_killed": bool, "memory_limit_mib": n, "memory_mib": n|null,
/// "memory_peak_mib": n|null}`. The memory figures come from Docker (the
/// peak where the host's cgroups are v1); on a cluster they are null and
/// `oom_killed` is false.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerProbe {
    /// The node (1-based); default 1.
    #[serde(default = "one")]
    pub node: u32,
}
