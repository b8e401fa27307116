//! The linearizability checker: [`check`].
//!
//! A history is linearizable when every operation that happened (`ok`) can be
//! given a point in time within its interval, and some of the `info` ones too,
//! such that running them one at a time in that order, on a single copy of the
//! data, returns what the clients saw.
//!
//! Keys are independent (P-compositionality: a history is linearizable iff each
//! key's sub-history is), so each key is checked on its own, largest first, on
//! all cores. A key's check is the Wing & Gong search with Lowe's just-in-time
//! linearization and memoization (see `search`). The check stops when the time
//! budget runs out (the verdict is then `Unknown`), and by default stops the
//! other keys as soon as one key is found not linearizable. A failing key is
//! shrunk to a small witness with a sentence that explains it (see `witness`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

use super::history::{key_label, History, Op, TimeUnit};
use super::model::{compile, Compiled, ModelKind};
use super::search::{search_stats, Control, Outcome};
use super::witness;

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The time budget of the whole check, witness included (the witness search
    /// may run up to a tenth of the budget past it when the violation was found
    /// late). When it runs out the verdict is `Unknown`.
    pub budget: Duration,
    /// Shrink a failing key to a minimal witness.
    pub witness: bool,
    /// At most this long for the witnesses (within the budget, or a tenth of it
    /// past the budget when the violation was found late). When it runs out
    /// the smallest failing set found so far is reported (`minimal: false`).
    pub witness_budget: Duration,
    /// At most this many failing keys get a witness.
    pub max_witnesses: usize,
    /// Stop checking the other keys as soon as one key is not linearizable
    /// (they are then reported `Unknown`).
    pub stop_on_violation: bool,
    /// Worker threads; 0 uses rayon's global pool (all cores).
    pub threads: usize,
    /// Raised by the caller to abandon the check (e.g. on Ctrl-C): the verdict
    /// is then `Unknown` unless a violation was already found.
    pub cancel: Option<Arc<AtomicBool>>,
    /// How the witnesses' explanations and operations show times: as they are
    /// (the default, for histories in any unit), or nanoseconds from the
    /// start of the run shown in seconds (`[2.178 s, 2.180 s]`), as lab's
    /// workload records them.
    pub time_unit: TimeUnit,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            budget: Duration::from_secs(10),
            witness: true,
            witness_budget: Duration::from_secs(2),
            max_witnesses: 3,
            stop_on_violation: true,
            threads: 0,
            cancel: None,
            time_unit: TimeUnit::Raw,
        }
    }
}

impl CheckOptions {
    /// The defaults with another budget.
    pub fn with_budget(budget: Duration) -> CheckOptions {
        CheckOptions { budget, ..CheckOptions::default() }
    }
}

/// The verdict of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The budget ran out, the check was cancelled, or the history could not be
    /// checked (see `reason`).
    Unknown,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// One operation of a witness.
#[derive(Clone, Debug, Serialize)]
pub struct WitnessOp {
    /// Index of the operation in `History::ops`.
    pub index: usize,
    /// `process 2: read x => 3 [40, 50]` (`[2.178 s, 2.180 s]` with
    /// [`TimeUnit::Nanos`], see [`CheckOptions::time_unit`]).
    pub text: String,
    /// True when the operation is in the witness only because it could have
    /// written a value that another operation of the witness observed (it is
    /// context, not the contradiction itself).
    pub context: bool,
    #[serde(flatten)]
    pub op: Op,
}

/// A small set of operations of one key that cannot be linearized.
#[derive(Clone, Debug, Serialize)]
pub struct Witness {
    pub key: String,
    /// What is wrong, in a sentence a learner can read.
    pub explanation: String,
    /// The operations, by call time.
    pub ops: Vec<WitnessOp>,
    /// Index into `ops` of the first operation of the key's history that cannot
    /// be placed (the one whose completion makes the history so far non-linearizable).
    pub culprit: Option<usize>,
    /// True when no single operation can be removed and the rest still fail
    /// (delta debugging ran to the end within the budget).
    pub minimal: bool,
    /// How many operations of the key were invoked up to the culprit's completion
    /// (everything before them is a linearizable prefix).
    pub prefix_ops: usize,
}

