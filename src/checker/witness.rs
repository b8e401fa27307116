//! Shrinking a non-linearizable key history to a small witness, and explaining it.
//!
//! 1. The first operation that cannot be placed: the smallest completion time
//!    `t` such that the history *up to t* is not linearizable. The history up to
//!    `t` has the operations invoked by `t`; those still running at `t` count as
//!    `info`, except reads and refused cas, which are left out (what they saw is
//!    not known yet). That prefix only gains constraints as `t` grows, so its
//!    linearizability is monotone. The search reports `t` (the latest return
//!    entry it was ever blocked at, see `search::Stats::blocked`); when it cannot
//!    (a pinned list order), binary search finds it. The operation completing at
//!    `t` is the culprit, and the witness always contains it.
//! 2. A window of the last operations before `t` grows (x4) until it fails;
//!    then delta debugging (Zeller's ddmin) removes operations from it while the
//!    rest stays non-linearizable. Removal is *closed*: an operation that
//!    observed a value keeps every operation that could have written it (called
//!    before it returned), so a witness never fails only because a write was
//!    cut away ("a read of 3 with no write of 3").
//!
//! Both steps run under the same deadline; when it passes, the smallest failing
//! set found so far is reported with `minimal: false`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::history::{key_label, Func, History, Op, Status, TimeUnit, Value};
use super::model::{Compiled, Kind, ModelKind, SOp, NONE};
use super::search::{search, Control, Outcome};

pub(crate) struct Shrunk {
    /// Indices into `Compiled::ops`, sorted by call time.
    pub ops: Vec<u32>,
    /// The ones delta debugging kept; the others are there only because they
    /// could have written a value one of these observed.
    pub core: Vec<u32>,
    /// Index into `Compiled::ops` of the first operation that cannot be placed.
    pub culprit: Option<u32>,
    pub minimal: bool,
    /// How many operations of the key were invoked up to the culprit's completion.
    pub prefix_ops: usize,
}

fn prefix(comp: &Compiled, t: u64) -> Vec<SOp> {
    comp.ops
        .iter()
        .filter_map(|o| {
            if o.call > t {
                None
            } else if o.info || o.ret <= t {
                Some(*o)
            } else {
                match o.cop.kind {
                    // Still running at t: its result is not known yet.
                    Kind::Read | Kind::CasRefused => None,
                    _ => Some(SOp { info: true, ret: u64::MAX, ..*o }),
                }
            }
        })
        .collect()
}

struct Closure<'a> {
    comp: &'a Compiled,
    providers: FxHashMap<u32, Vec<u32>>,
}

