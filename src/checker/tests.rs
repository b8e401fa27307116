//! Tests of the checker: classic histories with known verdicts, a brute-force
//! oracle on random small histories, simulated histories with and without
//! injected anomalies, the parsers, and the time budget.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::formats::{self, Format};
use super::history::{Func, History, Op, Status, TimeUnit, Value};
use super::linearizability::{check, CheckOptions, CheckResult, Verdict};
use super::sim::{inject, simulate, Anomaly, SimConfig, SimModel};

fn opts() -> CheckOptions {
    CheckOptions::with_budget(Duration::from_secs(20))
}

fn run(ops: Vec<Op>) -> CheckResult {
    check(&History::new(ops), &opts())
}

fn verdict(ops: Vec<Op>) -> Verdict {
    run(ops).verdict
}

fn w(p: u64, v: i64, call: u64, ret: u64) -> Op {
    Op::ok(p, "x", Func::Write, v, Value::Null, call, ret)
}
fn r(p: u64, v: impl Into<Value>, call: u64, ret: u64) -> Op {
    Op::ok(p, "x", Func::Read, Value::Null, v, call, ret)
}
fn cas(p: u64, from: i64, to: i64, call: u64, ret: u64) -> Op {
    Op::ok(p, "x", Func::Cas, vec![from, to], Value::Null, call, ret)
}
fn app(p: u64, v: i64, call: u64, ret: u64) -> Op {
    Op::ok(p, "x", Func::Append, v, Value::Null, call, ret)
}
fn rl(p: u64, l: Vec<i64>, call: u64, ret: u64) -> Op {
    Op::ok(p, "x", Func::Read, Value::Null, l, call, ret)
}
fn none() -> Value {
    Value::Null
}

// ---------------------------------------------------------------------------
// Classic histories

#[test]
fn empty_and_trivial_histories_are_linearizable() {
    assert_eq!(verdict(vec![]), Verdict::Linearizable);
    assert_eq!(verdict(vec![r(0, none(), 0, 1)]), Verdict::Linearizable);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), r(1, 1, 20, 30)]), Verdict::Linearizable);
}

#[test]
fn stale_read_is_caught_with_a_three_op_witness() {
    let res = run(vec![w(0, 1, 0, 10), w(1, 2, 20, 30), r(2, 1, 40, 50)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    let wit = res.witness.expect("witness");
    assert_eq!(wit.ops.len(), 3, "{wit:#?}");
    assert!(wit.minimal);
    assert!(wit.explanation.contains("overwritten"), "{}", wit.explanation);
    assert!(wit.explanation.contains("returned 1 at [40, 50]"), "{}", wit.explanation);
    assert_eq!(wit.culprit.map(|c| wit.ops[c].op.f), Some(Func::Read));
}

#[test]
fn lost_write_is_caught() {
    let res = run(vec![w(0, 1, 0, 10), r(1, none(), 20, 30)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    let wit = res.witness.unwrap();
    assert_eq!(wit.ops.len(), 2);
    assert!(wit.explanation.contains("lost"), "{}", wit.explanation);
}

#[test]
fn read_of_a_value_never_written() {
    let res = run(vec![w(0, 1, 0, 10), w(0, 2, 20, 30), r(1, 3, 40, 50)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    let wit = res.witness.unwrap();
    assert_eq!(wit.ops.len(), 1, "{wit:#?}");
    assert!(wit.explanation.contains("nothing ever wrote 3"), "{}", wit.explanation);
    // A write of 3 that began after the read ended does not help.
    let res = run(vec![w(0, 1, 0, 10), r(1, 3, 40, 50), w(0, 3, 60, 70)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert!(res.witness.unwrap().explanation.contains("began at 60, after it finished"));
}

// ---------------------------------------------------------------------------
// Times in explanations: one unit

/// Nanosecond times shown in seconds (lab's workload records nanoseconds from its start).
fn secs() -> CheckOptions {
    CheckOptions { time_unit: TimeUnit::Nanos, ..opts() }
}

const MS: u64 = 1_000_000;

/// True when `text` has a run of at least 7 digits: a raw nanosecond time.
fn has_raw_nanos(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= 7)
}

#[test]
fn time_units_format_points_and_intervals() {
    assert_eq!(TimeUnit::Raw.at(40), "40");
    assert_eq!(TimeUnit::Raw.span(40, Some(50)), "[40, 50]");
    assert_eq!(TimeUnit::Raw.span(40, None), "[40, ...)");
    assert_eq!(TimeUnit::Nanos.at(2_178_542_567), "2.179 s");
    assert_eq!(TimeUnit::Nanos.span(2_178_542_567, Some(2_180_427_855)), "[2.179 s, 2.180 s]");
    assert_eq!(TimeUnit::Nanos.span(12_000_000_000, None), "[12.000 s, ...)");
    let op = r(2, 1, 2_178_542_567, 2_180_427_855);
    assert_eq!(op.text(TimeUnit::Nanos), "process 2: read x => 1 [2.179 s, 2.180 s]");
    assert_eq!(op.to_string(), "process 2: read x => 1 [2178542567, 2180427855]", "Display keeps the times as they are");
    let info = Op::info(1, "x", Func::Write, 3, 5 * MS, Some(9 * MS));
    assert_eq!(info.text(TimeUnit::Nanos), "process 1: write x 3 => unknown (timed out) [0.005 s, ...)");
}

#[test]
fn a_stale_read_witness_reads_in_seconds_everywhere() {
    let h = History::new(vec![w(0, 1, 1000 * MS, 1010 * MS), w(1, 2, 2_178_542_567, 2_180_427_855), r(2, 1, 3000 * MS, 3050 * MS)]);
    let res = check(&h, &secs());
    let wit = res.witness.expect("witness");
    assert!(wit.explanation.contains("returned 1 at [3.000 s, 3.050 s]"), "{}", wit.explanation);
    assert!(wit.explanation.contains("ran during [2.179 s, 2.180 s], after the write of 1 by process 0 finished at 1.010 s"), "{}", wit.explanation);
    assert!(!has_raw_nanos(&wit.explanation), "{}", wit.explanation);
    for op in &wit.ops {
        assert!(op.text.ends_with(" s]") && !has_raw_nanos(&op.text), "{}", op.text);
    }
}

#[test]
fn every_register_explanation_reads_in_seconds() {
    let cases: Vec<Vec<Op>> = vec![
        // A lost write.
        vec![w(0, 1, 0, 10 * MS), r(1, none(), 20 * MS, 30 * MS)],
        // A value written only after the read.
        vec![w(0, 1, 0, 10 * MS), r(1, 3, 40 * MS, 50 * MS), w(0, 3, 60 * MS, 70 * MS)],
        // Stale after a read.
        vec![w(0, 1, 0, 10 * MS), w(1, 2, 5 * MS, 30 * MS), r(2, 2, 40 * MS, 50 * MS), r(3, 1, 60 * MS, 70 * MS)],
        // An unknown write among them.
        vec![w(0, 1, 0, 10 * MS), Op::info(1, "x", Func::Write, 2, 12 * MS, None), w(0, 3, 20 * MS, 30 * MS), r(2, 4, 40 * MS, 50 * MS)],
    ];
    for ops in cases {
        let res = check(&History::new(ops.clone()), &secs());
        let wit = res.witness.unwrap_or_else(|| panic!("not linearizable: {ops:?}"));
        assert!(!has_raw_nanos(&wit.explanation), "{}", wit.explanation);
        assert!(wit.explanation.contains(" s"), "{}", wit.explanation);
        assert!(wit.ops.iter().all(|o| !has_raw_nanos(&o.text)), "{:?}", wit.ops);
    }
    let res = check(&History::new(vec![w(0, 1, 0, 10 * MS), r(1, 3, 40 * MS, 50 * MS), w(0, 3, 60 * MS, 70 * MS)]), &secs());
    assert!(res.witness.unwrap().explanation.contains("began at 0.060 s, after it finished"));
}

#[test]
fn list_explanations_read_in_seconds() {
    let cases: Vec<Vec<Op>> = vec![
        // A lost append.
        vec![app(0, 1, 0, 10 * MS), app(1, 2, 20 * MS, 30 * MS), rl(2, vec![1], 40 * MS, 50 * MS)],
        // Out of order.
        vec![app(0, 1, 0, 10 * MS), app(1, 2, 20 * MS, 30 * MS), rl(2, vec![2, 1], 40 * MS, 50 * MS)],
        // The list went back in time.
        vec![app(0, 1, 0, 10 * MS), app(1, 2, 0, 30 * MS), rl(2, vec![1, 2], 40 * MS, 50 * MS), rl(3, vec![1], 60 * MS, 70 * MS)],
    ];
    for ops in cases {
        let res = check(&History::new(ops.clone()), &secs());
        let wit = res.witness.unwrap_or_else(|| panic!("not linearizable: {ops:?}"));
        assert!(!has_raw_nanos(&wit.explanation) && wit.explanation.contains(" s"), "{}", wit.explanation);
    }
}

#[test]
fn cas_that_should_have_failed() {
    // x is 1; a cas from 2 to 3 cannot succeed.
    let res = run(vec![w(0, 1, 0, 10), cas(1, 2, 3, 20, 30)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    // From 1 it can, and a later read sees 3.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), cas(1, 1, 3, 20, 30), r(2, 3, 40, 50)]), Verdict::Linearizable);
    // A cas the service refused (ok false) while x held its `from`.
    let refused = Op::ok(1, "x", Func::Cas, vec![1, 3], false, 20, 30);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), refused.clone()]), Verdict::NotLinearizable);
    let refused2 = Op::ok(1, "x", Func::Cas, vec![2, 3], false, 20, 30);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), refused2, r(2, 1, 40, 50)]), Verdict::Linearizable);
    // A failed cas (fail) is dropped.
    let failed = Op::fail(1, "x", Func::Cas, vec![1, 3], 20, 30);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), failed, r(2, 1, 40, 50)]), Verdict::Linearizable);
}