/// The result of one key.
#[derive(Clone, Debug, Serialize)]
pub struct KeyResult {
    pub key: String,
    pub model: ModelKind,
    /// Operations of the key (all of them, `fail` ones included).
    pub ops: usize,
    pub verdict: Verdict,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Why the verdict is `Unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Search states memoized (a measure of the work done).
    pub states: u64,
    /// Search steps taken.
    pub steps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
}

/// The result of [`check`].
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub verdict: Verdict,
    /// Operations in the history.
    pub ops: usize,
    pub keys: usize,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Why the verdict is `Unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The witness of the first failing key (in key order), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
    /// One result per key, in order of first appearance.
    pub per_key: Vec<KeyResult>,
}

impl CheckResult {
    /// The keys that are not linearizable.
    pub fn failures(&self) -> impl Iterator<Item = &KeyResult> {
        self.per_key.iter().filter(|k| k.verdict == Verdict::NotLinearizable)
    }

    /// One line: the verdict and why.
    pub fn summary(&self) -> String {
        let ms = self.elapsed.as_secs_f64() * 1e3;
        match self.verdict {
            Verdict::Linearizable => format!("linearizable: {} operations on {} key{}, checked in {ms:.1} ms", self.ops, self.keys, if self.keys == 1 { "" } else { "s" }),
            Verdict::NotLinearizable => {
                let failing: Vec<String> = self.failures().map(|k| key_label(&k.key)).collect();
                match &self.witness {
                    Some(w) => format!("not linearizable ({}): {}", failing.join(", "), w.explanation),
                    None => format!("not linearizable: {}", failing.join(", ")),
                }
            }
            Verdict::Unknown => format!("unknown: {}", self.reason.as_deref().unwrap_or("the check did not finish")),
        }
    }
}

/// Checks a history for linearizability, key by key in parallel, within
/// `opts.budget`. CPU-bound: from async code call it in `spawn_blocking`.
pub fn check(history: &History, opts: &CheckOptions) -> CheckResult {
    if opts.threads > 0 {
        if let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(opts.threads).build() {
            return pool.install(|| check_inner(history, opts));
        }
    }
    check_inner(history, opts)
}

struct KeyWork {
    key: String,
    indices: Vec<u32>,
}

/// A key being checked: its result so far, and its compiled ops while it is
/// unfinished (and, for a failing key, for the witness).
struct KeyState {
    group: usize,
    result: KeyResult,
    compiled: Option<Compiled>,
    /// Completion time of the first operation that cannot be placed (failing keys).
    blocked: Option<u64>,
    done: bool,
}

/// Histories up to this many operations are checked on the calling thread
/// (starting worker threads costs more than the check).
const SEQUENTIAL_OPS: usize = 1024;
/// Steps of the first slice each key gets when there are more keys than
/// threads; each further round gives the unfinished keys 4 times more.
const FIRST_SLICE: u64 = 1 << 12;

fn for_each_mut<T: Send>(parallel: bool, items: &mut [T], f: impl Fn(&mut T) + Sync + Send) {
    if parallel && items.len() > 1 {
        items.par_iter_mut().for_each(f);
    } else {
        items.iter_mut().for_each(f);
    }
}

