//! The workload: concurrent clients sending reads, writes and compare-and-sets
//! through random nodes while a nemesis injects faults, recording every
//! invocation and completion. Then the faults are healed and every key is read
//! once more. The history feeds the checkers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Target;
use crate::chaos::{resolve, Chaos, Fault};
use crate::event::Event;
use crate::lab::{OpMapping, Workload};
use crate::plan::ContainerSpec;
use crate::probe::http::{self, HttpFailure, HttpRequest};

pub use crate::event::{HistoryOp, NemesisInterval, OpType};

/// Everything a workload run recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub ops: Vec<HistoryOp>,
    pub nemesis: Vec<NemesisInterval>,
    pub seed: u64,
    pub clients: u32,
    pub duration: Duration,
    /// The final read of each key (index into `ops`).
    pub final_reads: BTreeMap<String, usize>,
    /// Faults of the schedule that could not be injected or healed.
    pub nemesis_errors: Vec<String>,
}

fn ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

struct Ctx<'a> {
    t: &'a Target<'a>,
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
    async fn perform(&self, process: u32, f: &str, key: &str, value: serde_json::Value, node: u32) -> HistoryOp {
        let mapping: &OpMapping = match f {
            "read" => &self.w.ops.read,
            "write" => &self.w.ops.write,
            _ => self.w.ops.cas.as_ref().expect("cas chosen only when mapped"),
        };
        let mut ctx = tera::Context::new();
        ctx.insert("key", key);
        match f {
            "write" => ctx.insert("value", &value),
            "cas" => {
                ctx.insert("from", &value[0]);
                ctx.insert("to", &value[1]);
            }
            _ => {}
        }
        let invoke = ns(self.start);
        let deadline = Instant::now() + self.w.timeout;
        let mut at = node;
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
                            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
                            op.output = mapping.value.as_ref().and_then(|p| match p {
                                crate::lab::ValueAt::Pointer(p) => body.pointer(p).cloned(),
                                crate::lab::ValueAt::Body { .. } => None,
                            }).unwrap_or(serde_json::Value::Null);
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
        op
    }
}