#[test]
fn concurrent_writes_are_fine_in_either_order() {
    let base = || vec![w(0, 1, 0, 100), w(1, 2, 10, 90)];
    let mut a = base();
    a.push(r(2, 1, 110, 120));
    assert_eq!(verdict(a), Verdict::Linearizable);
    let mut b = base();
    b.push(r(2, 2, 110, 120));
    assert_eq!(verdict(b), Verdict::Linearizable);
    let mut c = base();
    c.push(r(2, 3, 110, 120));
    assert_eq!(verdict(c), Verdict::NotLinearizable);
    // Reads during the writes may see the old value, either new one, in a consistent order.
    let d = vec![w(0, 1, 0, 100), w(1, 2, 10, 90), r(2, none(), 5, 15), r(3, 2, 20, 30), r(4, 1, 40, 50), r(5, 1, 110, 120)];
    assert_eq!(verdict(d), Verdict::Linearizable);
    // ...but 2 cannot come back after 1 replaced it if both writes are done.
    let e = vec![w(0, 1, 0, 100), w(1, 2, 10, 90), r(3, 1, 95, 98), r(4, 2, 110, 120)];
    assert_eq!(verdict(e), Verdict::NotLinearizable);
}

#[test]
fn an_info_write_may_or_may_not_have_happened() {
    let info = || Op::info(1, "x", Func::Write, 2, 20, Some(25));
    // It happened.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), info(), r(2, 2, 30, 40)]), Verdict::Linearizable);
    // It did not happen.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), info(), r(2, 1, 30, 40)]), Verdict::Linearizable);
    // It may take effect long after its time-out.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), info(), r(2, 1, 30, 40), r(2, 2, 1000, 1001)]), Verdict::Linearizable);
    // But not before it was invoked.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), r(2, 2, 12, 18), info()]), Verdict::NotLinearizable);
    // And once it was seen, its value cannot be replaced by the older one.
    assert_eq!(verdict(vec![w(0, 1, 0, 10), info(), r(2, 2, 30, 40), r(2, 1, 50, 60)]), Verdict::NotLinearizable);
    // An info cas happens only if it could succeed.
    let icas = Op::info(1, "x", Func::Cas, vec![5, 6], 20, None);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), icas.clone(), r(2, 6, 30, 40)]), Verdict::NotLinearizable);
    let icas = Op::info(1, "x", Func::Cas, vec![1, 6], 20, None);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), icas, r(2, 6, 30, 40)]), Verdict::Linearizable);
}

#[test]
fn fail_and_info_reads_are_ignored() {
    let failed_write = Op::fail(0, "x", Func::Write, 5, 0, 10);
    assert_eq!(verdict(vec![failed_write.clone(), r(1, 5, 20, 30)]), Verdict::NotLinearizable);
    assert_eq!(verdict(vec![failed_write, r(1, none(), 20, 30)]), Verdict::Linearizable);
    let info_read = Op::info(1, "x", Func::Read, Value::Null, 20, None);
    assert_eq!(verdict(vec![w(0, 1, 0, 10), info_read]), Verdict::Linearizable);
}

