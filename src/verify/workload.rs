//! The workload: concurrent clients sending reads, writes and compare-and-sets
//! through random nodes while a nemesis injects faults, recording every
//! invocation and completion. Then the faults are healed and every key is read
//! from every node, in rounds, until the nodes agree (at most
//! [`CONVERGE_WITHIN`]). The history feeds the checkers.
//!
//! A read's value is taken from the answer as `workload.ops.read.value` says
//! (see [`extract_value`]); a read answered with an ok status whose value
//! cannot be read is not recorded as null: it is left out of what the checkers
//! judge and listed in [`Recorded::unreadable`], and the history checks fail on
//! it, saying what lab.yaml expected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Target;
use crate::chaos::{Chaos, Fault};
use crate::checker::TimeUnit;
use crate::event::Event;
use crate::lab::{BodyEncoding, OpMapping, ValueAt, Workload};
use crate::plan::ContainerSpec;
use crate::probe::http::{self, HttpFailure, HttpRequest};

pub use crate::event::{HistoryOp, NemesisInterval, OpType};

/// How long lab reads every key from every node after healing, waiting for
/// them to agree; nodes that still disagree then fail `no-lost-writes`.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(15);
/// A round of those reads starts at most this often.
const ROUND_EVERY: Duration = Duration::from_millis(300);
/// How much of a body lab could not read a value from is kept for the report.
const BODY_EXCERPT: usize = 80;

/// How times read in messages: seconds from the start of the workload.
const T: TimeUnit = TimeUnit::Nanos;

/// Everything a workload run recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub ops: Vec<HistoryOp>,
    pub nemesis: Vec<NemesisInterval>,
    pub seed: u64,
    pub clients: u32,
    pub duration: Duration,
    /// The reads of every key from every node after healing.
    pub final_reads: FinalReads,
    /// Faults of the schedule that could not be injected or healed, each a
    /// sentence (`partition at 2.000 s could not be applied: …`).
    pub nemesis_errors: Vec<String>,
    /// Reads answered with an ok status whose value lab could not read (they
    /// are in `ops` as `fail`, so the checkers leave them out).
    pub unreadable: Vec<UnreadableRead>,
    /// Where lab.yaml says a read's answer holds the value (`workload.ops.read.value`).
    pub value_at: Option<ValueAt>,
}

/// The reads after healing: every key from every node, in rounds (one every
/// [`ROUND_EVERY`] at most), until in one round every node answered every key
/// and the nodes agreed per key, or [`CONVERGE_WITHIN`] passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FinalReads {
    /// Per key, the last round's read of it from each node: (node, index into `ops`).
    pub keys: BTreeMap<String, Vec<(u32, usize)>>,
    /// True when the last round found every node answering every key, with
    /// the same value per key.
    pub converged: bool,
    pub rounds: u32,
    /// From the end of healing to the end of the last round.
    #[serde(with = "crate::event::secs")]
    pub waited: Duration,
}

/// A read answered with an ok status whose value lab could not read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnreadableRead {
    /// The node that answered.
    pub node: u32,
    pub key: String,
    pub status: u16,
    /// The first bytes of the body (`…` when cut; invalid UTF-8 replaced).
    pub body: String,
    /// Why: not JSON, nothing at /value, not base64, not UTF-8.
    pub why: String,
    /// When the read was sent (nanoseconds from the start of the workload).
    pub at: u64,
}

/// Why a read's value could not be read from its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The body is not JSON, and lab.yaml says it is.
    NotJson,
    /// The JSON has nothing at the pointer; `found` describes what it has.
    NothingAt { pointer: String, found: String },
    /// The body is not base64 (standard alphabet).
    NotBase64,
    /// The body (or what the base64 decodes to) is not UTF-8 text.
    NotUtf8,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotJson => f.write_str("not JSON"),
            Unreadable::NothingAt { pointer, found } => write!(f, "nothing at {pointer} ({found})"),
            Unreadable::NotBase64 => f.write_str("not base64"),
            Unreadable::NotUtf8 => f.write_str("not UTF-8"),
        }
    }
}

/// What a JSON document is, for "nothing at /value (…)".
fn json_shape(doc: &serde_json::Value) -> String {
    match doc {
        serde_json::Value::Object(o) if o.is_empty() => "the JSON is an empty object".into(),
        serde_json::Value::Object(o) => {
            let fields: Vec<&str> = o.keys().map(String::as_str).take(6).collect();
            format!("the JSON has {}{}", fields.iter().map(|k| format!("/{k}")).collect::<Vec<_>>().join(", "), if o.len() > 6 { ", …" } else { "" })
        }
        serde_json::Value::Array(a) => format!("the JSON is a list of {}", a.len()),
        serde_json::Value::String(_) => "the JSON is a string".into(),
        serde_json::Value::Number(_) => "the JSON is a number".into(),
        serde_json::Value::Bool(_) => "the JSON is a boolean".into(),
        serde_json::Value::Null => "the JSON is null".into(),
    }
}

/// Text with one trailing newline (`\n` or `\r\n`) dropped.
fn drop_newline(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

/// The value of a read, from the body of an answer with an ok status, as
/// lab.yaml's `workload.ops.read.value` says:
/// - `/value` (a JSON pointer): the body is JSON; the value is what is at the
///   pointer (any JSON, null for none);
/// - `{body: text}` (and no `value` at all): the body is the value, as UTF-8
///   text, one trailing newline dropped;
/// - `{body: json}`: the body is a JSON document; a string is the value, null
///   is no value, any other JSON stands for its text (`5` is "5");
/// - `{body: base64}`: the body is the value base64-encoded (standard
///   alphabet, padding optional, one trailing newline dropped), decoding to
///   UTF-8 text.
pub fn extract_value(at: Option<&ValueAt>, body: &[u8]) -> Result<serde_json::Value, Unreadable> {
    use serde_json::Value;
    match at {
        Some(ValueAt::Pointer(p)) => {
            let doc: Value = serde_json::from_slice(body).map_err(|_| Unreadable::NotJson)?;
            doc.pointer(p).cloned().ok_or_else(|| Unreadable::NothingAt { pointer: p.clone(), found: json_shape(&doc) })
        }
        Some(ValueAt::Body { body: BodyEncoding::Json }) => match serde_json::from_slice::<Value>(body).map_err(|_| Unreadable::NotJson)? {
            Value::Null => Ok(Value::Null),
            Value::String(s) => Ok(Value::String(s)),
            other => Ok(Value::String(other.to_string())),
        },
        Some(ValueAt::Body { body: BodyEncoding::Base64 }) => {
            let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotBase64)?;
            let bytes = base64_decode(drop_newline(text)).ok_or(Unreadable::NotBase64)?;
            String::from_utf8(bytes).map(Value::String).map_err(|_| Unreadable::NotUtf8)
        }
        Some(ValueAt::Body { body: BodyEncoding::Text }) | None => {
            let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotUtf8)?;
            Ok(Value::String(drop_newline(text).to_string()))
        }
    }
}

