//! Linearizability checker benchmark: `cargo bench --bench linearizability`.
//!
//! Generates register histories (seeded, see `lab::checker::sim`) at 1k, 10k and
//! 100k operations and checks them, printing wall time, operations per second
//! and the number of memoized search states:
//!
//! - `multi-key`: 20 clients over 20 keys (keys are checked in parallel);
//! - `single-key`: 10 clients on one register, unique values (hard: one search);
//! - `single-key-5-values`: 10 clients on one register, values drawn from 0..5
//!   (ambiguous values, more backtracking);
//! - `single-key-timeouts`: as `single-key` with 2% of the writes/cas timing out
//!   (info: they may or may not have happened);
//! - `single-key-stale-read`: `single-key` with one injected stale read; the time
//!   includes shrinking the violation to a minimal witness.
//!
//! `cargo bench --bench linearizability -- single-key` runs the cases whose name
//! contains `single-key`; `BENCH_SIZES=1000,10000` picks the sizes.
//!
//! With `BENCH_HISTORY_DIR=DIR`, every generated history is also written as
//! `DIR/<case>-<ops>.json` (the project's JSON event format, see
//! `lab::checker::formats`) and `DIR/<case>-<ops>.porcupine.json`, a JSON list
//! of Porcupine operations, one per line, ordered by call time:
//!
//! ```json
//! {"client_id": 3, "input": {"op": "write", "key": "k0", "value": 17}, "call": 120, "output": {"ok": true, "unknown": false, "value": null}, "return": 180}
//! {"client_id": 4, "input": {"op": "read", "key": "k0"}, "call": 130, "output": {"ok": true, "unknown": false, "value": 17}, "return": 200}
//! {"client_id": 5, "input": {"op": "cas", "key": "k0", "from": 17, "to": 18}, "call": 210, "output": {"ok": true, "unknown": false, "value": null}, "return": 260}
//! {"client_id": 6, "input": {"op": "write", "key": "k0", "value": 19}, "call": 300, "output": {"ok": true, "unknown": true, "value": null}, "return": 9223372036854775807}
//! ```
//!
//! For Porcupine: `Operation{ClientId: client_id, Input: input, Call: call,
//! Output: output, Return: return}`; partition by `input.key`; the model is a
//! register whose initial value is `null` (a read of a missing key returns null):
//! read is legal iff `output.value` equals the state; write sets the state; cas
//! is legal iff the state equals `from` (then the state becomes `to`) — or, if
//! `output.ok` is false, iff it differs; an operation with `output.unknown` is
//! legal in any state (a write/cas then takes effect as if it succeeded) and
//! returns at int64 max, so it stays concurrent with everything after its call.
//! Failed cas (`fail`) are left out of that file. Values are JSON integers (null
//! only as the initial value). `BENCH_WRITE_ONLY=1` with `BENCH_HISTORY_DIR`
//! writes the histories and checks nothing.
//!
//! Side by side with Porcupine (the Go checker, as the comparison peer):
//!
//! ```text
//! git clone https://github.com/anishathalye/porcupine /tmp/porcupine   # or any checkout
//! benches/porcupine-compare.sh /tmp/porcupine [--sizes 1000,10000,100000] [--reps 3] [--budget 120] [--cases multi-key,single-key] [--no-test-data]
//! ```
//!
//! The script fetches nothing and writes nothing to the repository: it builds a
//! small Go driver of ours (kept in the script; it calls Porcupine's
//! `CheckOperationsTimeout` with the register model above, partitioned by key)
//! against the given checkout in a temporary folder, builds lab in release
//! mode (or uses `$LAB`), writes these histories, and runs `lab check
//! linearizability` and the driver on each `.porcupine.json` file, plus
//! Porcupine's own test data (its Jepsen etcd logs and string-append kv logs,
//! which lab reads as jepsen.util logs and EDN). It prints a Markdown table:
//! median wall time of the whole process over `--reps` runs (reading the file
//! included), operations per second, the speed-up (Porcupine's time over
//! lab's) and both verdicts. Go comes from `$GO`, else `go` on the PATH, else
//! /usr/lib/go-1.23/bin/go.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab::checker::sim::{inject, simulate, Anomaly, SimConfig, SimModel};
use lab::checker::{check, formats, CheckOptions, CheckResult, History};

struct Case {
    name: &'static str,
    config: fn(ops: usize) -> SimConfig,
    anomaly: Option<Anomaly>,
}

fn base(ops: usize) -> SimConfig {
    SimConfig { seed: 2024, clients: 10, keys: 1, ops, model: SimModel::Register, read_fraction: 0.5, cas_fraction: 0.1, info_fraction: 0.0, values: None, max_latency: 1_000, max_think: 200 }
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "multi-key", config: |ops| SimConfig { clients: 20, keys: 20, ..base(ops) }, anomaly: None },
        Case { name: "single-key", config: base, anomaly: None },
        Case { name: "single-key-5-values", config: |ops| SimConfig { values: Some(5), ..base(ops) }, anomaly: None },
        Case { name: "single-key-timeouts", config: |ops| SimConfig { info_fraction: 0.02, ..base(ops) }, anomaly: None },
        Case { name: "single-key-stale-read", config: base, anomaly: Some(Anomaly::StaleRead) },
    ]
}