#[test]
fn get_and_put_are_read_and_write_and_missing_keys_read_null() {
    let ops = vec![
        Op::ok(0, "a", Func::Get, Value::Null, Value::Null, 0, 5),
        Op::ok(0, "a", Func::Put, "v1", Value::Null, 10, 20),
        Op::ok(1, "a", Func::Get, Value::Null, "v1", 30, 40),
        Op::ok(1, "b", Func::Get, Value::Null, Value::Null, 30, 40),
    ];
    assert_eq!(verdict(ops), Verdict::Linearizable);
}

#[test]
fn list_append_histories() {
    assert_eq!(verdict(vec![app(0, 1, 0, 10), app(0, 2, 20, 30), rl(1, vec![1, 2], 40, 50)]), Verdict::Linearizable);
    let res = run(vec![app(0, 1, 0, 10), app(0, 2, 20, 30), rl(1, vec![2, 1], 40, 50)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert!(res.witness.unwrap().explanation.contains("before"));
    // Concurrent appends: either order.
    assert_eq!(verdict(vec![app(0, 1, 0, 30), app(1, 2, 0, 30), rl(2, vec![2, 1], 40, 50)]), Verdict::Linearizable);
    // A read of a missing list is null (or empty).
    assert_eq!(verdict(vec![Op::ok(0, "x", Func::Get, Value::Null, Value::Null, 0, 1), app(0, 1, 2, 3), rl(1, vec![1], 4, 5)]), Verdict::Linearizable);
    // Lost append.
    let res = run(vec![app(0, 1, 0, 10), app(0, 2, 20, 30), rl(1, vec![1], 40, 50)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert!(res.witness.unwrap().explanation.contains("missing"));
    // Duplicate.
    let res = run(vec![app(0, 1, 0, 10), rl(1, vec![1, 1], 40, 50)]);
    assert!(res.witness.unwrap().explanation.contains("more than once"));
    // Reads that disagree.
    let res = run(vec![app(0, 1, 0, 100), app(1, 2, 0, 100), rl(2, vec![1], 10, 20), rl(3, vec![2], 30, 40)]);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert!(res.witness.unwrap().explanation.contains("prefix"));
    // An info append, both ways.
    let ia = || Op::info(1, "x", Func::Append, 2, 5, None);
    assert_eq!(verdict(vec![app(0, 1, 0, 10), ia(), rl(2, vec![1, 2], 40, 50)]), Verdict::Linearizable);
    assert_eq!(verdict(vec![app(0, 1, 0, 10), ia(), rl(2, vec![1], 40, 50)]), Verdict::Linearizable);
    assert_eq!(verdict(vec![app(0, 1, 0, 10), ia(), rl(2, vec![1, 2], 40, 50), rl(2, vec![1], 60, 70)]), Verdict::NotLinearizable);
}

#[test]
fn keys_are_checked_independently() {
    let mut ops = vec![w(0, 1, 0, 10), r(1, 1, 20, 30)];
    ops.push(Op::ok(2, "y", Func::Write, 1, Value::Null, 0, 10));
    ops.push(Op::ok(2, "y", Func::Read, Value::Null, 2, 20, 30));
    let opts = CheckOptions { stop_on_violation: false, ..opts() };
    let res = check(&History::new(ops), &opts);
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert_eq!(res.keys, 2);
    assert_eq!(res.per_key[0].key, "x");
    assert_eq!(res.per_key[0].verdict, Verdict::Linearizable);
    assert_eq!(res.per_key[1].verdict, Verdict::NotLinearizable);
    assert_eq!(res.witness.as_ref().unwrap().key, "y");
    // The JSON report.
    let json = serde_json::to_value(&res).unwrap();
    assert_eq!(json["verdict"], "not_linearizable");
    assert_eq!(json["witness"]["ops"][0]["process"], 2);
    assert!(json["witness"]["explanation"].as_str().unwrap().contains("y"));
    assert!(res.summary().starts_with("not linearizable (y)"), "{}", res.summary());
}

#[test]
fn malformed_operations_give_unknown_with_a_reason() {
    let bad = Op::ok(0, "x", Func::Cas, 5, Value::Null, 0, 1);
    let res = run(vec![bad]);
    assert_eq!(res.verdict, Verdict::Unknown);
    assert!(res.reason.unwrap().contains("[from, to]"));
}

// ---------------------------------------------------------------------------
// A brute-force oracle on random small histories

fn apply(state: &Value, op: &Op, list: bool) -> Option<Value> {
    let ok = op.status == Status::Ok;
    match op.f {
        Func::Read | Func::Get => {
            let out = if list && op.output.is_null() { Value::List(vec![]) } else { op.output.clone() };
            let st = if list && state.is_null() { Value::List(vec![]) } else { state.clone() };
            (out == st).then(|| state.clone())
        }
        Func::Write | Func::Put => Some(op.value.clone()),
        Func::Cas => {
            let (from, to) = op.cas_pair().unwrap();
            if ok && op.output == Value::Bool(false) {
                (state != from).then(|| state.clone())
            } else {
                (state == from).then(|| to.clone())
            }
        }
        Func::Append => {
            let mut l = match state {
                Value::List(l) => l.clone(),
                _ => vec![],
            };
            l.push(op.value.clone());
            Some(Value::List(l))
        }
    }
}

fn brute_force(ops: &[Op]) -> bool {
    let list = ops.iter().any(|o| o.f == Func::Append || (o.status == Status::Ok && matches!(o.output, Value::List(_))));
    let ops: Vec<&Op> = ops.iter().filter(|o| o.status != Status::Fail && !(o.status == Status::Info && o.f.is_read())).collect();
    let ret = |o: &Op| {
        if o.status == Status::Info {
            u64::MAX
        } else {
            o.ret.unwrap()
        }
    };
    fn rec(ops: &[&Op], done: &mut Vec<bool>, state: &Value, list: bool, ret: &dyn Fn(&Op) -> u64) -> bool {
        if (0..ops.len()).all(|i| done[i] || ops[i].status == Status::Info) {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            let blocked = (0..ops.len()).any(|j| j != i && !done[j] && ops[j].status == Status::Ok && ret(ops[j]) < ops[i].call);
            if blocked {
                continue;
            }
            if let Some(ns) = apply(state, ops[i], list) {
                done[i] = true;
                if rec(ops, done, &ns, list, ret) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    let mut done = vec![false; ops.len()];
    rec(&ops, &mut done, &Value::Null, list, &ret)
}

fn random_small_history(rng: &mut StdRng, list: bool) -> Vec<Op> {
    let n = rng.gen_range(1..=7);
    // Small domains make values ambiguous; larger ones make single writers
    // (which the info-operation reduction uses) common.
    let domain = if rng.gen_bool(0.7) { 3 } else { 6 };
    let val = |rng: &mut StdRng| rng.gen_range(0..domain as i64);
    (0..n)
        .map(|p| {
            let call = rng.gen_range(0..20u64);
            let ret = call + rng.gen_range(0..12u64);
            let status = match rng.gen_range(0..10) {
                0 => Status::Fail,
                1 | 2 => Status::Info,
                _ => Status::Ok,
            };
            let (f, value, output) = if list {
                if rng.gen_bool(0.5) {
                    (Func::Append, Value::Int(val(rng)), Value::Null)
                } else {
                    let len = rng.gen_range(0..=3);
                    let l: Vec<i64> = (0..len).map(|_| val(rng)).collect();
                    (Func::Read, Value::Null, if len == 0 && rng.gen_bool(0.5) { Value::Null } else { l.into() })
                }
            } else {
                match rng.gen_range(0..4) {
                    0 | 1 => (Func::Read, Value::Null, if rng.gen_bool(0.2) { Value::Null } else { Value::Int(val(rng)) }),
                    2 => (Func::Write, Value::Int(val(rng)), Value::Null),
                    _ => (Func::Cas, vec![val(rng), val(rng)].into(), if rng.gen_bool(0.2) { Value::Bool(false) } else { Value::Null }),
                }
            };
            Op { process: p, key: "x".into(), f, value, output, call, ret: Some(ret), status, line: None }
        })
        .collect()
}

/// The history up to time t: operations invoked by t; those still running count
/// as info, except reads and refused cas, which are left out.
fn prefix_at(ops: &[Op], t: u64) -> Vec<Op> {
    ops.iter()
        .filter(|o| o.call <= t)
        .filter(|o| !(o.status == Status::Ok && o.ret.unwrap() > t && (o.f.is_read() || o.output == Value::Bool(false))))
        .map(|o| {
            let mut o = o.clone();
            if o.status == Status::Ok && o.ret.unwrap() > t {
                o.status = Status::Info;
                o.output = Value::Null;
            }
            o
        })
        .collect()
}

#[test]
fn agrees_with_a_brute_force_oracle_on_random_small_histories() {
    oracle(42, 20_000);
}

/// `cargo test --release --lib checker::tests::oracle_long -- --ignored`
#[test]
#[ignore = "a million histories take minutes; run by hand with --release"]
fn oracle_long() {
    for seed in 1..=10 {
        oracle(seed, 100_000);
    }
}

fn oracle(seed: u64, n: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = [0usize; 2];
    for i in 0..n {
        let list = i % 3 == 0;
        let ops = random_small_history(&mut rng, list);
        let expected = brute_force(&ops);
        let res = check(&History::new(ops.clone()), &CheckOptions { witness: true, ..opts() });
        let got = res.verdict == Verdict::Linearizable;
        assert_eq!(got, expected, "history #{i}: {:#?}\nresult: {res:#?}", ops);
        counts[got as usize] += 1;
        if let Some(wit) = &res.witness {
            // The witness itself is not linearizable.
            let sub: Vec<Op> = wit.ops.iter().map(|o| o.op.clone()).collect();
            assert!(!brute_force(&sub), "witness of #{i} is linearizable: {wit:#?}\nhistory: {ops:#?}");
            // The culprit is the first operation that cannot be placed: the
            // history up to its completion fails, up to just before it passes.
            let c = &wit.ops[wit.culprit.expect("culprit")].op;
            let t = c.ret.unwrap();
            assert!(!brute_force(&prefix_at(&ops, t)), "#{i}: the history up to {t} is linearizable");
            let earlier = ops.iter().filter(|o| o.status == Status::Ok && o.ret.unwrap() < t).map(|o| o.ret.unwrap()).max();
            if let Some(e) = earlier {
                assert!(brute_force(&prefix_at(&ops, e)), "#{i}: the history up to {e} (before the culprit at {t}) is not linearizable");
            }
        }
    }
    // Both verdicts are well represented.
    assert!(counts[0] > n / 5 && counts[1] > n / 5, "{counts:?}");
}

// ---------------------------------------------------------------------------
// Simulated histories

fn sim_config(seed: u64, model: SimModel) -> SimConfig {
    SimConfig {
        seed,
        clients: 2 + (seed as usize % 6),
        keys: 1 + (seed as usize % 3),
        ops: 300 + (seed as usize % 5) * 100,
        model,
        read_fraction: 0.45,
        cas_fraction: 0.15,
        info_fraction: if seed.is_multiple_of(2) { 0.05 } else { 0.0 },
        values: if seed % 4 == 1 { Some(4) } else { None },
        max_latency: 100,
        max_think: 30,
    }
}

#[test]
fn simulated_linearizable_registers_pass() {
    for seed in 0..40 {
        let sim = simulate(&sim_config(seed, SimModel::Register));
        let res = check(&sim.history, &opts());
        assert_eq!(res.verdict, Verdict::Linearizable, "seed {seed}: {}", res.summary());
    }
}

#[test]
fn simulated_linearizable_lists_pass() {
    for seed in 0..30 {
        let mut cfg = sim_config(seed, SimModel::ListAppend);
        cfg.ops = 200;
        let sim = simulate(&cfg);
        let res = check(&sim.history, &opts());
        assert_eq!(res.verdict, Verdict::Linearizable, "seed {seed}: {}", res.summary());
    }
}

/// The witness ops, checked on their own, are not linearizable; and small.
fn assert_good_witness(res: &CheckResult, what: &str, list: bool) {
    assert_eq!(res.verdict, Verdict::NotLinearizable, "{what}: {}", res.summary());
    let wit = res.witness.as_ref().unwrap_or_else(|| panic!("{what}: no witness"));
    let core = wit.ops.iter().filter(|o| !o.context).count();
    assert!((1..=10).contains(&core), "{what}: witness core of {core} ops: {wit:#?}");
    if !list {
        assert!(wit.ops.len() <= 10, "{what}: witness of {} ops: {wit:#?}", wit.ops.len());
    }
    assert!(wit.minimal, "{what}: not minimal");
    let sub = History::new(wit.ops.iter().map(|o| o.op.clone()).collect());
    let again = check(&sub, &CheckOptions { witness: false, ..opts() });
    assert_eq!(again.verdict, Verdict::NotLinearizable, "{what}: the witness is linearizable: {wit:#?}");
    if sub.ops.len() <= 8 {
        assert!(!brute_force(&sub.ops), "{what}: the brute force oracle linearizes the witness");
    }
    assert!(!wit.explanation.is_empty());
}

#[test]
fn injected_register_anomalies_are_caught_with_small_witnesses() {
    let mut caught = 0;
    for seed in 0..30 {
        let mut cfg = sim_config(seed, SimModel::Register);
        cfg.values = None;
        let sim = simulate(&cfg);
        for anomaly in [Anomaly::StaleRead, Anomaly::LostWrite, Anomaly::DuplicateWrite] {
            let Some(bad) = inject(&sim, anomaly, seed * 7 + 1) else {
                continue;
            };
            let res = check(&bad, &opts());
            assert_good_witness(&res, &format!("seed {seed} {anomaly:?}"), false);
            caught += 1;
        }
    }
    assert!(caught >= 80, "only {caught} injections");
}

#[test]
fn injected_list_anomalies_are_caught_with_small_witnesses() {
    let mut caught = 0;
    for seed in 0..20 {
        let mut cfg = sim_config(seed, SimModel::ListAppend);
        cfg.values = None;
        cfg.ops = 200;
        let sim = simulate(&cfg);
        for anomaly in [Anomaly::StaleRead, Anomaly::LostWrite, Anomaly::DuplicateWrite] {
            let Some(bad) = inject(&sim, anomaly, seed * 7 + 1) else {
                continue;
            };
            let res = check(&bad, &opts());
            assert_good_witness(&res, &format!("seed {seed} {anomaly:?}"), true);
            caught += 1;
        }
    }
    assert!(caught >= 50, "only {caught} injections");
}

#[test]
fn explanations_read_well() {
    // A stale read in a larger simulated history names the overwrite.
    let sim = simulate(&SimConfig { seed: 3, clients: 4, ops: 400, cas_fraction: 0.0, ..SimConfig::default() });
    let bad = inject(&sim, Anomaly::StaleRead, 5).unwrap();
    let res = check(&bad, &opts());
    let wit = res.witness.unwrap();
    assert!(wit.explanation.contains("overwritten") || wit.explanation.contains("had already returned"), "{}", wit.explanation);
    assert!(wit.prefix_ops > 0);
}

// ---------------------------------------------------------------------------
// Budget and cancellation

/// n writes of distinct values, all concurrent, and a read after them of a
/// value nobody wrote: the search visits every subset of the writes.
fn hard_history(n: u64) -> History {
    let mut ops: Vec<Op> = (0..n).map(|i| w(i, i as i64 + 1, i, 1000 + i)).collect();
    // Reads inside the window keep the memo from collapsing the subsets.
    for i in 0..n {
        ops.push(r(n + i, (i as i64 % n as i64) + 1, 10 + i, 900 + i));
    }
    ops.push(r(3 * n, -1, 2000, 2001));
    History::new(ops)
}

#[test]
fn a_tiny_budget_gives_unknown_quickly() {
    let h = hard_history(40);
    for budget_ms in [1u64, 50, 200] {
        let budget = Duration::from_millis(budget_ms);
        let t0 = Instant::now();
        let res = check(&h, &CheckOptions::with_budget(budget));
        let took = t0.elapsed();
        assert_eq!(res.verdict, Verdict::Unknown, "{}", res.summary());
        assert!(res.reason.as_deref().unwrap().contains("budget"), "{:?}", res.reason);
        assert!(took <= budget * 2 + Duration::from_millis(100), "took {took:?} for a budget of {budget:?}");
    }
}

#[test]
fn cancellation_stops_the_check() {
    let h = hard_history(40);
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        c2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let t0 = Instant::now();
    let res = check(&h, &CheckOptions { cancel: Some(cancel), ..CheckOptions::with_budget(Duration::from_secs(30)) });
    t.join().unwrap();
    assert_eq!(res.verdict, Verdict::Unknown);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_violation_stops_the_other_keys() {
    // One hard key and one plainly broken key: the broken one stops the hard one.
    let mut ops = hard_history(40).ops;
    for op in &mut ops {
        op.key = "hard".into();
    }
    ops.push(Op::ok(0, "bad", Func::Write, 1, Value::Null, 0, 1));
    ops.push(Op::ok(0, "bad", Func::Read, Value::Null, Value::Null, 2, 3));
    let t0 = Instant::now();
    let res = check(&History::new(ops), &CheckOptions { threads: 2, ..CheckOptions::with_budget(Duration::from_secs(30)) });
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(res.witness.unwrap().key, "bad");
}

#[test]
fn a_fast_failing_key_stops_more_hard_keys_than_threads() {
    // Hard keys, more than threads and larger than the broken one (so they are
    // scheduled first): the broken key must still be found, and stop them.
    for hard_keys in [8, 16] {
        let mut ops = Vec::new();
        for k in 0..hard_keys {
            ops.extend(hard_history(40).ops.into_iter().map(|op| Op { key: format!("hard{k}"), ..op }));
        }
        ops.push(Op::ok(0, "bad", Func::Write, 1, Value::Null, 0, 1));
        ops.push(Op::ok(0, "bad", Func::Read, Value::Null, Value::Null, 2, 3));
        let h = History::new(ops);
        for threads in [1, 2] {
            let t0 = Instant::now();
            let res = check(&h, &CheckOptions { threads, ..CheckOptions::with_budget(Duration::from_secs(60)) });
            let took = t0.elapsed();
            assert_eq!(res.verdict, Verdict::NotLinearizable, "{}", res.summary());
            assert!(took < Duration::from_secs(5), "{hard_keys} hard keys, {threads} threads: {took:?}");
            assert_eq!(res.witness.as_ref().unwrap().key, "bad");
            assert!(res.per_key.iter().filter(|k| k.key.starts_with("hard")).all(|k| k.verdict == Verdict::Unknown));
        }
    }
}

#[test]
fn the_witness_search_is_capped() {
    let sim = simulate(&SimConfig { ops: 20_000, ..sim_config(3, SimModel::Register) });
    let h = inject(&sim, Anomaly::StaleRead, 7).expect("a spot for the anomaly");
    let t0 = Instant::now();
    let plain = check(&h, &CheckOptions { witness: false, ..opts() });
    let search = t0.elapsed();
    assert_eq!(plain.verdict, Verdict::NotLinearizable);
    for cap in [Duration::ZERO, Duration::from_millis(20)] {
        let t0 = Instant::now();
        let res = check(&h, &CheckOptions { witness_budget: cap, ..opts() });
        let took = t0.elapsed();
        assert_eq!(res.verdict, Verdict::NotLinearizable);
        assert!(took < search * 3 + cap + Duration::from_millis(300), "cap {cap:?}: took {took:?}, the search alone {search:?}");
        // Cut short or not, there is a witness with the operation that cannot be placed.
        let w = res.witness.expect("a witness");
        assert!(!w.ops.is_empty() && w.culprit.is_some(), "{w:?}");
    }
}

#[test]
fn string_append_key_values() {
    let kv = |ops: &[(u64, &str, &str, u64, u64)]| -> Verdict {
        let ops = ops
            .iter()
            .map(|&(p, f, v, call, ret)| match f {
                "append" => Op::ok(p, "k", Func::Append, v, Value::Null, call, ret),
                "put" => Op::ok(p, "k", Func::Put, v, Value::Null, call, ret),
                _ => Op::ok(p, "k", Func::Get, Value::Null, v, call, ret),
            })
            .collect();
        verdict(ops)
    };
    // A get of a missing key returns "" (or null).
    assert_eq!(kv(&[(0, "get", "", 0, 1), (0, "append", "ab", 2, 3), (0, "get", "ab", 4, 5)]), Verdict::Linearizable);
    assert_eq!(kv(&[(0, "put", "a", 0, 1), (0, "append", "b", 2, 3), (0, "get", "ab", 4, 5)]), Verdict::Linearizable);
    // Concurrent appends in either order; different pieces that make the same text.
    assert_eq!(kv(&[(0, "append", "x", 0, 10), (1, "append", "y", 0, 10), (2, "get", "yx", 20, 30)]), Verdict::Linearizable);
    assert_eq!(kv(&[(0, "append", "a", 0, 10), (1, "append", "bc", 0, 10), (2, "append", "ab", 0, 10), (3, "get", "abc", 20, 30)]), Verdict::NotLinearizable);
    assert_eq!(kv(&[(0, "append", "a", 0, 10), (1, "append", "bc", 0, 10), (3, "get", "abc", 20, 30)]), Verdict::Linearizable);
    // Order, loss, and a put that resets.
    assert_eq!(kv(&[(0, "append", "x", 0, 1), (1, "append", "y", 2, 3), (2, "get", "yx", 4, 5)]), Verdict::NotLinearizable);
    assert_eq!(kv(&[(0, "append", "x", 0, 1), (2, "get", "", 4, 5)]), Verdict::NotLinearizable);
    assert_eq!(kv(&[(0, "append", "x", 0, 1), (1, "put", "p", 2, 3), (1, "append", "q", 4, 5), (2, "get", "pq", 6, 7)]), Verdict::Linearizable);
    let res = run(vec![Op::ok(0, "k", Func::Append, "x", Value::Null, 0, 1), Op::ok(1, "k", Func::Append, "y", Value::Null, 2, 3), Op::ok(2, "k", Func::Get, Value::Null, "yx", 4, 5)]);
    let w = res.witness.expect("a witness");
    assert_eq!(w.ops.len(), 3, "{w:?}");
    assert!(w.explanation.contains("string"), "{}", w.explanation);
}

// ---------------------------------------------------------------------------
// Formats

#[test]
fn json_events_parse_and_round_trip() {
    let text = r#"{"ops": [
  {"process": 0, "type": "invoke", "f": "write", "key": "x", "value": 1, "time": 100},
  {"process": 1, "type": "invoke", "f": "read",  "key": "x", "value": null, "time": 120},
  {"process": 0, "type": "ok",     "f": "write", "key": "x", "value": 1, "time": 300},
  {"process": 1, "type": "ok",     "f": "read",  "key": "x", "value": 1, "time": 310},
  {"process": 2, "type": "invoke", "f": "cas",   "key": "x", "value": [1, 2], "time": 400},
  {"process": 2, "type": "info",   "f": "cas",   "key": "x", "value": [1, 2], "time": 900},
  {"process": "nemesis", "type": "info", "f": "partition", "value": null, "time": 950},
  {"process": 3, "type": "invoke", "f": "append", "key": "l", "value": "a", "time": 1000}
]}"#;
    assert_eq!(formats::detect(text), Some(Format::Json));
    let h = formats::parse(text).unwrap();
    assert_eq!(h.ops.len(), 4);
    assert_eq!(h.ops[0].call, 100);
    assert_eq!(h.ops[0].ret, Some(300));
    assert_eq!(h.ops[1].output, Value::Int(1));
    assert_eq!(h.ops[2].status, Status::Info);
    assert_eq!(h.ops[3].status, Status::Info);
    assert_eq!(h.ops[3].ret, None);
    assert_eq!(h.ops[0].line, Some(2));
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);

    // Round trip through to_json and serde.
    let again = formats::parse(&formats::to_json(&h)).unwrap();
    let strip = |h: &History| h.ops.iter().map(|o| Op { line: None, ..o.clone() }).collect::<Vec<_>>();
    assert_eq!(strip(&again), strip(&h));
    let via_serde = serde_json::to_string(&h).unwrap();
    assert_eq!(strip(&formats::parse(&via_serde).unwrap()), strip(&h));
}

#[test]
fn json_lines_and_bare_lists_parse_with_indices_as_times() {
    let lines = "{\"process\": 0, \"type\": \"invoke\", \"f\": \"put\", \"key\": 7, \"value\": \"v\"}\n{\"process\": 0, \"type\": \"ok\", \"f\": \"put\", \"key\": 7, \"value\": \"v\"}\n";
    let h = formats::parse(lines).unwrap();
    assert_eq!(h.ops[0].key, "7");
    assert_eq!((h.ops[0].call, h.ops[0].ret), (0, Some(1)));
    let list = format!("[{}]", lines.trim_end().replace('\n', ",\n"));
    assert_eq!(formats::parse(&list).unwrap().ops.len(), 1);
    assert_eq!(formats::parse("[]").unwrap().ops.len(), 0);
}

#[test]
fn json_errors_name_the_line() {
    let missing_type = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"read\"},\n{\"process\": 0, \"f\": \"read\"}\n]}";
    let e = formats::parse(missing_type).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("\"type\""), "{e}");

    let bad_f = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"txn\"}\n]}";
    let e = formats::parse(bad_f).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("read, write, cas"), "{e}");

    let unmatched = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"read\"},\n{\"process\": 1, \"type\": \"ok\", \"f\": \"read\", \"value\": 1}\n]}";
    let e = formats::parse(unmatched).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("no pending invocation"), "{e}");

    let double = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"read\"},\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"write\", \"value\": 1}\n]}";
    let e = formats::parse(double).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("line 2"), "{e}");

    let syntax = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"read\"},\n{\"process\": 0 \"type\": \"ok\"}\n]}";
    let e = formats::parse(syntax).unwrap_err();
    assert_eq!(e.line, 3, "{e}");

    let float = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"write\", \"value\": 1.5}\n]}";
    let e = formats::parse(float).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("not an integer"), "{e}");

    let bad_cas = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"cas\", \"value\": 3}\n]}";
    let e = formats::parse(bad_cas).unwrap_err();
    assert!(e.message.contains("[from, to]") && e.line == 2, "{e}");

    assert!(formats::parse("hello\nworld\n").unwrap_err().message.contains("unrecognized"));
    assert_eq!(e.to_string(), format!("line 2: {}", e.message));
}

