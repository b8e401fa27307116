//! Simulated histories, for tests and benchmarks.
//!
//! [`simulate`] runs clients against a linearizable store: each operation gets a
//! random interval and takes effect atomically at a random point inside it, so
//! the history is linearizable by construction. [`inject`] then breaks it in a
//! way that is certainly observable (a stale read, a lost write, a duplicated
//! write), so the history is certainly not linearizable.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

use super::history::{Func, History, Op, Status, Value};

/// What the simulated store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimModel {
    /// Registers: read, write, cas.
    Register,
    /// Lists: append, read (returns the whole list).
    ListAppend,
}

/// The simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Concurrent clients (each runs one operation at a time).
    pub clients: usize,
    /// Keys the clients spread their operations over.
    pub keys: usize,
    /// Operations in total.
    pub ops: usize,
    pub model: SimModel,
    pub read_fraction: f64,
    /// Register only: the fraction of compare-and-sets.
    pub cas_fraction: f64,
    /// The fraction of writes, cas and appends whose outcome is unknown (info);
    /// half of those take effect. Reads time out at half this rate.
    pub info_fraction: f64,
    /// `None`: every written value is unique; `Some(n)`: values are drawn from 0..n.
    pub values: Option<u32>,
    /// Operations last 1..=max_latency time units.
    pub max_latency: u64,
    /// Clients wait 1..=max_think units between operations.
    pub max_think: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { seed: 1, clients: 5, keys: 1, ops: 1000, model: SimModel::Register, read_fraction: 0.5, cas_fraction: 0.1, info_fraction: 0.0, values: None, max_latency: 100, max_think: 20 }
    }
}

#[derive(Clone, Debug)]
enum PKind {
    Read,
    Write(Value),
    /// The `from` is chosen when the cas takes effect (the current value half of the time).
    Cas(Option<Value>, Value),
    Append(Value),
}

#[derive(Clone, Debug)]
struct Planned {
    process: u64,
    key: usize,
    kind: PKind,
    call: u64,
    ret: u64,
    lin: u64,
    info: bool,
    /// For info operations: whether it took effect.
    applied: bool,
}

/// A simulated history and how it was made.
#[derive(Clone, Debug)]
pub struct Simulated {
    pub history: History,
    config: SimConfig,
    plan: Vec<Planned>,
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// Generates a linearizable history.
pub fn simulate(cfg: &SimConfig) -> Simulated {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let clients = cfg.clients.max(1);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..clients).map(|c| Reverse((rng.gen_range(0..=cfg.max_think), c))).collect();
    let mut plan = Vec::with_capacity(cfg.ops);
    let mut next_value: i64 = 1;
    let mut fresh = |rng: &mut StdRng| -> Value {
        match cfg.values {
            Some(n) => Value::Int(rng.gen_range(0..n.max(1)) as i64),
            None => {
                let v = next_value;
                next_value += 1;
                Value::Int(v)
            }
        }
    };
    while plan.len() < cfg.ops {
        let Reverse((t, c)) = heap.pop().expect("clients");
        let latency = rng.gen_range(1..=cfg.max_latency.max(1));
        let call = t;
        let ret = call + latency;
        let lin = call + rng.gen_range(0..=latency);
        let key = rng.gen_range(0..cfg.keys.max(1));
        let r: f64 = rng.gen();
        let kind = match cfg.model {
            SimModel::Register if r < cfg.read_fraction => PKind::Read,
            SimModel::Register if r < cfg.read_fraction + cfg.cas_fraction => PKind::Cas(None, fresh(&mut rng)),
            SimModel::Register => PKind::Write(fresh(&mut rng)),
            SimModel::ListAppend if r < cfg.read_fraction => PKind::Read,
            SimModel::ListAppend => PKind::Append(fresh(&mut rng)),
        };
        let info_rate = if matches!(kind, PKind::Read) { cfg.info_fraction / 2.0 } else { cfg.info_fraction };
        let info = rng.gen::<f64>() < info_rate;
        let applied = !info || rng.gen::<bool>();
        plan.push(Planned { process: c as u64, key, kind, call, ret, lin, info, applied });
        heap.push(Reverse((ret + rng.gen_range(1..=cfg.max_think.max(1)), c)));
    }
    let mut rng2 = StdRng::seed_from_u64(cfg.seed ^ 0xC0FFEE);
    let history = run(&mut plan, &[], &mut rng2, true);
    Simulated { history, config: cfg.clone(), plan }
}

