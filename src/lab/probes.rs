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
    /// Many WebSocket clients of the service's nodes running one scenario
    /// (fanout, origin, silent-client, slow-client); see `WsProbe`.
    Ws(WsProbe),
}

impl Probe {
    /// The probe's kind, as written in lab.yaml.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Exec(_) => "exec",
            Probe::Ws(_) => "ws",
        }
    }
}

/// Run a program on the host. The answer is
/// `{"exit": 0, "signal": null, "stdout": "...", "stderr": "...", "json": <stdout parsed as JSON or null>}`.
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
}

fn exec_timeout() -> Duration {
    Duration::from_secs(10)
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