/// Standard base64 with padding (the write template's `value_base64`).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64, padded or not; None for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    const EITHER: base64::engine::GeneralPurpose =
        base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent));
    EITHER.decode(s).ok()
}

/// A value as the text a template writes: a string as it is, anything else as JSON.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first bytes of a body, for a report.
fn excerpt(body: &[u8]) -> String {
    let cut = body.len() > BODY_EXCERPT;
    let mut s = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]).into_owned();
    if cut {
        s.push('…');
    }
    s
}

fn ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

struct Ctx<'a> {
    w: &'a Workload,
    replicas: Vec<&'a ContainerSpec>,
    client: reqwest::Client,
    start: Instant,
}

impl<'a> Ctx<'a> {
    fn node_url(&self, node: u32) -> String {
        self.replicas.iter().find(|c| c.node == node).map(|c| format!("http://127.0.0.1:{}", c.port.host)).unwrap_or_default()
    }

    fn node_by_id(&self, id: &str) -> Option<u32> {
        self.replicas.iter().find(|c| c.id.as_deref() == Some(id)).map(|c| c.node)
    }

    /// Perform one operation against `node`, following redirects to the leader.
    /// A read answered with an ok status whose value cannot be read is
    /// recorded as `fail` (a read changes nothing, so it constrains nothing)
    /// and also returned, for [`Recorded::unreadable`].
    async fn perform(&self, process: u32, f: &str, key: &str, value: serde_json::Value, node: u32) -> (HistoryOp, Option<UnreadableRead>) {
        let mapping: &OpMapping = match f {
            "read" => &self.w.ops.read,
            "write" => &self.w.ops.write,
            _ => self.w.ops.cas.as_ref().expect("cas chosen only when mapped"),
        };
        // Template variables: `key`; `value` and `value_base64` for writes;
        // `from`, `to`, `from_base64` and `to_base64` for cas.
        let mut ctx = tera::Context::new();
        ctx.insert("key", key);
        match f {
            "write" => {
                ctx.insert("value", &value);
                ctx.insert("value_base64", &base64_encode(value_text(&value).as_bytes()));
            }
            "cas" => {
                ctx.insert("from", &value[0]);
                ctx.insert("to", &value[1]);
                ctx.insert("from_base64", &base64_encode(value_text(&value[0]).as_bytes()));
                ctx.insert("to_base64", &base64_encode(value_text(&value[1]).as_bytes()));
            }
            _ => {}
        }
        let invoke = ns(self.start);
        let deadline = Instant::now() + self.w.timeout;
        let mut at = node;
        let mut unreadable = None;
        let mut op = HistoryOp {
            process,
            key: key.to_string(),
            f: f.to_string(),
            value,
            output: serde_json::Value::Null,
            kind: OpType::Info,
            invoke,
            complete: 0,
            node,
            answered_by: node,
            note: String::new(),
        };
        for _hop in 0..4 {
            let req = match super::render_request(&mapping.request, &ctx, &self.node_url(at)) {
                Ok((r, _)) => r,
                Err(e) => {
                    op.kind = OpType::Fail;
                    op.note = format!("lab could not render the request: {e}");
                    break;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let req = HttpRequest { timeout: left.max(Duration::from_millis(1)), ..req };
            match http::send(&self.client, &req).await {
                Ok(resp) => {
                    op.answered_by = at;
                    op.note = resp.status.to_string();
                    if let Some(r) = &self.w.redirect {
                        if r.status.contains(&resp.status) {
                            if let Some(next) = resp.header(&r.leader_header).and_then(|id| self.node_by_id(id)) {
                                at = next;
                                continue;
                            }
                            // A redirect that names no known leader did nothing.
                            op.kind = OpType::Fail;
                            break;
                        }
                    }
                    if mapping.ok.contains(&resp.status) {
                        op.kind = OpType::Ok;
                        if f == "read" {
                            match extract_value(mapping.value.as_ref(), &resp.body) {
                                Ok(v) => op.output = v,
                                Err(why) => {
                                    // Answered, but what it read is not known: not a null.
                                    op.kind = OpType::Fail;
                                    op.note = format!("{}, but lab could not read the value: {why}", resp.status);
                                    unreadable = Some(UnreadableRead { node: at, key: key.to_string(), status: resp.status, body: excerpt(&resp.body), why: why.to_string(), at: invoke });
                                }
                            }
                        }
                    } else if f == "read" && mapping.missing.contains(&resp.status) {
                        op.kind = OpType::Ok;
                    } else if mapping.fail.contains(&resp.status) || f == "read" {
                        // A read has no effect: whatever went wrong, it did not happen.
                        op.kind = OpType::Fail;
                    } else {
                        op.kind = OpType::Info;
                    }
                    break;
                }
                Err(HttpFailure::Connect(e)) => {
                    // Refused before anything was sent: certainly not applied.
                    op.kind = OpType::Fail;
                    op.note = e;
                    break;
                }
                Err(e) => {
                    op.kind = if f == "read" { OpType::Fail } else { OpType::Info };
                    op.note = e.to_string();
                    break;
                }
            }
        }
        op.complete = ns(self.start).max(invoke + 1);
        (op, unreadable)
    }
}

/// Run the workload and its nemesis; heal; read every key from every node
/// until they agree (at most [`CONVERGE_WITHIN`]).
pub async fn run(t: &Target<'_>, w: &Workload, run_id: &str, emit: &mut (dyn FnMut(&Event) + Send)) -> Result<Recorded, String> {
    let replicas: Vec<&ContainerSpec> = t.plan.replicas().collect();
    if replicas.is_empty() {
        return Err("the workload needs lab to run the service (--solution), not --target".into());
    }
    let seed = t.seed.or(w.seed).unwrap_or_else(rand::random);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(8).build().map_err(|e| e.to_string())?;
    let ctx = Ctx { w, replicas: replicas.clone(), client, start: Instant::now() };
    let ops = Arc::new(Mutex::new(Vec::new()));
    let unreadable = Arc::new(Mutex::new(Vec::new()));
    // Keys of this run only: values an earlier run left on an instance that
    // stayed up are not this history's (its checker would find writes nobody made).
    let keys: Vec<String> = (0..w.keys.max(1)).map(|k| format!("{run_id}-k{k}")).collect();
    let total = (w.mix.read + w.mix.write + if w.ops.cas.is_some() { w.mix.cas } else { 0 }).max(1);
    let interval = Duration::from_secs_f64(w.clients.max(1) as f64 / w.rate.max(0.1));
    emit(&Event::Step {
        check: "workload".into(),
        text: format!("{} clients, {:.0} ops/s, {} keys ({}-k*), {} s, seed {seed} (--seed {seed} replays it)", w.clients, w.rate, keys.len(), run_id, w.duration.as_secs()),
    });

    let clients = (0..w.clients.max(1)).map(|p| {
        let ctx = &ctx;
        let ops = ops.clone();
        let unreadable = unreadable.clone();
        let keys = &keys;
        async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(p as u64 + 1)));
            let mut seq = 0u32;
            while ctx.start.elapsed() < w.duration {
                let key = keys[rng.gen_range(0..keys.len())].clone();
                let node = ctx.replicas[rng.gen_range(0..ctx.replicas.len())].node;
                let roll = rng.gen_range(0..total);
                seq += 1;
                let (f, value) = if roll < w.mix.read {
                    ("read", serde_json::Value::Null)
                } else if roll < w.mix.read + w.mix.write {
                    ("write", serde_json::Value::String(format!("c{p}-{seq}")))
                } else {
                    // Compare against a value this client may have written, to make some succeed.
                    let from = format!("c{}-{}", rng.gen_range(0..w.clients.max(1)), rng.gen_range(1..=seq.max(1)));
                    ("cas", serde_json::json!([from, format!("c{p}-{seq}")]))
                };
                let (op, bad) = ctx.perform(p, f, &key, value, node).await;
                ops.lock().unwrap().push(op);
                unreadable.lock().unwrap().extend(bad);
                let pause = interval.mul_f64(rng.gen_range(0.5..1.5));
                tokio::time::sleep(pause).await;
            }
        }
    });

    let nemesis = async {
        let chaos = Chaos { backend: t.backend, plan: t.plan, lab: t.lab, helper_image: t.helper_image.clone() };
        let mut intervals: Vec<NemesisInterval> = Vec::new();
        let mut active: Vec<(crate::backend::FaultRecord, Instant, usize)> = Vec::new();
        let mut steps: Vec<_> = w.nemesis.iter().collect();
        steps.sort_by_key(|s| s.at);
        let mut errors = Vec::new();
        for s in steps {
            // Revert what is due before the next injection.
            loop {
                let next_end = active.iter().enumerate().min_by_key(|(_, a)| a.1).map(|(i, a)| (i, a.1));
                match next_end {
                    Some((i, end)) if end <= ctx.start + s.at => {
                        tokio::time::sleep_until(end.into()).await;
                        let (rec, _, idx) = active.remove(i);
                        if let Err(e) = chaos.revert(&rec).await {
                            errors.push(not_healed(&intervals[idx], &e.to_string()));
                        }
                        intervals[idx].end = ns(ctx.start);
                    }
                    _ => break,
                }
            }
            tokio::time::sleep_until((ctx.start + s.at).into()).await;
            let fault = match Fault::parse(&s.fault, &s.options) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(not_applied(&s.fault, s.at, &e.to_string()));
                    continue;
                }
            };
            let targets = match crate::chaos::resolve_for(&chaos, &fault, s.target.as_deref()).await {
                Ok(t) => t,
                Err(e) => {
                    errors.push(not_applied(&s.fault, s.at, &e.to_string()));
                    continue;
                }
            };
            let began = ns(ctx.start);
            match chaos.inject(&fault, &targets, s.duration).await {
                Ok(rec) => {
                    intervals.push(NemesisInterval { fault: s.fault.clone(), targets: rec.targets.clone(), start: began, end: ns(ctx.start) });
                    if rec.kind != "restart" {
                        let end = Instant::now() + s.duration.unwrap_or(w.duration.saturating_sub(s.at));
                        active.push((rec, end, intervals.len() - 1));
                    }
                }
                Err(e) => errors.push(not_applied(&s.fault, s.at, &e.to_string())),
            }
        }
        active.sort_by_key(|a| a.1);
        for (rec, end, idx) in active {
            tokio::time::sleep_until(end.min(ctx.start + w.duration).into()).await;
            if let Err(e) = chaos.revert(&rec).await {
                errors.push(not_healed(&intervals[idx], &e.to_string()));
            }
            intervals[idx].end = ns(ctx.start);
        }
        (intervals, errors)
    };

    let (_, (intervals, errors)) = tokio::join!(futures_util::future::join_all(clients), nemesis);
    for e in &errors {
        emit(&Event::Step { check: "workload".into(), text: format!("nemesis: {e}") });
    }
    // Anything still in force (e.g. after an error) is healed before the final reads.
    let chaos = Chaos { backend: t.backend, plan: t.plan, lab: t.lab, helper_image: t.helper_image.clone() };
    chaos.heal().await.map_err(|e| format!("healing after the workload: {e}"))?;
    for r in &replicas {
        let _ = t.backend.start(&r.name).await;
    }

    // Final reads: every key from every node, in rounds, until in one round
    // every node answered every key and they agree per key. A node behind
    // (still catching up after a partition) is waited for; nodes that never
    // agree fail `no-lost-writes`.
    let mut ops = Arc::try_unwrap(ops).map_err(|_| "clients still running")?.into_inner().unwrap();
    let mut unreadable = Arc::try_unwrap(unreadable).map_err(|_| "clients still running")?.into_inner().unwrap();
    let reader = w.clients.max(1);
    let healed = Instant::now();
    let pairs: Vec<(&String, u32)> = keys.iter().flat_map(|k| replicas.iter().map(move |c| (k, c.node))).collect();
    let mut last: BTreeMap<String, Vec<(u32, usize)>> = BTreeMap::new();
    let mut rounds = 0u32;
    let mut converged;
    loop {
        let round_start = Instant::now();
        rounds += 1;
        let reads = futures_util::future::join_all(pairs.iter().map(|&(key, node)| ctx.perform(reader, "read", key, serde_json::Value::Null, node))).await;
        last.clear();
        let mut bad = false;
        for (&(key, node), (op, b)) in pairs.iter().zip(reads) {
            bad |= b.is_some();
            unreadable.extend(b);
            ops.push(op);
            last.entry(key.clone()).or_default().push((node, ops.len() - 1));
        }
        converged = last.values().all(|reads| agreed(reads.iter().map(|&(_, i)| &ops[i])).is_some());
        // Waiting does not make a value lab cannot read readable: the checks fail on it anyway.
        if converged || bad || healed.elapsed() + ROUND_EVERY >= CONVERGE_WITHIN {
            break;
        }
        tokio::time::sleep_until((round_start + ROUND_EVERY).into()).await;
    }
    let waited = healed.elapsed();
    emit(&Event::Step {
        check: "workload".into(),
        text: format!(
            "after healing, every key read from all {} nodes: {} after {rounds} round{} ({:.2} s; lab waits at most {} s)",
            replicas.len(),
            if converged { "they agree" } else { "they do not agree" },
            if rounds == 1 { "" } else { "s" },
            waited.as_secs_f64(),
            CONVERGE_WITHIN.as_secs()
        ),
    });

    // In time order; the final reads' indices follow their operations.
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].invoke, ops[i].process));
    let mut pos = vec![0usize; ops.len()];
    for (new, &old) in order.iter().enumerate() {
        pos[old] = new;
    }
    let mut slots: Vec<Option<HistoryOp>> = ops.into_iter().map(Some).collect();
    let ops: Vec<HistoryOp> = order.iter().map(|&i| slots[i].take().expect("each op once")).collect();
    for reads in last.values_mut() {
        for (_, i) in reads.iter_mut() {
            *i = pos[*i];
        }
    }
    let final_reads = FinalReads { keys: last, converged, rounds, waited };
    Ok(Recorded { ops, nemesis: intervals, seed, clients: w.clients, duration: w.duration, final_reads, nemesis_errors: errors, unreadable, value_at: w.ops.read.value.clone() })
}

