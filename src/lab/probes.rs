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
    /// Call a unary gRPC method described by a .proto shipped with the lab.
    Grpc(GrpcProbe),
    /// Decode a JSON Web Token and verify it with the instance's secret.
    Jwt(JwtProbe),
    /// Run one SQL query against a PostgreSQL dependency.
    Sql(SqlProbe),
}

impl Probe {
    /// The probe's kind, as written in lab.yaml.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Exec(_) => "exec",
            Probe::Grpc(_) => "grpc",
            Probe::Jwt(_) => "jwt",
            Probe::Sql(_) => "sql",
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