const JEPSEN_LOG: &str = "\
2017-03-01 12:00:00,123{GMT}	INFO	[jepsen worker 3] jepsen.util: 3	:invoke	:write	4
INFO  jepsen.util - 1	:invoke	:read	nil
INFO  jepsen.util - 3	:ok	:write	4
INFO  jepsen.util - :nemesis	:info	:start	nil
some unrelated log line: connecting to n1
INFO  jepsen.util - 1	:ok	:read	4
INFO  jepsen.util - 2	:invoke	:cas	[4 5]
INFO  jepsen.util - 0	:invoke	:cas	[1 2]
INFO  jepsen.util - 2	:ok	:cas	[4 5]
INFO  jepsen.util - 0	:fail	:cas	[1 2]
INFO  jepsen.util - 4	:invoke	:write	9
INFO  jepsen.util - 4	:info	:write	9	:timed-out
INFO  jepsen.util - 1	:invoke	:read	nil
INFO  jepsen.util - 1	:ok	:read	5
";

#[test]
fn jepsen_log_lines_parse() {
    assert_eq!(formats::detect(JEPSEN_LOG), Some(Format::JepsenLog));
    let h = formats::parse(JEPSEN_LOG).unwrap();
    assert_eq!(h.ops.len(), 6);
    assert_eq!(h.ops[0].value, Value::Int(4));
    assert_eq!(h.ops[0].line, Some(1));
    assert_eq!(h.ops[2].f, Func::Cas);
    assert_eq!(h.ops[3].status, Status::Fail);
    assert_eq!(h.ops[4].status, Status::Info);
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
    // Read 9 would need the timed-out write: fine. Read 1: never written.
    let bad = JEPSEN_LOG.replace("1	:ok	:read	5", "1	:ok	:read	1");
    let res = check(&formats::parse(&bad).unwrap(), &opts());
    assert_eq!(res.verdict, Verdict::NotLinearizable);
    assert_eq!(res.witness.unwrap().ops.last().unwrap().op.line, Some(13));
}