/// An extra effect: re-apply the value of plan op `source` just before plan op `before`.
#[derive(Clone, Copy)]
struct Extra {
    source: usize,
    before: usize,
}

/// Applies the plan in linearization order and records the outcomes.
fn run(plan: &mut [Planned], extras: &[Extra], rng: &mut StdRng, decide: bool) -> History {
    // (lin, sub-order, op index, is extra)
    let mut order: Vec<(u64, u8, usize, usize)> = (0..plan.len()).map(|i| (plan[i].lin, 1, i, usize::MAX)).collect();
    for (x, e) in extras.iter().enumerate() {
        order.push((plan[e.before].lin, 0, e.before, x));
    }
    order.sort_unstable();
    let mut state: FxHashMap<usize, Value> = FxHashMap::default();
    let mut outputs: Vec<(Value, Status)> = vec![(Value::Null, Status::Ok); plan.len()];
    for &(_, _, i, x) in &order {
        if x != usize::MAX {
            let src = &plan[extras[x].source];
            let key = plan[i].key;
            let cur = state.entry(key).or_insert(Value::Null);
            match &src.kind {
                PKind::Write(v) | PKind::Cas(_, v) => *cur = v.clone(),
                PKind::Append(v) => {
                    let mut l = match std::mem::take(cur) {
                        Value::List(l) => l,
                        _ => vec![],
                    };
                    l.push(v.clone());
                    *cur = Value::List(l);
                }
                PKind::Read => {}
            }
            continue;
        }
        let p = &mut plan[i];
        let cur = state.entry(p.key).or_insert(Value::Null);
        let status = if p.info { Status::Info } else { Status::Ok };
        match &mut p.kind {
            PKind::Read => outputs[i] = (if p.info { Value::Null } else { cur.clone() }, status),
            PKind::Write(v) => {
                if p.applied {
                    *cur = v.clone();
                }
                outputs[i] = (Value::Null, status);
            }
            PKind::Cas(from, to) => {
                if decide || from.is_none() {
                    *from = Some(if rng.gen::<bool>() { cur.clone() } else { Value::Int(-rng.gen_range(1..=3)) });
                }
                let ok = from.as_ref() == Some(cur);
                if p.applied && ok {
                    *cur = to.clone();
                }
                outputs[i] = (
                    Value::Null,
                    if p.info {
                        Status::Info
                    } else if ok {
                        Status::Ok
                    } else {
                        Status::Fail
                    },
                );
            }
            PKind::Append(v) => {
                if p.applied {
                    let mut l = match std::mem::take(cur) {
                        Value::List(l) => l,
                        _ => vec![],
                    };
                    l.push(v.clone());
                    *cur = Value::List(l);
                }
                outputs[i] = (Value::Null, status);
            }
        }
    }
    let ops = plan
        .iter()
        .zip(outputs)
        .map(|(p, (output, status))| {
            let (f, value) = match &p.kind {
                PKind::Read => (Func::Read, Value::Null),
                PKind::Write(v) => (Func::Write, v.clone()),
                PKind::Cas(from, to) => (Func::Cas, Value::List(vec![from.clone().unwrap_or_default(), to.clone()])),
                PKind::Append(v) => (Func::Append, v.clone()),
            };
            Op { process: p.process, key: key_name(p.key), f, value, output, call: p.call, ret: Some(p.ret), status, line: None }
        })
        .collect();
    History { ops }
}

/// An anomaly to inject into a simulated history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// A read returns a value that had been overwritten before it began
    /// (list: a read misses an element whose append finished before it began).
    StaleRead,
    /// A completed write (append) never takes effect, and a later read shows it.
    LostWrite,
    /// A write (append) takes effect a second time, later, and a read sees it.
    DuplicateWrite,
}

impl Simulated {
    /// The value a plan op wrote, if it definitely took effect (ok write / ok cas / ok append).
    fn ok_written(&self, i: usize) -> Option<&Value> {
        let p = &self.plan[i];
        if p.info || self.history.ops[i].status != Status::Ok {
            return None;
        }
        match &p.kind {
            PKind::Write(v) | PKind::Cas(_, v) | PKind::Append(v) => Some(v),
            PKind::Read => None,
        }
    }