/// `partition at 2.000 s could not be applied: …`
fn not_applied(fault: &str, at: Duration, why: &str) -> String {
    format!("{fault} at {} could not be applied: {why}", T.at(at.as_nanos() as u64))
}

/// `partition of app-1 (from 2.000 s) could not be healed: …`
fn not_healed(i: &NemesisInterval, why: &str) -> String {
    format!("{} of {} (from {}) could not be healed: {why}", i.fault, i.targets.join("+"), T.at(i.start))
}

/// The value every read returned, when they all happened (ok) and agree.
fn agreed<'a>(reads: impl IntoIterator<Item = &'a HistoryOp>) -> Option<&'a serde_json::Value> {
    let mut value = None;
    for r in reads {
        if r.kind != OpType::Ok || value.is_some_and(|v| v != &r.output) {
            return None;
        }
        value = Some(&r.output);
    }
    value
}

/// "client 2", or what lab's own reads after healing are.
fn who(r: &Recorded, op: &HistoryOp) -> String {
    if op.process < r.clients.max(1) {
        format!("client {}", op.process)
    } else {
        "lab's read after healing".into()
    }
}

/// "answered by node 2", or "sent to node 1, answered by node 2" after a redirect.
fn fmt_node(op: &HistoryOp) -> String {
    if op.node == op.answered_by {
        format!("answered by node {}", op.answered_by)
    } else {
        format!("sent to node {}, answered by node {}", op.node, op.answered_by)
    }
}