#[test]
fn jepsen_log_errors_name_the_line() {
    let bad = JEPSEN_LOG.replace(":cas	[4 5]\nINFO  jepsen.util - 0", ":cas	[4 5\nINFO  jepsen.util - 0");
    let e = formats::parse(&bad).unwrap_err();
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("expected an EDN value"), "{e}");
    let e = formats::parse_jepsen_log("nothing here\n").unwrap_err();
    assert!(e.message.contains("no operations"), "{e}");
    let e = formats::parse("INFO  jepsen.util - 3	:ok	:write	4\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no pending invocation"), "{e}");
}

#[test]
fn edn_register_histories_parse() {
    let text = "\
{:process 0, :type :invoke, :f :write, :value 3}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 3}
{:process :nemesis, :type :info, :f :start, :value nil}
{:process 1, :type :ok, :f :read, :value 3}
{:process 2, :type :invoke, :f :cas, :value [3 4]}
{:process 2, :type :ok, :f :cas, :value [3 4]}
";
    assert_eq!(formats::detect(text), Some(Format::Edn));
    let h = formats::parse(text).unwrap();
    assert_eq!(h.ops.len(), 3);
    assert_eq!(h.ops[2].value, Value::List(vec![Value::Int(3), Value::Int(4)]));
    assert_eq!(h.ops[2].key, "");
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
    // A vector of maps over several lines, with Jepsen's extra fields and a tagged record.
    let vector = "[{:type :invoke, :f :write, :value 1, :process 0, :time 10, :index 0}\n #jepsen.history.Op{:type :ok, :f :write, :value 1, :process 0, :time 20, :index 1, :error nil}\n {:type :invoke, :f :read, :value nil, :process 1, :time 30}\n {:type :ok, :f :read, :value 2, :process 1, :time 40}]";
    let h = formats::parse(vector).unwrap();
    assert_eq!(h.ops[1].call, 30);
    assert_eq!(h.ops[1].line, Some(3));
    let res = check(&h, &opts());
    assert_eq!(res.verdict, Verdict::NotLinearizable);
}