/// Run the workload and its nemesis; heal; read every key once more.
pub async fn run(t: &Target<'_>, w: &Workload, run_id: &str, emit: &mut (dyn FnMut(&Event) + Send)) -> Result<Recorded, String> {
    let replicas: Vec<&ContainerSpec> = t.plan.replicas().collect();
    if replicas.is_empty() {
        return Err("the workload needs lab to run the service (--solution), not --target".into());
    }
    let seed = t.seed.or(w.seed).unwrap_or_else(rand::random);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(8).build().map_err(|e| e.to_string())?;
    let ctx = Ctx { t, w, replicas: replicas.clone(), client, start: Instant::now() };
    let ops = Arc::new(Mutex::new(Vec::new()));
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
                let op = ctx.perform(p, f, &key, value, node).await;
                ops.lock().unwrap().push(op);
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
                            errors.push(format!("healing {}: {e}", rec.id));
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
                    errors.push(e.to_string());
                    continue;
                }
            };
            let targets = match resolve(&chaos, s.target.as_deref().unwrap_or("random")).await {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{} at {:?}: {e}", s.fault, s.at));
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
                Err(e) => errors.push(format!("{} at {:?}: {e}", s.fault, s.at)),
            }
        }
        active.sort_by_key(|a| a.1);
        for (rec, end, idx) in active {
            tokio::time::sleep_until(end.min(ctx.start + w.duration).into()).await;
            if let Err(e) = chaos.revert(&rec).await {
                errors.push(format!("healing {}: {e}", rec.id));
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

    // Final reads: each key, retried until some node answers, for up to 20 s.
    let mut ops = Arc::try_unwrap(ops).map_err(|_| "clients still running")?.into_inner().unwrap();
    let mut final_reads = BTreeMap::new();
    let reader = w.clients.max(1);
    let until = Instant::now() + Duration::from_secs(20);
    for key in &keys {
        let mut n = 0usize;
        loop {
            let node = ctx.replicas[n % ctx.replicas.len()].node;
            n += 1;
            let op = ctx.perform(reader, "read", key, serde_json::Value::Null, node).await;
            let ok = op.kind == OpType::Ok;
            ops.push(op);
            if ok {
                final_reads.insert(key.clone(), ops.len() - 1);
                break;
            }
            if Instant::now() > until {
                return Err(format!("no node answered a read of {key} within 20 s after healing"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ops.sort_by_key(|o| (o.invoke, o.process));
    Ok(Recorded { ops, nemesis: intervals, seed, clients: w.clients, duration: w.duration, final_reads, nemesis_errors: errors })
}

/// An acknowledged write the final state does not reflect, explained.
pub fn lost_writes(r: &Recorded) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, &fi) in &r.final_reads {
        let fin = &r.ops[fi];
        let v = &fin.output;
        // Writes (and successful or unknown cas) of this key, with the value each leaves.
        let writes: Vec<(&HistoryOp, serde_json::Value)> = r
            .ops
            .iter()
            .filter(|o| &o.key == key && o.kind != OpType::Fail && o.invoke < fin.invoke)
            .filter_map(|o| match o.f.as_str() {
                "write" => Some((o, o.value.clone())),
                "cas" => Some((o, o.value[1].clone())),
                _ => None,
            })
            .collect();
        let acked: Vec<&(&HistoryOp, serde_json::Value)> = writes.iter().filter(|(o, _)| o.kind == OpType::Ok).collect();
        if v.is_null() {
            if let Some((w, val)) = acked.iter().max_by_key(|(o, _)| o.complete) {
                problems.push(format!("key {key}: the final read ({}) found no value, but {} of {val} was acknowledged at {:.2} s", fmt_node(fin), w.f, w.complete as f64 / 1e9));
            }
            continue;
        }
        let Some((x, _)) = writes.iter().find(|(_, val)| val == v) else {
            problems.push(format!("key {key}: the final read ({}) returned {v}, which no write wrote", fmt_node(fin)));
            continue;
        };
        if let Some((w, val)) = acked.iter().filter(|(o, _)| o.invoke > x.complete).min_by_key(|(o, _)| o.invoke) {
            problems.push(format!(
                "key {key}: {} of {val} was acknowledged (invoked at {:.2} s, after the {} of {v} had finished at {:.2} s), yet the final read returns {v}: the acknowledged write was lost",
                w.f,
                w.invoke as f64 / 1e9,
                x.f,
                x.complete as f64 / 1e9
            ));
        }
    }
    problems
}

fn fmt_node(op: &HistoryOp) -> String {
    format!("answered by node {}", op.answered_by)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(p: u32, f: &str, value: serde_json::Value, output: serde_json::Value, kind: OpType, invoke: u64, complete: u64) -> HistoryOp {
        HistoryOp { process: p, key: "k0".into(), f: f.into(), value, output, kind, invoke, complete, node: 1, answered_by: 1, note: String::new() }
    }

    fn rec(ops: Vec<HistoryOp>) -> Recorded {
        let last = ops.len() - 1;
        Recorded { ops, nemesis: vec![], seed: 1, clients: 2, duration: Duration::from_secs(1), final_reads: BTreeMap::from([("k0".to_string(), last)]), nemesis_errors: vec![] }
    }

    #[test]
    fn a_final_value_from_the_last_write_is_fine() {
        let r = rec(vec![
            op(0, "write", "a".into(), serde_json::Value::Null, OpType::Ok, 0, 10),
            op(1, "write", "b".into(), serde_json::Value::Null, OpType::Ok, 20, 30),
            op(2, "read", serde_json::Value::Null, "b".into(), OpType::Ok, 40, 50),
        ]);
        assert!(lost_writes(&r).is_empty());
    }

    #[test]
    fn concurrent_writes_may_end_either_way() {
        let r = rec(vec![
            op(0, "write", "a".into(), serde_json::Value::Null, OpType::Ok, 0, 30),
            op(1, "write", "b".into(), serde_json::Value::Null, OpType::Ok, 10, 20),
            op(2, "read", serde_json::Value::Null, "a".into(), OpType::Ok, 40, 50),
        ]);
        assert!(lost_writes(&r).is_empty());
    }

    #[test]
    fn an_acknowledged_write_after_the_final_value_was_lost() {
        let r = rec(vec![
            op(0, "write", "a".into(), serde_json::Value::Null, OpType::Ok, 0, 10),
            op(1, "write", "b".into(), serde_json::Value::Null, OpType::Ok, 20, 30),
            op(2, "read", serde_json::Value::Null, "a".into(), OpType::Ok, 40, 50),
        ]);
        let p = lost_writes(&r);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("write of \"b\" was acknowledged"), "{p:?}");
    }

    #[test]
    fn an_empty_store_after_acknowledged_writes_lost_them() {
        let r = rec(vec![op(0, "write", "a".into(), serde_json::Value::Null, OpType::Ok, 0, 10), op(2, "read", serde_json::Value::Null, serde_json::Value::Null, OpType::Ok, 40, 50)]);
        assert!(lost_writes(&r)[0].contains("found no value"));
    }

    #[test]
    fn an_unknown_write_may_be_the_final_value() {
        let r = rec(vec![
            op(0, "write", "a".into(), serde_json::Value::Null, OpType::Ok, 0, 10),
            op(1, "write", "b".into(), serde_json::Value::Null, OpType::Info, 20, 30),
            op(2, "read", serde_json::Value::Null, "b".into(), OpType::Ok, 40, 50),
        ]);
        assert!(lost_writes(&r).is_empty());
    }
}