/// "node 1", "nodes 1 and 2", "nodes 1, 2 and 3".
fn fmt_nodes(nodes: &[u32]) -> String {
    let n: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    match n.len() {
        0 => "no node".into(),
        1 => format!("node {}", n[0]),
        k => format!("nodes {} and {}", n[..k - 1].join(", "), n[k - 1]),
    }
}

/// A held value for a sentence: `"c0-3"`, or `no value`.
fn fmt_value(v: &serde_json::Value) -> String {
    if v.is_null() {
        "no value".into()
    } else {
        v.to_string()
    }
}

/// "the write of "c1-5" by client 2", "the cas from "a" to "b" by client 2".
fn writer(r: &Recorded, op: &HistoryOp) -> String {
    match op.f.as_str() {
        "cas" => format!("the cas from {} to {} by {}", op.value[0], op.value[1], who(r, op)),
        f => format!("the {f} of {} by {}", op.value, who(r, op)),
    }
}

/// The value a write or cas leaves when it takes effect.
fn written(op: &HistoryOp) -> Option<serde_json::Value> {
    match op.f.as_str() {
        "write" => Some(op.value.clone()),
        "cas" => Some(op.value[1].clone()),
        _ => None,
    }
}

/// "node 1 at 12.410 s, node 2 at 12.411 s and node 3 at 12.412 s (sent to node 3, answered by node 1)".
fn fmt_reads(reads: &[&HistoryOp]) -> String {
    let parts: Vec<String> = reads
        .iter()
        .map(|o| if o.node == o.answered_by { format!("node {} at {}", o.node, T.at(o.invoke)) } else { format!("node {} at {} (answered by node {})", o.node, T.at(o.invoke), o.answered_by) })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        k => format!("{} and {}", parts[..k - 1].join(", "), parts[k - 1]),
    }
}

/// Acknowledged writes the converged state does not reflect, explained: per
/// key whose nodes all answered and agreed in the last round of reads after
/// healing (see [`divergence`] for the others), an acknowledged write (ok) is
/// lost when the value they hold is not its value and cannot come from an
/// operation that may have taken effect after it: no write can empty a key
/// again, and a value whose every write (or cas) was acknowledged before the
/// lost write began is older than it. An unknown (info) write of the value
/// may have taken effect at any time after it was sent, so it explains any
/// final value.
pub fn lost_writes(r: &Recorded) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, final_reads) in &r.final_reads.keys {
        let fin: Vec<&HistoryOp> = final_reads.iter().map(|&(_, i)| &r.ops[i]).collect();
        let Some(v) = agreed(fin.iter().copied()) else {
            continue;
        };
        let first_final = fin.iter().map(|o| o.invoke).min().unwrap_or(u64::MAX);
        let nodes: Vec<u32> = final_reads.iter().map(|&(n, _)| n).collect();
        let holds = format!("{} {} {} at the end (read from {})", fmt_nodes(&nodes), if nodes.len() == 1 { "holds" } else { "all hold" }, fmt_value(v), fmt_reads(&fin));
        // Writes (and successful or unknown cas) of this key, with the value each leaves.
        let writes: Vec<(&HistoryOp, serde_json::Value)> =
            r.ops.iter().filter(|o| &o.key == key && o.kind != OpType::Fail && o.invoke < first_final).filter_map(|o| written(o).map(|v| (o, v))).collect();
        let acked = writes.iter().filter(|(o, _)| o.kind == OpType::Ok);
        let (lost, why): (Vec<&(&HistoryOp, serde_json::Value)>, String) = if v.is_null() {
            (acked.collect(), "nothing removes a value, so the acknowledged write was lost".into())
        } else {
            let sources: Vec<&HistoryOp> = writes.iter().filter(|(_, val)| val == v).map(|(o, _)| *o).collect();
            if sources.is_empty() {
                problems.push(format!("key {key}: {holds}, a value no write of this run wrote"));
                continue;
            }
            // Every write of v took effect before its acknowledgement; an unknown one at any time.
            let settled = sources.iter().all(|s| s.kind == OpType::Ok);
            let last_source = sources.iter().copied().max_by_key(|s| s.complete).expect("not empty");
            let lost: Vec<_> = acked.filter(|(w, val)| val != v && settled && w.invoke > last_source.complete).collect();
            let src = if sources.len() == 1 {
                format!("{} was acknowledged at {}", writer(r, last_source), T.at(last_source.complete))
            } else {
                format!("all {} writes of {v} were acknowledged by {}", sources.len(), T.at(last_source.complete))
            };
            (lost, format!("{src}, before the lost write was sent, so {v} is the older value: the acknowledged write was lost"))
        };
        let Some((w, val)) = lost.iter().min_by_key(|(o, _)| (o.invoke, o.process)).copied() else {
            continue;
        };
        // Reads that saw the lost value: it had been applied.
        let seen: Vec<&HistoryOp> = r.ops.iter().filter(|o| &o.key == key && o.f == "read" && o.kind == OpType::Ok && &o.output == val).collect();
        let evidence = match seen.first() {
            Some(s) => format!(
                " It had been applied: {} read {val} at {} ({}){}.",
                who(r, s),
                T.at(s.invoke),
                fmt_node(s),
                match seen.len() {
                    1 => String::new(),
                    n => format!(", and {} more read{} returned it", n - 1, if n == 2 { "" } else { "s" }),
                }
            ),
            None => String::new(),
        };
        let more = match lost.len() {
            1 => String::new(),
            n => format!(" {} more acknowledged write{} of {key} {} missing too.", n - 1, if n == 2 { "" } else { "s" }, if n == 2 { "is" } else { "are" }),
        };
        let sent = if w.node == w.answered_by {
            format!("sent at {}, answered by node {}", T.at(w.invoke), w.answered_by)
        } else {
            format!("sent at {} to node {}, answered by node {}", T.at(w.invoke), w.node, w.answered_by)
        };
        problems.push(format!("key {key}: {} was acknowledged at {} ({sent}), yet {holds}; {why}.{evidence}{more}", writer(r, w), T.at(w.complete)));
    }
    problems
}