    fn ok_reads(&self) -> Vec<usize> {
        (0..self.plan.len()).filter(|&i| matches!(self.plan[i].kind, PKind::Read) && !self.plan[i].info).collect()
    }
}

/// Injects an anomaly that makes the history certainly not linearizable.
/// Needs unique values (`values: None`); returns None if no spot was found.
pub fn inject(sim: &Simulated, anomaly: Anomaly, seed: u64) -> Option<History> {
    if sim.config.values.is_some() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = &sim.plan;
    let n = plan.len();
    let mut reads = sim.ok_reads();
    // Try candidate reads in random order.
    for i in (1..reads.len()).rev() {
        reads.swap(i, rng.gen_range(0..=i));
    }
    let list = sim.config.model == SimModel::ListAppend;
    match anomaly {
        Anomaly::StaleRead | Anomaly::DuplicateWrite => {
            for &r in &reads {
                let key = plan[r].key;
                let call_r = plan[r].call;
                // w2: an ok write of the key that finished before r began; w1: one that finished before w2 began.
                let w2 = (0..n).filter(|&j| plan[j].key == key && sim.ok_written(j).is_some() && plan[j].ret < call_r).max_by_key(|&j| plan[j].ret);
                let Some(w2) = w2 else { continue };
                let w1 = (0..n).filter(|&j| plan[j].key == key && sim.ok_written(j).is_some() && plan[j].ret < plan[w2].call).max_by_key(|&j| plan[j].ret);
                let Some(w1) = w1 else { continue };
                if anomaly == Anomaly::StaleRead {
                    let mut h = sim.history.clone();
                    if list {
                        // The read misses w2's element (and everything after it).
                        let e = sim.ok_written(w2).unwrap().clone();
                        let Value::List(items) = &h.ops[r].output else {
                            continue;
                        };
                        let Some(pos) = items.iter().position(|x| *x == e) else {
                            continue;
                        };
                        h.ops[r].output = Value::List(items[..pos].to_vec());
                    } else {
                        h.ops[r].output = sim.ok_written(w1).unwrap().clone();
                    }
                    return Some(h);
                } else {
                    // Re-apply w1 (list: w2, appended again) right before r.
                    let mut plan2 = plan.clone();
                    let source = if list { w2 } else { w1 };
                    let mut rng2 = StdRng::seed_from_u64(seed);
                    let h = run(&mut plan2, &[Extra { source, before: r }], &mut rng2, false);
                    let v = sim.ok_written(source).unwrap();
                    // Another effect at the same instant could hide it: make sure r saw it.
                    let seen = match &h.ops[r].output {
                        Value::List(items) if list => items.iter().filter(|x| *x == v).count() == 2,
                        out => !list && out == v,
                    };
                    if seen {
                        return Some(h);
                    }
                }
            }
            None
        }
        Anomaly::LostWrite => {
            let mut writes: Vec<usize> = (0..n).filter(|&j| sim.ok_written(j).is_some() && !matches!(plan[j].kind, PKind::Cas(..))).collect();
            for i in (1..writes.len()).rev() {
                writes.swap(i, rng.gen_range(0..=i));
            }
            for &w in writes.iter().take(200) {
                let mut plan2 = plan.clone();
                plan2[w].applied = false;
                let mut rng2 = StdRng::seed_from_u64(seed);
                let h = run(&mut plan2, &[], &mut rng2, false);
                let key = plan[w].key;
                // Certainly observable: a read that began after w finished and
                // (register) saw a value whose writers all finished before w began,
                // or null; (list) any read after w finished misses the element.
                let observed = (0..n).any(|r| {
                    if plan[r].key != key || !matches!(plan[r].kind, PKind::Read) || plan[r].info || plan[r].call <= plan[w].ret {
                        return false;
                    }
                    if list {
                        return true;
                    }
                    let u = &h.ops[r].output;
                    if u.is_null() {
                        return true;
                    }
                    let writers: Vec<usize> = (0..n).filter(|&j| plan[j].key == key && matches!(&plan[j].kind, PKind::Write(v) | PKind::Cas(_, v) if v == u)).collect();
                    !writers.is_empty() && writers.iter().all(|&j| sim.ok_written(j).is_some() && h.ops[j].status == Status::Ok && plan[j].ret < plan[w].call)
                });
                if observed {
                    return Some(h);
                }
            }
            None
        }
    }
}