#[test]
fn edn_key_value_and_independent_histories_parse() {
    let kv = "\
{:process 0, :type :invoke, :f :put, :key \"x\", :value 1, :time 1}
{:process 0, :type :ok, :f :put, :key \"x\", :value 1, :time 2}
{:process 1, :type :invoke, :f :append, :key \"l\", :value 5, :time 3}
{:process 1, :type :ok, :f :append, :key \"l\", :value 5, :time 4}
{:process 1, :type :invoke, :f :get, :key \"l\", :value nil, :time 5}
{:process 1, :type :ok, :f :get, :key \"l\", :value [5], :time 6}
";
    let h = formats::parse(kv).unwrap();
    assert_eq!(h.keys(), vec!["x", "l"]);
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);

    let independent = "\
{:process 0, :type :invoke, :f :write, :value [5 1]}
{:process 0, :type :ok, :f :write, :value [5 1]}
{:process 1, :type :invoke, :f :cas, :value [5 [1 2]]}
{:process 1, :type :ok, :f :cas, :value [5 [1 2]]}
{:process 2, :type :invoke, :f :read, :value [6 nil]}
{:process 2, :type :ok, :f :read, :value [6 nil]}
{:process 2, :type :invoke, :f :read, :value [5 nil]}
{:process 2, :type :ok, :f :read, :value [5 2]}
";
    let h = formats::parse(independent).unwrap();
    assert_eq!(h.keys(), vec!["5", "6"]);
    assert_eq!(h.ops[1].value, Value::List(vec![Value::Int(1), Value::Int(2)]));
    assert_eq!(h.ops[3].output, Value::Int(2));
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
    // A plain register with only cas operations is not mistaken for independent keys.
    let only_cas = "{:process 0, :type :invoke, :f :cas, :value [nil 1]}\n{:process 0, :type :ok, :f :cas, :value [nil 1]}\n";
    let h = formats::parse(only_cas).unwrap();
    assert_eq!(h.ops[0].key, "");
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
}

#[test]
fn edn_errors_name_the_line() {
    let text = "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3}\n{:process 0, :type :invoke, :f :write :value}\n";
    let e = formats::parse(text).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    let text = "{:process 0, :type :invoke, :f :write, :value 3}\n\n{:process 0, :type :done, :f :write, :value 3}\n";
    let e = formats::parse(text).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains(":invoke, :ok, :fail or :info"), "{e}");
    let text = "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n";
    let e = formats::parse(text).unwrap_err();
    assert!(e.message.contains("unsupported operation \"txn\""), "{e}");
    let text = "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :invoke, :f :write, :value {:a 1}}\n";
    let e = formats::parse(text).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("maps are not supported"), "{e}");
    let text = "{:process 0, :type :invoke, :f :write, :value [1 2}\n";
    let e = formats::parse(text).unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    let text = "{:type :invoke, :f :write, :value 1}\n";
    assert!(formats::parse(text).unwrap_err().message.contains(":process"));
}

#[test]
fn porcupine_json_round_trips() {
    let sim = simulate(&SimConfig { seed: 9, clients: 4, keys: 3, ops: 300, info_fraction: 0.05, ..SimConfig::default() });
    let text = formats::to_porcupine_json(&sim.history);
    assert_eq!(formats::detect(&text), Some(Format::Porcupine));
    let h = formats::parse(&text).unwrap();
    let expected: Vec<&Op> = sim.history.ops.iter().filter(|o| o.status != Status::Fail).collect();
    assert_eq!(h.ops.len(), expected.len());
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
    let first: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap().trim_end_matches(',')).unwrap();
    assert!(first["client_id"].is_u64() && first["input"]["op"].is_string() && first["return"].is_i64());
    let e = formats::parse("[\n{\"client_id\": 0, \"input\": {\"op\": \"write\"}, \"call\": 5, \"return\": 1}\n]").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("before"), "{e}");
}