/// Keys whose nodes did not all answer, or did not agree, in the last round
/// of reads after healing: each names every node and what it holds.
pub fn divergence(r: &Recorded) -> Vec<String> {
    let f = &r.final_reads;
    let mut problems = Vec::new();
    for (key, final_reads) in &f.keys {
        let fin: Vec<&HistoryOp> = final_reads.iter().map(|&(_, i)| &r.ops[i]).collect();
        if agreed(fin.iter().copied()).is_some() {
            continue;
        }
        // Nodes grouped by what they answered, in node order.
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        for (&(node, _), op) in final_reads.iter().zip(&fin) {
            let what = match op.kind {
                OpType::Ok => fmt_value(&op.output),
                _ => format!("no answer ({})", if op.note.is_empty() { "no response" } else { op.note.as_str() }),
            };
            match groups.iter_mut().find(|(w, _)| *w == what) {
                Some((_, nodes)) => nodes.push(node),
                None => groups.push((what, vec![node])),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(what, nodes)| match what.strip_prefix("no answer ") {
                Some(why) => format!("{} did not answer with a value {why}", fmt_nodes(nodes)),
                None => format!("{} {} {what}", fmt_nodes(nodes), if nodes.len() == 1 { "holds" } else { "hold" }),
            })
            .collect();
        let all_answered = fin.iter().all(|o| o.kind == OpType::Ok);
        let when = fin.iter().map(|o| o.invoke).min().map(|t| format!(", the last at {}", T.at(t))).unwrap_or_default();
        problems.push(format!(
            "after {:.1} s of healing ({} round{} of reads of every node{when}; lab waits at most {} s) the nodes still {} on key {key}: {}",
            f.waited.as_secs_f64(),
            f.rounds,
            if f.rounds == 1 { "" } else { "s" },
            CONVERGE_WITHIN.as_secs(),
            if all_answered { "disagree" } else { "do not all answer" },
            parts.join("; ")
        ));
    }
    problems
}

/// What lab.yaml says a read's answer looks like, for a learner.
pub fn describe_value_at(at: Option<&ValueAt>) -> String {
    const RAW: &str = "a store that answers the raw value needs `value: {body: text}`, one that answers it base64-encoded `value: {body: base64}`";
    match at {
        Some(ValueAt::Pointer(p)) => format!("JSON with the value at {p} (workload.ops.read.value: {p}); {RAW}"),
        Some(ValueAt::Body { body: BodyEncoding::Json }) => format!("a JSON document as the whole body, a string holding the value (workload.ops.read.value: {{body: json}}); {RAW}"),
        Some(ValueAt::Body { body: BodyEncoding::Base64 }) => "the value base64-encoded (standard alphabet) as the whole body (workload.ops.read.value: {body: base64}); a store that answers the raw value needs `value: {body: text}`, one that answers JSON `value: /value` (a JSON pointer)".into(),
        Some(ValueAt::Body { body: BodyEncoding::Text }) => "the value as the whole body, UTF-8 text (workload.ops.read.value: {body: text}); a store that answers JSON needs `value: /value` (a JSON pointer), one that answers base64 `value: {body: base64}`".into(),
        None => "the value as the whole body, UTF-8 text (workload.ops.read.value is not set); a store that answers JSON needs `value: /value` (a JSON pointer), one that answers base64 `value: {body: base64}`".into(),
    }
}

/// A failed history check, as the verdict shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub summary: String,
    pub got: String,
    pub expected: String,
    /// Operations (indices into `ops`) to highlight in the report.
    pub witness: Vec<usize>,
}

/// Reads answered with an ok status whose value lab could not read: no
/// history check can be trusted with them (the writes they would have seen
/// are not known to be there), so each fails, saying what lab.yaml expected.
pub fn unreadable_reads(r: &Recorded) -> Option<Problem> {
    let first = r.unreadable.first()?;
    let n = r.unreadable.len();
    let reads = r.ops.iter().filter(|o| o.f == "read").count();
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for u in &r.unreadable {
        let why = u.why.split(" (").next().unwrap_or(&u.why).to_string();
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, c)) => *c += 1,
            None => reasons.push((why, 1)),
        }
    }
    let reasons: Vec<String> = reasons.iter().map(|(w, c)| format!("{c} {w}")).collect();
    let expected = describe_value_at(r.value_at.as_ref());
    let (s, them) = if n == 1 { ("", "it") } else { ("s", "them") };
    Some(Problem {
        summary: format!("{n} read{s} answered with an ok status, but lab could not read a value from {them}"),
        got: format!(
            "{n} of {reads} reads could not be read ({}). For example, node {} answered the read of {} at {} with status {} and the body {:?}: {}.\n\
             lab.yaml expects {expected}.\n\
             Those reads are left out of the history, and lab does not judge a history it could not read: set workload.ops.read.value to what the service answers (or make the service answer that), then verify again.",
            reasons.join(", "),
            first.node,
            first.key,
            T.at(first.at),
            first.status,
            first.body,
            first.why
        ),
        expected,
        witness: vec![],
    })
}

/// The nemesis faults lab could not inject or heal, as lines of a verdict
/// (lab's problem, not the service's: a check still passes with them).
pub fn nemesis_notes(r: &Recorded) -> Vec<String> {
    r.nemesis_errors.iter().map(|e| format!("nemesis: {e} (lab's problem, not your service's: the history was recorded without this fault)")).collect()
}

/// What the workload did, for a check's `sent`.
pub fn describe_run(r: &Recorded) -> String {
    let f = &r.final_reads;
    let nodes = f.keys.values().map(|v| v.len()).max().unwrap_or(0);
    format!(
        "{} operations from {} clients over {} s (seed {}), {}\nthen every key read from all {nodes} nodes until they agreed: {} after {} round{} ({:.2} s; lab waits at most {} s)",
        r.ops.len(),
        r.clients,
        r.duration.as_secs(),
        r.seed,
        match r.nemesis.len() {
            0 => "no faults".to_string(),
            n => format!(
                "{n} fault{}: {}",
                if n == 1 { "" } else { "s" },
                r.nemesis.iter().map(|n| format!("{} {} {}", n.fault, n.targets.join("+"), T.span(n.start, Some(n.end)))).collect::<Vec<_>>().join(", ")
            ),
        },
        if f.converged { "they agreed" } else { "they did not" },
        f.rounds,
        if f.rounds == 1 { "" } else { "s" },
        f.waited.as_secs_f64(),
        CONVERGE_WITHIN.as_secs()
    )
}