fn generate(case: &Case, ops: usize) -> History {
    let sim = simulate(&(case.config)(ops));
    match case.anomaly {
        None => sim.history,
        Some(a) => inject(&sim, a, 7).expect("a spot for the anomaly"),
    }
}

fn run(history: &History, threads: usize) -> (Duration, CheckResult) {
    let opts = CheckOptions { threads, ..CheckOptions::with_budget(Duration::from_secs(120)) };
    let t0 = Instant::now();
    let res = check(history, &opts);
    (t0.elapsed(), res)
}

/// Jepsen-style EDN, one map per line (for the parse benchmark).
fn to_edn(history: &History) -> String {
    let edn = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::Null => "nil".into(),
            serde_json::Value::Array(items) => format!("[{}]", items.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")),
            other => other.to_string(),
        }
    };
    let mut out = String::new();
    for e in history.events() {
        let v = serde_json::to_value(&e.value).unwrap();
        out.push_str(&format!("{{:process {}, :type :{}, :f :{}, :key {:?}, :value {}, :time {}}}\n", e.process, e.kind.name(), e.f.name(), e.key, edn(&v), e.time.unwrap_or(0)));
    }
    out
}

fn fmt_rate(ops: usize, d: Duration) -> String {
    let r = ops as f64 / d.as_secs_f64();
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument picks cases by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = std::env::var_os("BENCH_HISTORY_DIR").map(PathBuf::from);
    if let Some(d) = &dir {
        std::fs::create_dir_all(d).expect("BENCH_HISTORY_DIR");
    }
    // BENCH_SIZES=1000,10000 picks sizes.
    let sizes: Vec<usize> = match std::env::var("BENCH_SIZES") {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![1_000, 10_000, 100_000],
    };
    // BENCH_WRITE_ONLY=1 (with BENCH_HISTORY_DIR): write the histories, check nothing.
    let write_only = dir.is_some() && std::env::var_os("BENCH_WRITE_ONLY").is_some();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("linearizability checker, {cores} cores (best and median of repeated runs; ops/s from the best; witness included for violations)");
    println!("{:<24} {:>7} {:>7} {:>16} {:>11} {:>11} {:>11} {:>10} {:>10} {:>8}", "case", "ops", "threads", "verdict", "best", "median", "ops/s", "states", "steps", "witness");
    for case in cases() {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        for &n in &sizes {
            let history = generate(&case, n);
            if let Some(d) = &dir {
                std::fs::write(d.join(format!("{}-{n}.json", case.name)), formats::to_json(&history)).expect("write history");
                std::fs::write(d.join(format!("{}-{n}.porcupine.json", case.name)), formats::to_porcupine_json(&history)).expect("write history");
            }
            if write_only {
                continue;
            }
            let thread_counts: &[usize] = if case.name == "multi-key" && cores > 1 { &[1, 0] } else { &[0] };
            for &threads in thread_counts {
                let reps = if n <= 10_000 { 7 } else { 3 };
                let mut runs: Vec<(Duration, CheckResult)> = (0..reps).map(|_| run(&history, threads)).collect();
                runs.sort_by_key(|(d, _)| *d);
                let (wall, res) = &runs[0];
                let median = runs[reps / 2].0;
                let states: u64 = res.per_key.iter().map(|k| k.states).sum();
                let steps: u64 = res.per_key.iter().map(|k| k.steps).sum();
                let witness = res.witness.as_ref().map_or("-".to_string(), |w| format!("{} ops", w.ops.len()));
                println!(
                    "{:<24} {:>7} {:>7} {:>16} {:>8.1} ms {:>8.1} ms {:>11} {:>10} {:>10} {:>8}",
                    case.name,
                    n,
                    if threads == 0 { cores } else { threads },
                    res.verdict.name(),
                    wall.as_secs_f64() * 1e3,
                    median.as_secs_f64() * 1e3,
                    fmt_rate(n, *wall),
                    states,
                    steps,
                    witness
                );
                if case.anomaly.is_some() {
                    if let Some(w) = &res.witness {
                        println!("    {}", w.explanation);
                    }
                }
            }
        }
    }
    // Reading histories: the project's JSON and the Porcupine-friendly form.
    if !write_only && filter.as_deref().is_none_or(|f| "parse".contains(f)) {
        for &n in &sizes {
            let history = generate(&cases()[0], n);
            for (name, text) in [("json", formats::to_json(&history)), ("porcupine-json", formats::to_porcupine_json(&history)), ("edn", to_edn(&history))] {
                let mut times: Vec<Duration> = (0..3)
                    .map(|_| {
                        let t0 = Instant::now();
                        let h = formats::parse(&text).expect("parses");
                        assert!(h.ops.len() >= n * 9 / 10);
                        t0.elapsed()
                    })
                    .collect();
                times.sort();
                println!("parse {:<18} {:>7} ops  {:>8.1} MB  {:>8.1} ms  {:>11}", name, n, text.len() as f64 / 1e6, times[0].as_secs_f64() * 1e3, fmt_rate(n, times[0]));
            }
        }
    }
    if let Some(d) = &dir {
        println!("histories written to {}", d.display());
    }
}