impl<'a> Closure<'a> {
    fn new(comp: &'a Compiled) -> Closure<'a> {
        let mut providers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for (i, &g) in comp.gives.iter().enumerate() {
            if g != NONE {
                providers.entry(g).or_default().push(i as u32);
            }
        }
        Closure { comp, providers }
    }

    /// `units` plus every operation that could have written a value they observed.
    fn close(&self, units: &[u32]) -> Vec<u32> {
        let ops = &self.comp.ops;
        let mut in_set = vec![false; ops.len()];
        let mut set: Vec<u32> = Vec::with_capacity(units.len() * 2);
        for &u in units {
            if !in_set[u as usize] {
                in_set[u as usize] = true;
                set.push(u);
            }
        }
        let mut k = 0;
        while k < set.len() {
            let u = set[k] as usize;
            k += 1;
            let needs = &self.comp.needs[u];
            if needs.is_empty() {
                continue;
            }
            let before = ops[u].ret;
            for tok in needs {
                if let Some(ps) = self.providers.get(tok) {
                    for &p in ps {
                        if ops[p as usize].call < before && !in_set[p as usize] {
                            in_set[p as usize] = true;
                            set.push(p);
                        }
                    }
                }
            }
            for &p in &self.comp.list_writes {
                if ops[p as usize].call < before && !in_set[p as usize] {
                    in_set[p as usize] = true;
                    set.push(p);
                }
            }
        }
        set.sort_unstable();
        set
    }

    /// Some(true) if the closure of `units` is not linearizable; None on timeout.
    fn fails(&self, units: &[u32], ctl: &Control) -> Option<bool> {
        let set = self.close(units);
        let ops: Vec<SOp> = set.iter().map(|&i| self.comp.ops[i as usize]).collect();
        match search(&ops, self.comp, ctl) {
            Outcome::NotLinearizable => Some(true),
            Outcome::Linearizable => Some(false),
            Outcome::Timeout | Outcome::Cancelled | Outcome::Paused => None,
        }
    }

    /// Like `fails`, but gives up on one subset after `cap` (counting it as not
    /// failing, and noting that the result may not be minimal); None only when
    /// the overall deadline passed or the check was cancelled.
    fn fails_capped(&self, units: &[u32], ctl: &Control, cap: Duration, capped: &Cell<bool>) -> Option<bool> {
        let deadline = ctl.deadline.min(Instant::now() + cap);
        let sub = Control { deadline, cancel: ctl.cancel, max_steps: ctl.max_steps };
        match self.fails(units, &sub) {
            Some(v) => Some(v),
            None if ctl.interrupted().is_some() => None,
            None => {
                capped.set(true);
                Some(false)
            }
        }
    }
}

/// Zeller's ddmin; returns the reduced set and whether it ran to the end.
fn ddmin(mut s: Vec<u32>, mut fails: impl FnMut(&[u32]) -> Option<bool>) -> (Vec<u32>, bool) {
    let mut n = 2usize;
    while s.len() >= 2 {
        let len = s.len();
        let chunk_bounds: Vec<(usize, usize)> = (0..n).map(|i| (i * len / n, (i + 1) * len / n)).filter(|(a, b)| a < b).collect();
        let mut reduced = false;
        if n > 2 {
            for &(a, b) in &chunk_bounds {
                match fails(&s[a..b]) {
                    None => return (s, false),
                    Some(true) => {
                        s = s[a..b].to_vec();
                        n = 2;
                        reduced = true;
                        break;
                    }
                    Some(false) => {}
                }
            }
        }
        if !reduced {
            for &(a, b) in &chunk_bounds {
                let complement: Vec<u32> = s[..a].iter().chain(&s[b..]).copied().collect();
                match fails(&complement) {
                    None => return (s, false),
                    Some(true) => {
                        s = complement;
                        n = (n - 1).max(2);
                        reduced = true;
                        break;
                    }
                    Some(false) => {}
                }
            }
        }
        if !reduced {
            if n >= s.len() {
                break;
            }
            n = (n * 2).min(s.len());
        }
    }
    (s, true)
}

/// Shrinks a key whose search returned NotLinearizable. `blocked` is the
/// completion time of the first operation that cannot be placed, when the
/// search found it (see `search::Stats::blocked`); otherwise it is found by
/// binary search over prefixes.
pub(crate) fn shrink(comp: &Compiled, ctl: &Control, blocked: Option<u64>) -> Shrunk {
    let closure = Closure::new(comp);
    let all: Vec<u32> = (0..comp.ops.len() as u32).collect();
    let by_call = |mut v: Vec<u32>| {
        v.sort_by_key(|&i| (comp.ops[i as usize].call, i));
        v
    };
    let give_up = |ops: Vec<u32>, culprit: Option<u32>| Shrunk { prefix_ops: ops.len(), core: ops.clone(), ops: by_call(ops), culprit, minimal: false };

    // 1. The first operation that cannot be placed: it completes at `t`.
    let t = match blocked {
        Some(t) => t,
        None => {
            let mut rets: Vec<u64> = comp.ops.iter().filter(|o| !o.info).map(|o| o.ret).collect();
            rets.sort_unstable();
            rets.dedup();
            if rets.is_empty() {
                return give_up(all, None);
            }
            let (mut lo, mut hi) = (0usize, rets.len() - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match search(&prefix(comp, rets[mid]), comp, ctl) {
                    Outcome::NotLinearizable => hi = mid,
                    Outcome::Linearizable => lo = mid + 1,
                    _ => return give_up(all, None),
                }
            }
            rets[hi]
        }
    };
    // Everything invoked up to t, by call time.
    let s: Vec<u32> = by_call(all.iter().copied().filter(|&i| comp.ops[i as usize].call <= t).collect());
    let culprit = {
        let candidates: Vec<u32> = s.iter().copied().filter(|&i| !comp.ops[i as usize].info && comp.ops[i as usize].ret == t).collect();
        candidates.iter().copied().find(|&i| matches!(comp.ops[i as usize].cop.kind, Kind::Read | Kind::Cas)).or_else(|| candidates.first().copied())
    };
    let prefix_ops = s.len();

    // Subsets can be much harder than the whole (fewer reads pin fewer orders):
    // give each one a bounded share of the time.
    let t0 = Instant::now();
    let cap = Duration::from_millis(100);
    let capped = Cell::new(false);
    let partial = |ops: Vec<u32>| Shrunk { prefix_ops, core: ops.clone(), ops: by_call(ops), culprit, minimal: false };

    // A quick try: the culprit and what it observed, alone.
    if let Some(c) = culprit {
        match closure.fails_capped(&[c], ctl, cap, &capped) {
            Some(true) => return Shrunk { prefix_ops, core: vec![c], ops: by_call(closure.close(&[c])), culprit, minimal: true },
            None => return partial(s),
            Some(false) => {}
        }
    }

    // 2. A window of the last operations before the culprit's completion (and
    // what they observed), growing until it fails; the whole prefix at worst.
    let mut k = 16usize;
    let start = loop {
        let take = k.min(s.len());
        let mut window: Vec<u32> = s[s.len() - take..].to_vec();
        if let Some(c) = culprit {
            if !window.contains(&c) {
                window.push(c);
            }
        }
        let cap_now = if take == s.len() { (t0.elapsed() * 20).max(Duration::from_secs(1)) } else { cap };
        match closure.fails_capped(&window, ctl, cap_now, &capped) {
            Some(true) => break window,
            None => return partial(s),
            Some(false) if take == s.len() => return partial(s),
            Some(false) => k *= 4,
        }
    };

    // 3. Delta debugging, always keeping the culprit.
    let with_culprit = |units: &[u32]| -> Vec<u32> { units.iter().copied().chain(culprit).collect() };
    let start: Vec<u32> = start.into_iter().filter(|&i| Some(i) != culprit).collect();
    let (reduced, complete) = ddmin(start, |units| closure.fails_capped(&with_culprit(units), ctl, cap, &capped));
    let reduced = with_culprit(&reduced);
    Shrunk { prefix_ops, ops: by_call(closure.close(&reduced)), core: reduced, culprit, minimal: complete && !capped.get() }
}

// ---------------------------------------------------------------------------
// Explanations

/// An operation's interval in `u`: `[2.178 s, 2.180 s]`, or `[2.178 s, ...) (its outcome is unknown)`.
fn interval(op: &Op, u: TimeUnit) -> String {
    match (op.status, op.ret) {
        (Status::Info, _) | (_, None) => format!("{} (its outcome is unknown)", u.span(op.call, None)),
        (_, Some(r)) => u.span(op.call, Some(r)),
    }
}

fn who(op: &Op) -> String {
    format!("process {}", op.process)
}

/// "the write of 1 by process 0", "the cas from 1 to 2 by process 3", "the append of 5 by process 1".
fn writer_phrase(op: &Op) -> String {
    match op.f {
        Func::Cas => match op.cas_pair() {
            Some((a, b)) => format!("the cas from {a} to {b} by {}", who(op)),
            None => format!("the cas by {}", who(op)),
        },
        f => format!("the {f} of {} by {}", op.value, who(op)),
    }
}

fn join_values(values: &[&Value]) -> String {
    let mut vs: Vec<String> = Vec::new();
    for v in values {
        let s = v.to_string();
        if !vs.contains(&s) {
            vs.push(s);
        }
    }
    match vs.len() {
        0 => String::new(),
        1 => vs[0].clone(),
        n => format!("{} and {}", vs[..n - 1].join(", "), vs[n - 1]),
    }
}

/// A value for a sentence: long lists are cut in the middle.
fn brief(v: &Value) -> String {
    match v {
        Value::List(items) if items.len() > 8 => {
            let head: Vec<String> = items[..3].iter().map(|x| x.to_string()).collect();
            let tail: Vec<String> = items[items.len() - 3..].iter().map(|x| x.to_string()).collect();
            format!("[{}, ..., {}] ({} elements)", head.join(", "), tail.join(", "), items.len())
        }
        other => other.to_string(),
    }
}

fn finished_before(a: &Op, b_start: u64) -> bool {
    a.status == Status::Ok && a.ret.is_some_and(|r| r < b_start)
}

/// The value an ok register op wrote, if it wrote one.
fn written(op: &Op) -> Option<&Value> {
    match op.f {
        Func::Write | Func::Put => Some(&op.value),
        Func::Cas if op.output != Value::Bool(false) => op.cas_pair().map(|(_, to)| to),
        _ => None,
    }
}

/// What an ok op observed: (its description, the value observed).
fn observed(op: &Op, key: &str, u: TimeUnit) -> Option<(String, Value)> {
    if op.status != Status::Ok {
        return None;
    }
    match op.f {
        Func::Read | Func::Get => Some((format!("{} of {key} by {} returned {} at {}", op.f, who(op), op.output, interval(op, u)), op.output.clone())),
        Func::Cas if op.output != Value::Bool(false) => {
            let (from, to) = op.cas_pair()?;
            Some((format!("cas of {key} from {from} to {to} by {} succeeded at {}, so {key} held {from}", who(op), interval(op, u)), from.clone()))
        }
        _ => None,
    }
}

/// A sentence a learner can act on: why the witness cannot be linearized.
/// Every time in it is in `u` (seconds from the start of the run for lab's
/// own histories).
pub(crate) fn explain(history: &History, model: ModelKind, key: &str, witness: &[usize], culprit: Option<usize>, key_ops: &[usize], u: TimeUnit) -> String {
    let label = key_label(key);
    let w: Vec<&Op> = witness.iter().map(|&i| &history.ops[i]).collect();
    let all: Vec<&Op> = key_ops.iter().map(|&i| &history.ops[i]).filter(|op| op.status != Status::Fail).collect();
    let focal = culprit
        .map(|c| &history.ops[c])
        .filter(|c| w.iter().any(|o| std::ptr::eq(*o, *c)) && observed(c, &label, u).is_some())
        .or_else(|| w.iter().copied().filter(|o| observed(o, &label, u).is_some()).max_by_key(|o| o.ret));
    let specific = match (model, focal) {
        (ModelKind::Register, Some(c)) => explain_register(&label, c, &w, &all, u),
        (ModelKind::ListAppend, Some(c)) => explain_list(&label, c, &w, &all, u),
        _ => None,
    };
    specific.unwrap_or_else(|| {
        let n = w.len();
        let what = match model {
            ModelKind::Register => "a single register",
            ModelKind::ListAppend => "a single list",
            ModelKind::StringAppend => "a single string",
        };
        let first = culprit.map(|c| format!(" The first operation that cannot be placed is {}.", history.ops[c].text(u))).unwrap_or_default();
        format!(
            "No order of these {n} operations on {label} is consistent with {what} and with real time (an operation that \
             finished before another began must come first); without any one of them the rest would be fine.{first}"
        )
    })
}

fn explain_register(key: &str, c: &Op, w: &[&Op], all: &[&Op], u: TimeUnit) -> Option<String> {
    let (subject, v) = observed(c, key, u)?;
    let c_ret = c.ret.unwrap_or(u64::MAX);
    // Every op that could have written v before c finished.
    let sources: Vec<&Op> = all.iter().copied().filter(|o| !std::ptr::eq(*o, c) && written(o) == Some(&v) && o.call < c_ret).collect();
    let overwrites = |o: &&Op| o.status == Status::Ok && written(o).is_some_and(|x| *x != v);

    if sources.is_empty() {
        if v.is_null() {
            // Lost write: a write finished before c began, yet c saw the initial value.
            if let Some(wr) = w.iter().copied().filter(overwrites).filter(|o| finished_before(o, c.call)).min_by_key(|o| o.ret) {
                return Some(format!(
                    "{subject}, but {} had already finished at {}, before it began: after a completed write, {key} cannot be null (empty) again, so the write was lost or the read was stale.",
                    writer_phrase(wr),
                    u.at(wr.ret.unwrap_or(0))
                ));
            }
            return None;
        }
        let later: Vec<&Op> = all.iter().copied().filter(|o| written(o) == Some(&v) && o.call >= c_ret).collect();
        let because = match later.first() {
            Some(l) => format!("the only write of {v} ({}) began at {}, after it finished", writer_phrase(l).trim_start_matches("the "), u.at(l.call)),
            None => format!("nothing ever wrote {v} to {key}"),
        };
        // The latest few writes that could come before it.
        let mut preceding: Vec<&Op> = all.iter().copied().filter(|o| !std::ptr::eq(*o, c) && o.call < c_ret && written(o).is_some()).collect();
        preceding.sort_by_key(|o| std::cmp::Reverse(o.ret.unwrap_or(u64::MAX)));
        let mut values: Vec<&Value> = Vec::new();
        for o in &preceding {
            let v = written(o).expect("filtered");
            if !values.contains(&v) {
                values.push(v);
            }
        }
        let more = values.len().saturating_sub(5);
        values.truncate(5);
        values.reverse();
        let tail = match (values.is_empty(), more) {
            (true, _) => String::new(),
            (false, 0) => format!(" The writes that could precede it wrote {}.", join_values(&values)),
            (false, more) => format!(" The latest writes that could precede it wrote {} ({more} earlier values not shown).", join_values(&values)),
        };
        return Some(format!("{subject}, but no write of {v} could have come before it: {because}.{tail}"));
    }

    // Stale: an overwrite that began after every write of v finished, and finished before c began.
    if sources.iter().all(|s| s.status == Status::Ok && s.ret.is_some()) {
        let last_source_ret = sources.iter().filter_map(|s| s.ret).max().unwrap_or(0);
        let fits = |o: &&Op| overwrites(o) && o.call > last_source_ret && finished_before(o, c.call);
        // Prefer an overwrite in the witness; any of the key's will do.
        let overwrite = w.iter().copied().filter(fits).min_by_key(|o| o.ret).or_else(|| all.iter().copied().filter(fits).min_by_key(|o| o.ret));
        if let Some(o) = overwrite {
            let src = if sources.len() == 1 {
                format!("{} finished at {}", writer_phrase(sources[0]), u.at(last_source_ret))
            } else {
                format!("all {} writes of {v} had finished (the last at {})", sources.len(), u.at(last_source_ret))
            };
            return Some(format!("{subject}, but {v} had already been overwritten before it began: {} ran during {}, after {src}.", writer_phrase(o), interval(o, u)));
        }
        // Stale after a read: a read that finished before c began saw another value,
        // and every write of v had finished before that read began.
        let first_source_free = sources.iter().filter_map(|s| s.ret).max().unwrap_or(0);
        let earlier_read = w
            .iter()
            .copied()
            .filter(|r| !std::ptr::eq(*r, c) && r.status == Status::Ok && r.f.is_read() && r.output != v)
            .filter(|r| finished_before(r, c.call) && r.call > first_source_free)
            .max_by_key(|r| r.ret);
        if let Some(r) = earlier_read {
            let src = if sources.len() == 1 {
                format!("{} finished at {}", writer_phrase(sources[0]), u.at(first_source_free))
            } else {
                format!("every write of {v} had finished by {}", u.at(first_source_free))
            };
            return Some(format!(
                "{subject}, but the {} by {} that finished at {}, before it began, had already returned {}, and {src}, before that read began: once {key} held another value, {v} could only come back through a new write.",
                r.f,
                who(r),
                u.at(r.ret.unwrap_or(0)),
                r.output
            ));
        }
    }
    None
}

fn explain_list(key: &str, c: &Op, w: &[&Op], all: &[&Op], u: TimeUnit) -> Option<String> {
    if !c.f.is_read() || c.status != Status::Ok {
        return None;
    }
    let list: Vec<Value> = match &c.output {
        Value::List(items) => items.clone(),
        Value::Null => vec![],
        _ => return None,
    };
    let subject = format!("{} of {key} by {} returned {} at {}", c.f, who(c), brief(&Value::List(list.clone())), interval(c, u));
    let c_ret = c.ret.unwrap_or(u64::MAX);
    let appends = |e: &Value| -> Vec<&Op> { all.iter().copied().filter(|o| o.f == Func::Append && o.value == *e).collect() };
    // Duplicates.
    for (i, e) in list.iter().enumerate() {
        if list[..i].contains(e) {
            let n = appends(e).len();
            return Some(format!("{subject}, but {e} appears more than once while it was appended {}: an append was applied twice.", if n == 1 { "once".to_string() } else { format!("{n} times") }));
        }
    }
    // Elements nobody could have appended yet.
    for e in &list {
        if !appends(e).iter().any(|a| a.call < c_ret) {
            return Some(format!("{subject}, but no append of {e} to {key} could have come before it finished."));
        }
    }
    // Lost appends: finished before c began, missing from the list.
    let lost = |a: &&Op| a.f == Func::Append && finished_before(a, c.call) && !list.contains(&a.value);
    if let Some(a) = w.iter().copied().filter(lost).min_by_key(|a| a.ret).or_else(|| all.iter().copied().filter(lost).min_by_key(|a| a.ret)) {
        return Some(format!(
            "{subject}, but {} had finished at {}, before it began, and {} is missing: the append was lost, or the read was stale.",
            writer_phrase(a),
            u.at(a.ret.unwrap_or(0)),
            a.value
        ));
    }
    // Order: e1 before e2 in the list although e2's append finished before e1's began.
    for (i, e1) in list.iter().enumerate() {
        for e2 in &list[i + 1..] {
            let (a1, a2) = (appends(e1), appends(e2));
            if let (Some(first1), Some(last2)) = (a1.iter().map(|a| a.call).min(), a2.iter().filter_map(|a| a.ret).max()) {
                if a2.iter().all(|a| a.status == Status::Ok) && last2 < first1 {
                    return Some(format!("{subject}, but it has {e1} before {e2}, while the append of {e2} finished at {}, before the append of {e1} began at {}.", u.at(last2), u.at(first1)));
                }
            }
        }
    }
    // Reads that disagree.
    for r in w.iter().copied().filter(|r| !std::ptr::eq(*r, c) && r.status == Status::Ok && r.f.is_read()) {
        let other: Vec<Value> = match &r.output {
            Value::List(items) => items.clone(),
            Value::Null => vec![],
            _ => continue,
        };
        let is_prefix = |a: &[Value], b: &[Value]| a.len() <= b.len() && b[..a.len()] == *a;
        if !is_prefix(&other, &list) && !is_prefix(&list, &other) {
            return Some(format!(
                "{subject}, but the {} by {} at {} returned {}: neither list is a prefix of the other, so they cannot both be states of one list.",
                r.f,
                who(r),
                interval(r, u),
                brief(&Value::List(other))
            ));
        }
        if finished_before(r, c.call) && other.len() > list.len() {
            return Some(format!(
                "{subject}, but the {} by {} that finished at {}, before it began, had already returned {}: the list went back in time.",
                r.f,
                who(r),
                u.at(r.ret.unwrap_or(0)),
                brief(&Value::List(other))
            ));
        }
    }
    None
}