/// Judges a recorded history: `Ok(None)` when the check passes,
/// `Ok(Some(problem))` when it fails, `Err` when lab could not decide (or
/// does not know the check).
pub fn judge(kind: &str, r: &Recorded) -> Result<Option<Problem>, String> {
    if !matches!(kind, "no-lost-writes" | "linearizable") {
        return Err(format!("unknown history check `{kind}`; known: linearizable, no-lost-writes"));
    }
    if let Some(p) = unreadable_reads(r) {
        return Ok(Some(p));
    }
    match kind {
        "no-lost-writes" => {
            let diverged = divergence(r);
            let lost = lost_writes(r);
            if diverged.is_empty() && lost.is_empty() {
                return Ok(None);
            }
            let summary = match (diverged.len(), lost.len()) {
                (0, n) => format!("{n} acknowledged write(s) lost"),
                (d, 0) => format!("the nodes did not agree on {d} key(s) within {} s after healing", CONVERGE_WITHIN.as_secs()),
                (d, n) => format!("the nodes did not agree on {d} key(s) within {} s after healing, and {n} acknowledged write(s) were lost", CONVERGE_WITHIN.as_secs()),
            };
            let got = diverged.into_iter().chain(lost).collect::<Vec<_>>().join("\n");
            Ok(Some(Problem {
                summary,
                got,
                expected: format!(
                    "after healing, every node answers every key with the same value within {} s, and every acknowledged write is in that value (or overwritten by a later write)",
                    CONVERGE_WITHIN.as_secs()
                ),
                witness: vec![],
            }))
        }
        _ => match super::linearizability(r) {
            Ok(None) => Ok(None),
            Ok(Some((text, ops))) => Ok(Some(Problem {
                summary: "the history is not linearizable".into(),
                got: text,
                expected: "a history that some order of the operations, each taking effect within its interval, explains".into(),
                witness: ops,
            })),
            Err(unknown) => {
                let ok = r.ops.iter().filter(|o| o.kind == OpType::Ok).count();
                let info = r.ops.iter().filter(|o| o.kind == OpType::Info).count();
                Err(format!("the checker could not decide ({ok} ok, {info} unknown operations): {unknown}"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const S: u64 = 1_000_000_000;

    fn op(p: u32, f: &str, value: Value, output: Value, kind: OpType, invoke: u64, complete: u64) -> HistoryOp {
        HistoryOp { process: p, key: "k0".into(), f: f.into(), value, output, kind, invoke, complete, node: 1, answered_by: 1, note: String::new() }
    }

    /// The final reads of k0 from nodes 1, 2, 3, holding `held` (after the other ops).
    fn finals(held: [Value; 3]) -> Vec<HistoryOp> {
        held.into_iter()
            .enumerate()
            .map(|(n, v)| HistoryOp { node: n as u32 + 1, answered_by: n as u32 + 1, ..op(9, "read", Value::Null, v, OpType::Ok, 100 * S + n as u64, 100 * S + 10 + n as u64) })
            .collect()
    }

    /// A history of two clients; its last three ops are the final reads (one per node, in one round).
    fn rec(mut ops: Vec<HistoryOp>, last: Vec<HistoryOp>) -> Recorded {
        let first = ops.len();
        let nodes: Vec<u32> = last.iter().map(|o| o.node).collect();
        ops.extend(last);
        let reads: Vec<(u32, usize)> = nodes.into_iter().zip(first..).collect();
        let converged = agreed(reads.iter().map(|&(_, i)| &ops[i])).is_some();
        Recorded {
            ops,
            nemesis: vec![],
            seed: 1,
            clients: 2,
            duration: Duration::from_secs(10),
            final_reads: FinalReads { keys: BTreeMap::from([("k0".to_string(), reads)]), converged, rounds: 1, waited: Duration::from_millis(20) },
            nemesis_errors: vec![],
            unreadable: vec![],
            value_at: Some(ValueAt::Pointer("/value".into())),
        }
    }

    fn all(v: &str) -> [Value; 3] {
        [json!(v), json!(v), json!(v)]
    }

    // --- Values as they are on the wire

    fn ptr(p: &str) -> ValueAt {
        ValueAt::Pointer(p.into())
    }
    fn body(b: BodyEncoding) -> ValueAt {
        ValueAt::Body { body: b }
    }

    #[test]
    fn a_json_pointer_reads_the_value_inside_a_json_body() {
        assert_eq!(extract_value(Some(&ptr("/value")), br#"{"value": "c0-3"}"#), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&ptr("/data/0/v")), br#"{"data": [{"v": 7}]}"#), Ok(json!(7)));
        // An explicit null is no value.
        assert_eq!(extract_value(Some(&ptr("/value")), br#"{"value": null}"#), Ok(Value::Null));
    }

    #[test]
    fn a_json_pointer_into_a_body_that_is_not_json_is_unreadable_not_null() {
        assert_eq!(extract_value(Some(&ptr("/value")), b"c0-3\n"), Err(Unreadable::NotJson));
        assert_eq!(extract_value(Some(&ptr("/value")), b""), Err(Unreadable::NotJson));
        assert_eq!(extract_value(Some(&ptr("/value")), b"\xff\xfe"), Err(Unreadable::NotJson));
    }

    #[test]
    fn a_json_pointer_with_nothing_there_is_unreadable_and_says_what_the_json_has() {
        let e = extract_value(Some(&ptr("/value")), br#"{"val": "c0-3", "version": 4}"#).unwrap_err();
        assert_eq!(e, Unreadable::NothingAt { pointer: "/value".into(), found: "the JSON has /val, /version".into() });
        assert_eq!(e.to_string(), "nothing at /value (the JSON has /val, /version)");
        assert_eq!(extract_value(Some(&ptr("/value")), br#""c0-3""#).unwrap_err().to_string(), "nothing at /value (the JSON is a string)");
    }

    #[test]
    fn a_text_body_is_the_value_with_one_trailing_newline_dropped() {
        let text = body(BodyEncoding::Text);
        assert_eq!(extract_value(Some(&text), b"c0-3"), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&text), b"c0-3\n"), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&text), b"c0-3\r\n"), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&text), b"c0-3\n\n"), Ok(json!("c0-3\n")), "only one newline");
        assert_eq!(extract_value(Some(&text), br#"{"value": "x"}"#), Ok(json!(r#"{"value": "x"}"#)), "as it is on the wire");
        assert_eq!(extract_value(Some(&text), b"\xff\xfe"), Err(Unreadable::NotUtf8));
        // No `value` at all reads the body as text.
        assert_eq!(extract_value(None, b"c0-3\n"), Ok(json!("c0-3")));
    }

    #[test]
    fn a_json_body_is_a_document_whose_string_is_the_value() {
        let j = body(BodyEncoding::Json);
        assert_eq!(extract_value(Some(&j), b"\"c0-3\"\n"), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&j), b"5"), Ok(json!("5")));
        assert_eq!(extract_value(Some(&j), br#"{"a": 1}"#), Ok(json!(r#"{"a":1}"#)));
        assert_eq!(extract_value(Some(&j), b"null"), Ok(Value::Null));
        assert_eq!(extract_value(Some(&j), b"c0-3"), Err(Unreadable::NotJson));
    }

    #[test]
    fn a_base64_body_decodes_to_the_value() {
        let b = body(BodyEncoding::Base64);
        assert_eq!(extract_value(Some(&b), b"YzAtMw=="), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&b), b"YzAtMw==\n"), Ok(json!("c0-3")));
        assert_eq!(extract_value(Some(&b), b"YzAtMw"), Ok(json!("c0-3")), "padding is optional");
        assert_eq!(extract_value(Some(&b), b""), Ok(json!("")));
        assert_eq!(extract_value(Some(&b), b"c0-3"), Err(Unreadable::NotBase64));
        assert_eq!(extract_value(Some(&b), b"YzAtMw==\n\n"), Err(Unreadable::NotBase64));
        assert_eq!(extract_value(Some(&b), b"YzAtM==="), Err(Unreadable::NotBase64));
        assert_eq!(extract_value(Some(&b), b"\xff"), Err(Unreadable::NotBase64));
        // 0xff 0xfe is base64 all right, but not text.
        assert_eq!(extract_value(Some(&b), b"//4="), Err(Unreadable::NotUtf8));
        assert_eq!(Unreadable::NotUtf8.to_string(), "not UTF-8");
        assert_eq!(Unreadable::NotBase64.to_string(), "not base64");
        assert_eq!(Unreadable::NotJson.to_string(), "not JSON");
    }

    #[test]
    fn value_base64_is_standard_base64_and_reads_back() {
        for (plain, enc) in [("", ""), ("a", "YQ=="), ("ab", "YWI="), ("abc", "YWJj"), ("c0-3", "YzAtMw=="), ("c12-345", "YzEyLTM0NQ==")] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(extract_value(Some(&body(BodyEncoding::Base64)), enc.as_bytes()), Ok(json!(plain)));
        }
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn an_unreadable_body_is_kept_short() {
        let long = vec![b'x'; 200];
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), BODY_EXCERPT + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"c0-3\n"), "c0-3\n");
    }

    fn unreadable_rec() -> Recorded {
        let mut r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], finals(all("a")));
        r.ops.push(HistoryOp { node: 1, answered_by: 2, note: "200, but lab could not read the value: not JSON".into(), ..op(1, "read", Value::Null, Value::Null, OpType::Fail, 2 * S, 2 * S + 5) });
        r.unreadable = vec![
            UnreadableRead { node: 2, key: "k0".into(), status: 200, body: "c0-3\n".into(), why: "not JSON".into(), at: 2 * S },
            UnreadableRead { node: 3, key: "k0".into(), status: 200, body: "{}".into(), why: "nothing at /value (the JSON is an empty object)".into(), at: 3 * S },
        ];
        r
    }

    #[test]
    fn unreadable_reads_fail_both_history_checks_saying_what_lab_yaml_expected() {
        let r = unreadable_rec();
        for kind in ["no-lost-writes", "linearizable"] {
            let p = judge(kind, &r).unwrap().unwrap_or_else(|| panic!("{kind} passed with unreadable reads"));
            assert_eq!(p.summary, "2 reads answered with an ok status, but lab could not read a value from them", "{kind}");
            assert!(p.got.contains("2 of 4 reads could not be read (1 not JSON, 1 nothing at /value)"), "{}", p.got);
            assert!(p.got.contains("node 2 answered the read of k0 at 2.000 s with status 200 and the body \"c0-3\\n\": not JSON"), "{}", p.got);
            assert!(p.got.contains("lab.yaml expects JSON with the value at /value (workload.ops.read.value: /value)"), "{}", p.got);
            assert!(p.expected.contains("needs `value: {body: text}`"), "{}", p.expected);
        }
        // Nothing unreadable: the same history passes.
        let mut fine = r.clone();
        fine.unreadable.clear();
        assert_eq!(judge("no-lost-writes", &fine), Ok(None));
        assert_eq!(judge("linearizable", &fine), Ok(None));
        assert!(judge("serializable", &fine).unwrap_err().contains("unknown history check"));
    }

    #[test]
    fn what_lab_yaml_expects_names_each_form() {
        assert!(describe_value_at(Some(&body(BodyEncoding::Base64))).starts_with("the value base64-encoded"));
        assert!(describe_value_at(Some(&body(BodyEncoding::Text))).contains("{body: text}"));
        assert!(describe_value_at(Some(&body(BodyEncoding::Json))).contains("{body: json}"));
        assert!(describe_value_at(None).contains("is not set"));
    }

    // --- Lost writes against the converged state

    #[test]
    fn a_final_value_from_the_last_write_is_fine() {
        let r = rec(
            vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30), op(0, "read", Value::Null, json!("b"), OpType::Ok, 40, 50)],
            finals(all("b")),
        );
        assert!(lost_writes(&r).is_empty());
        assert!(divergence(&r).is_empty());
    }

    #[test]
    fn concurrent_writes_may_end_either_way() {
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 30), op(1, "write", json!("b"), Value::Null, OpType::Ok, 10, 20)], finals(all("a")));
        assert!(lost_writes(&r).is_empty());
    }

    #[test]
    fn an_acknowledged_write_after_the_final_value_was_lost_and_every_node_is_named() {
        let r = rec(
            vec![
                op(0, "write", json!("a"), Value::Null, OpType::Ok, 2 * S, 2_900_000_000),
                HistoryOp { node: 3, answered_by: 1, ..op(1, "write", json!("b"), Value::Null, OpType::Ok, 3 * S, 3_200_000_000) },
            ],
            finals(all("a")),
        );
        let p = lost_writes(&r);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("key k0: the write of \"b\" by client 1 was acknowledged at 3.200 s (sent at 3.000 s to node 3, answered by node 1)"), "{p:?}");
        assert!(p[0].contains("nodes 1, 2 and 3 all hold \"a\" at the end (read from node 1 at 100.000 s, node 2 at 100.000 s and node 3 at 100.000 s)"), "{p:?}");
        assert!(p[0].contains("the write of \"a\" by client 0 was acknowledged at 2.900 s, before the lost write was sent"), "{p:?}");
        assert!(!p[0].contains("2900000000"), "one unit: {p:?}");
    }

    #[test]
    fn a_read_that_saw_the_lost_value_is_cited_with_its_node() {
        let r = rec(
            vec![
                op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10),
                op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30),
                HistoryOp { node: 2, answered_by: 2, ..op(0, "read", Value::Null, json!("b"), OpType::Ok, 4 * S, 4 * S + 1) },
                op(1, "read", Value::Null, json!("b"), OpType::Ok, 5 * S, 5 * S + 1),
            ],
            finals(all("a")),
        );
        let p = lost_writes(&r);
        assert!(p[0].contains("It had been applied: client 0 read \"b\" at 4.000 s (answered by node 2), and 1 more read returned it."), "{p:?}");
    }

    #[test]
    fn several_lost_writes_of_a_key_are_counted() {
        let r = rec(
            vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30), op(0, "write", json!("c"), Value::Null, OpType::Ok, 40, 50)],
            finals(all("a")),
        );
        let p = lost_writes(&r);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("write of \"b\"") && p[0].ends_with("1 more acknowledged write of k0 is missing too."), "{p:?}");
    }

    #[test]
    fn an_empty_store_after_acknowledged_writes_lost_them() {
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], finals([Value::Null, Value::Null, Value::Null]));
        let p = lost_writes(&r);
        assert!(p[0].contains("nodes 1, 2 and 3 all hold no value at the end") && p[0].contains("nothing removes a value"), "{p:?}");
    }

    #[test]
    fn an_unknown_write_may_be_the_final_value() {
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Info, 20, 30)], finals(all("b")));
        assert!(lost_writes(&r).is_empty());
    }

    #[test]
    fn an_unknown_write_may_take_effect_after_a_later_acknowledged_one() {
        // c timed out at 15 but may still be applied after b (sent at 20).
        let r = rec(
            vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(0, "write", json!("c"), Value::Null, OpType::Info, 5, 15), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30)],
            finals(all("c")),
        );
        assert!(lost_writes(&r).is_empty(), "{:?}", lost_writes(&r));
    }

    #[test]
    fn an_acknowledged_cas_after_the_final_value_was_lost_but_an_unknown_one_was_not() {
        let ops = |kind| vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "cas", json!(["a", "b"]), Value::Null, kind, 20, 30)];
        let p = lost_writes(&rec(ops(OpType::Ok), finals(all("a"))));
        assert!(p[0].contains("the cas from \"a\" to \"b\" by client 1 was acknowledged"), "{p:?}");
        assert!(lost_writes(&rec(ops(OpType::Info), finals(all("a")))).is_empty());
        // A refused cas did nothing.
        assert!(lost_writes(&rec(ops(OpType::Fail), finals(all("a")))).is_empty());
    }

    #[test]
    fn a_value_no_write_wrote_is_reported() {
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], finals(all("zz")));
        assert!(lost_writes(&r)[0].contains("all hold \"zz\" at the end") && lost_writes(&r)[0].contains("no write of this run wrote"));
    }

    #[test]
    fn a_node_behind_is_not_a_lost_write_but_nodes_that_never_agree_are_named() {
        // Node 1 is behind: it still holds a while nodes 2 and 3 hold b.
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30)], finals([json!("a"), json!("b"), json!("b")]));
        assert!(!r.final_reads.converged);
        assert!(lost_writes(&r).is_empty(), "no loss without a converged state: {:?}", lost_writes(&r));
        let d = divergence(&r);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0],
            "after 0.0 s of healing (1 round of reads of every node, the last at 100.000 s; lab waits at most 15 s) the nodes still disagree on key k0: node 1 holds \"a\"; nodes 2 and 3 hold \"b\""
        );
        let p = judge("no-lost-writes", &r).unwrap().unwrap();
        assert_eq!(p.summary, "the nodes did not agree on 1 key(s) within 15 s after healing");
        // Once node 1 has caught up, nothing is lost.
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30)], finals(all("b")));
        assert_eq!(judge("no-lost-writes", &r), Ok(None));
    }

    #[test]
    fn a_node_that_never_answers_after_healing_is_named() {
        let mut last = finals(all("a"));
        last[2].kind = OpType::Fail;
        last[2].output = Value::Null;
        last[2].note = "connection refused".into();
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], last);
        let d = divergence(&r);
        assert!(d[0].contains("the nodes still do not all answer on key k0: nodes 1 and 2 hold \"a\"; node 3 did not answer with a value (connection refused)"), "{d:?}");
    }

    #[test]
    fn a_final_read_redirected_to_the_leader_names_both_nodes() {
        let mut last = finals(all("a"));
        last[0].answered_by = 3;
        let r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10), op(1, "write", json!("b"), Value::Null, OpType::Ok, 20, 30)], last);
        assert!(lost_writes(&r)[0].contains("read from node 1 at 100.000 s (answered by node 3), node 2"), "{:?}", lost_writes(&r));
    }

    // --- The nemesis

    #[test]
    fn a_nemesis_step_lab_could_not_apply_is_a_note_of_its_own_not_part_of_sent() {
        assert_eq!(not_applied("partition", Duration::from_secs(2), "no such container"), "partition at 2.000 s could not be applied: no such container");
        let i = NemesisInterval { fault: "pause".into(), targets: vec!["app-1".into()], start: 9_500_000_000, end: 11 * S };
        assert_eq!(not_healed(&i, "boom"), "pause of app-1 (from 9.500 s) could not be healed: boom");
        let mut r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], finals(all("a")));
        r.nemesis_errors = vec![not_applied("partition", Duration::from_secs(2), "no such container")];
        let notes = nemesis_notes(&r);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("nemesis: partition at 2.000 s could not be applied: no such container (lab's problem"), "{notes:?}");
        assert!(!describe_run(&r).contains("could not"), "{}", describe_run(&r));
        // The service is not to blame: a fine history still passes.
        assert_eq!(judge("no-lost-writes", &r), Ok(None));
        assert_eq!(judge("linearizable", &r), Ok(None));
    }

    #[test]
    fn the_run_description_names_the_convergence_bound_and_fault_times_in_seconds() {
        let mut r = rec(vec![op(0, "write", json!("a"), Value::Null, OpType::Ok, 0, 10)], finals(all("a")));
        r.nemesis = vec![NemesisInterval { fault: "kill".into(), targets: vec!["app-2".into()], start: 6_500_000_000, end: 8_510_000_000 }];
        let d = describe_run(&r);
        assert!(d.contains("1 fault: kill app-2 [6.500 s, 8.510 s]"), "{d}");
        assert!(d.contains("every key read from all 3 nodes until they agreed: they agreed after 1 round (0.02 s; lab waits at most 15 s)"), "{d}");
    }

    // --- The linearizability witness, in seconds

    #[test]
    fn the_linearizability_witness_reads_in_seconds_only() {
        let r = rec(
            vec![
                op(0, "write", json!("a"), Value::Null, OpType::Ok, 1_000_000_000, 1_010_000_000),
                op(1, "write", json!("b"), Value::Null, OpType::Ok, 2_178_542_567, 2_180_427_855),
                HistoryOp { node: 2, answered_by: 3, ..op(0, "read", Value::Null, json!("a"), OpType::Ok, 3_000_000_000, 3_050_000_000) },
            ],
            finals(all("b")),
        );
        let p = judge("linearizable", &r).unwrap().expect("a stale read");
        assert!(!p.got.contains("2178542567") && !p.got.contains("2180427855"), "{}", p.got);
        assert!(p.got.contains("[3.000 s, 3.050 s]"), "{}", p.got);
        assert!(p.got.contains("[2.179 s, 2.180 s]"), "{}", p.got);
        assert!(p.got.contains("process 0 (client 0): read k0 -> \"a\" [3.000 s, 3.050 s] sent to node 2, answered by node 3"), "{}", p.got);
        assert_eq!(p.witness.len(), 3, "{p:?}");
    }
}