fn check_inner(history: &History, opts: &CheckOptions) -> CheckResult {
    let start = Instant::now();
    let deadline = start.checked_add(opts.budget).unwrap_or_else(|| start + Duration::from_secs(86_400 * 365));

    // Group by key, in order of first appearance.
    let mut groups: Vec<KeyWork> = Vec::new();
    {
        let mut index: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, op) in history.ops.iter().enumerate() {
            let g = *index.entry(op.key.as_str()).or_insert_with(|| {
                groups.push(KeyWork { key: op.key.clone(), indices: Vec::new() });
                groups.len() - 1
            });
            groups[g].indices.push(i as u32);
        }
    }
    let parallel = groups.len() > 1 && history.ops.len() > SEQUENTIAL_OPS;
    let threads = if parallel { rayon::current_num_threads().max(1) } else { 1 };

    let violation = AtomicBool::new(false);
    let external = opts.cancel.clone();
    let mut flags: Vec<&AtomicBool> = Vec::new();
    if opts.stop_on_violation {
        flags.push(&violation);
    }
    if let Some(c) = external.as_deref() {
        flags.push(c);
    }

    // Largest first, so the long poles start early.
    let mut states: Vec<KeyState> = (0..groups.len())
        .map(|g| KeyState {
            group: g,
            result: KeyResult {
                key: groups[g].key.clone(),
                model: ModelKind::Register,
                ops: groups[g].indices.len(),
                verdict: Verdict::Unknown,
                elapsed: Duration::ZERO,
                reason: None,
                states: 0,
                steps: 0,
                witness: None,
            },
            compiled: None,
            blocked: None,
            done: false,
        })
        .collect();
    states.sort_by_key(|k| std::cmp::Reverse(k.result.ops));

    for_each_mut(parallel, &mut states, |k| {
        let t0 = Instant::now();
        match compile(history, &groups[k.group].indices) {
            Ok(c) => {
                k.result.model = c.model.kind;
                k.compiled = Some(c);
            }
            Err(e) => {
                k.result.reason = Some(format!("cannot check {}: {e}", key_label(&groups[k.group].key)));
                k.done = true;
            }
        }
        k.result.elapsed += t0.elapsed();
    });

    // Rounds: while there are more unfinished keys than threads, each key gets a
    // slice of steps (4 times more each round) and starts over if it needs
    // more, so a hard key cannot keep the others waiting (and a key that fails
    // fast stops the check early). At most a third of the work is repeated.
    let mut slice = FIRST_SLICE;
    loop {
        let pending = states.iter().filter(|k| !k.done).count();
        if pending == 0 {
            break;
        }
        let ctl0 = Control { deadline, cancel: &flags, max_steps: u64::MAX };
        if let Some(o) = ctl0.interrupted() {
            for k in states.iter_mut().filter(|k| !k.done) {
                k.result.reason = Some(interrupted_reason(o, &k.result.key, k.result.ops, opts.budget));
                k.compiled = None;
                k.done = true;
            }
            break;
        }
        let max_steps = if pending > threads { slice } else { u64::MAX };
        slice = slice.saturating_mul(4);
        let ctl = Control { max_steps, ..ctl0 };
        let mut todo: Vec<&mut KeyState> = states.iter_mut().filter(|k| !k.done).collect();
        for_each_mut(parallel, &mut todo, |k| {
            let t0 = Instant::now();
            let compiled = k.compiled.as_ref().expect("unfinished keys are compiled");
            let (outcome, stats) = search_stats(&compiled.ops, compiled, &ctl);
            k.result.states = stats.states;
            k.result.steps += stats.steps;
            k.result.elapsed += t0.elapsed();
            match outcome {
                Outcome::Paused => return,
                Outcome::Linearizable => {
                    k.result.verdict = Verdict::Linearizable;
                    k.compiled = None;
                }
                Outcome::NotLinearizable => {
                    violation.store(true, std::sync::atomic::Ordering::Relaxed);
                    k.result.verdict = Verdict::NotLinearizable;
                    k.blocked = stats.blocked.map(|(t, _)| t);
                }
                o => {
                    k.result.reason = Some(interrupted_reason(o, &k.result.key, k.result.ops, opts.budget));
                    k.compiled = None;
                }
            }
            k.done = true;
        });
    }
    states.sort_by_key(|k| k.group);

    // Witnesses for the first failing keys, within the witness budget.
    if opts.witness {
        let now = Instant::now();
        let grace = deadline.max(now + opts.budget / 10).min(now + opts.witness_budget);
        let ext: Vec<&AtomicBool> = external.as_deref().into_iter().collect();
        let ctl = Control { deadline: grace, cancel: &ext, max_steps: u64::MAX };
        let mut failing: Vec<&mut KeyState> = states.iter_mut().filter(|k| k.result.verdict == Verdict::NotLinearizable && k.compiled.is_some()).take(opts.max_witnesses).collect();
        for_each_mut(parallel, &mut failing, |k| {
            let compiled = k.compiled.as_ref().expect("failing keys keep their compiled ops");
            k.result.witness = Some(make_witness(history, &groups[k.group], compiled, k.blocked, &ctl, opts.time_unit));
        });
    }

    let per_key: Vec<KeyResult> = states.into_iter().map(|k| k.result).collect();
    let verdict = if per_key.iter().any(|k| k.verdict == Verdict::NotLinearizable) {
        Verdict::NotLinearizable
    } else if per_key.iter().any(|k| k.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    let reason = match verdict {
        Verdict::Unknown => {
            let unknown: Vec<&KeyResult> = per_key.iter().filter(|k| k.verdict == Verdict::Unknown).collect();
            let first = unknown.iter().find_map(|k| k.reason.clone()).unwrap_or_default();
            Some(if unknown.len() > 1 { format!("{first} ({} keys unfinished)", unknown.len()) } else { first })
        }
        _ => None,
    };
    let witness = per_key.iter().find_map(|k| k.witness.clone());
    CheckResult { verdict, ops: history.ops.len(), keys: per_key.len(), elapsed: start.elapsed(), reason, witness, per_key }
}