#[test]
fn recorder_records_a_history() {
    let rec = super::Recorder::new();
    let a = rec.invoke(0, "x", Func::Write, Value::Int(1));
    let b = rec.invoke(1, "x", Func::Read, Value::Null);
    rec.ok(a, Value::Null);
    rec.ok(b, Value::Int(1));
    let c = rec.invoke(2, "x", Func::Cas, vec![1, 2].into());
    rec.info(c);
    let h = rec.history().unwrap();
    assert_eq!(h.ops.len(), 3);
    assert!(h.ops[0].call <= h.ops[1].call && h.ops[1].call <= h.ops[0].ret.unwrap());
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
    let again = formats::parse(&formats::to_json(&h)).unwrap();
    assert_eq!(again.ops.len(), 3);
}

#[test]
fn json_lists_read_the_same_in_any_layout() {
    // The one-pass reader (a list of elements deserialized in place) and the
    // long way (split, then each element) must agree on operations and lines.
    let sim = simulate(&SimConfig { seed: 4, clients: 3, keys: 2, ops: 60, info_fraction: 0.1, ..SimConfig::default() });
    let strip = |h: &History| h.ops.iter().map(|o| Op { line: None, ..o.clone() }).collect::<Vec<_>>();
    for text in [formats::to_porcupine_json(&sim.history), formats::to_json(&sim.history)] {
        let pretty = formats::parse(&text).unwrap();
        // One element per line after the opening bracket: the lines are known.
        let first_line = pretty.ops.iter().filter_map(|o| o.line).min().unwrap();
        assert_eq!(first_line, 2, "{}", &text[..200]);
        // All on one line, with odd spacing and CRLF around the separators.
        let squeezed = text.replace(",\n", " ,\r\n\t").replace('\n', " ");
        let h = formats::parse(&squeezed).unwrap();
        assert_eq!(strip(&h), strip(&pretty));
        assert!(h.ops.iter().all(|o| o.line.is_some()));
        // A syntax error half-way names its line, whichever reader met it.
        let mut lines: Vec<&str> = text.lines().collect();
        let broken = lines[5].replacen(':', "", 1);
        lines[5] = &broken;
        let e = formats::parse(&lines.join("\n")).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        // Trailing garbage after the list is an error, not ignored.
        assert!(formats::parse(&format!("{} x", text.trim_end())).is_err());
    }
    // Keys and values that look like separators, escapes, a nested cas value.
    let tricky = r#"[
{"client_id": 0, "input": {"op": "write", "key": "a],\"{b", "value": "x]\n,y"}, "call": 1, "output": {"ok": true}, "return": 2},
{"client_id": 1, "input": {"op": "cas", "key": 7, "from": [1, [2]], "to": null}, "call": 3, "output": {"ok": false}, "return": 4}
]"#;
    let h = formats::parse(tricky).unwrap();
    assert_eq!(h.ops[0].key, "a],\"{b");
    assert_eq!(h.ops[0].value, Value::Str("x]\n,y".into()));
    assert_eq!(h.ops[1].key, "7");
    assert_eq!(h.ops[1].value, Value::List(vec![Value::List(vec![Value::Int(1), Value::List(vec![Value::Int(2)])]), Value::Null]));
    assert_eq!(h.ops[1].output, Value::Bool(false));
    assert_eq!((h.ops[0].line, h.ops[1].line), (Some(2), Some(3)));
    // The project's format inside {"ops": [...]}, with another field after it.
    let wrapped = "{\"ops\": [\n{\"process\": 0, \"type\": \"invoke\", \"f\": \"read\"},\n{\"process\": 0, \"type\": \"ok\", \"f\": \"read\", \"value\": 1}\n], \"meta\": 1}";
    let h = formats::parse(wrapped).unwrap();
    assert_eq!((h.ops.len(), h.ops[0].line), (1, Some(2)));
}