fn interrupted_reason(o: Outcome, key: &str, ops: usize, budget: Duration) -> String {
    match o {
        Outcome::Timeout => format!("the time budget of {} ran out while checking {} ({ops} operations)", humantime::format_duration(Duration::from_millis(budget.as_millis() as u64)), key_label(key)),
        _ => format!("the check of {} was stopped (cancelled, or another key was found not linearizable)", key_label(key)),
    }
}

/// The largest witness reported in full when it could not be minimized.
const MAX_UNREDUCED: usize = 200;

fn make_witness(history: &History, work: &KeyWork, compiled: &Compiled, blocked: Option<u64>, ctl: &Control, unit: TimeUnit) -> Witness {
    let shrunk = witness::shrink(compiled, ctl, blocked);
    let orig = |i: u32| compiled.ops[i as usize].orig as usize;
    let culprit_orig = shrunk.culprit.map(orig);
    let mut indices: Vec<usize> = shrunk.ops.iter().map(|&i| orig(i)).collect();
    let mut note = String::new();
    if !shrunk.minimal && indices.len() > MAX_UNREDUCED {
        note = format!(" (The budget ran out before the {} operations up to it could be reduced; shown is the operation that cannot be placed.)", indices.len());
        indices = culprit_orig.into_iter().collect();
    }
    let key_ops: Vec<usize> = work.indices.iter().map(|&i| i as usize).collect();
    let mut explanation = witness::explain(history, compiled.model.kind, &work.key, &indices, culprit_orig, &key_ops, unit);
    explanation.push_str(&note);
    let core: rustc_hash::FxHashSet<usize> = shrunk.core.iter().map(|&i| orig(i)).collect();
    let ops: Vec<WitnessOp> = indices.iter().map(|&i| WitnessOp { index: i, text: history.ops[i].text(unit), context: !core.contains(&i), op: history.ops[i].clone() }).collect();
    let culprit = culprit_orig.and_then(|c| indices.iter().position(|&i| i == c));
    Witness { key: work.key.clone(), explanation, ops, culprit, minimal: shrunk.minimal, prefix_ops: shrunk.prefix_ops }
}
