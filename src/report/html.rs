//! HTML report: one self-contained page (no external assets, no JavaScript)
//! with the checks by stage and, when the run recorded a workload, its history
//! drawn as inline SVG: a timeline with one lane per client and the nemesis
//! faults shaded, the operations a checker blamed highlighted, and the latency
//! of every operation over time.
//!
//! Every string of the report is untrusted (it comes from the learner's
//! service): the page is rendered by tera with autoescaping (the template is
//! named `*.html`) and never marks a value `safe`. The geometry is computed
//! here and handed to the template as preformatted numbers.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use crate::event::{CheckResult, Failure, HistoryOp, HistoryReport, NemesisInterval, OpType, Outcome, RunReport};

const TEMPLATE_NAME: &str = "report.html";
const TEMPLATE: &str = include_str!("report.html.tera");

/// Width of both charts, in pixels.
const WIDTH: f64 = 1200.0;
/// Left margin (lane labels, latency axis labels).
const LEFT: f64 = 90.0;
const RIGHT: f64 = 24.0;
const LANE_H: f64 = 18.0;
const BAR_H: f64 = 12.0;
/// Space under the plot for the time axis.
const AXIS_H: f64 = 34.0;
/// Height of one row of nemesis labels above the timeline.
const NEMESIS_ROW_H: f64 = 13.0;
const MAX_NEMESIS_ROWS: usize = 4;
/// Approximate advance of one character of the 10 px monospace labels.
const CHAR_W: f64 = 6.1;
/// Thinnest bar drawn, so that fast operations stay visible.
const MIN_BAR_W: f64 = 1.5;
const LATENCY_PLOT_H: f64 = 240.0;
const LATENCY_TOP: f64 = 14.0;

/// Render a run as a self-contained HTML page.
pub fn html(report: &RunReport) -> String {
    let page = page(report);
    let ctx = match tera::Context::from_serialize(&page) {
        Ok(c) => c,
        Err(e) => return fallback(report, &e),
    };
    match templates().render(TEMPLATE_NAME, &ctx) {
        Ok(s) => s,
        Err(e) => fallback(report, &e),
    }
}

fn templates() -> &'static tera::Tera {
    static T: OnceLock<tera::Tera> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.add_raw_template(TEMPLATE_NAME, TEMPLATE).expect("the HTML report template parses");
        t
    })
}

/// A minimal page should the template ever fail to render (a bug in lab).
fn fallback(report: &RunReport, e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>lab verify {lab}</title><h1>lab verify {lab}</h1><p>{verdict}. The HTML report could not be rendered: {msg}</p>",
        lab = escape(&report.lab),
        verdict = if report.passed() { "PASSED" } else { "FAILED" },
        msg = escape(&msg)
    )
}

fn escape(s: &str) -> String {
    tera::escape_html(s)
}

// ---------------------------------------------------------------------------
// The view handed to the template.

#[derive(Serialize)]
struct Page<'a> {
    lab: &'a str,
    instance: &'a str,
    target: &'a str,
    passed: bool,
    verdict: &'static str,
    total: usize,
    counts: CountsView,
    duration: String,
    stages: Vec<StageView<'a>>,
    history: Option<HistoryView>,
}

#[derive(Serialize)]
struct CountsView {
    passed: usize,
    failed: usize,
    skipped: usize,
    errors: usize,
}

#[derive(Serialize)]
struct StageView<'a> {
    name: &'a str,
    status: &'static str,
    counts: String,
    checks: Vec<CheckView<'a>>,
}

#[derive(Serialize)]
struct CheckView<'a> {
    name: &'a str,
    expect: &'a str,
    status: &'static str,
    icon: &'static str,
    duration: String,
    failure: Option<&'a Failure>,
    logs: &'a [String],
    reason: Option<&'a str>,
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct HistoryView {
    ops: usize,
    ok: usize,
    fail: usize,
    info: usize,
    clients: u32,
    seed: u64,
    span: String,
    timeline: Timeline,
    latency: Latency,
    nemesis: Vec<NemesisRow>,
    witness: Vec<OpRow>,
}

#[derive(Serialize)]
struct Timeline {
    width: String,
    height: String,
    left: String,
    right: String,
    top: String,
    bottom: String,
    band_h: String,
    lane_h: String,
    plot_w: String,
    lane_label_x: String,
    axis_y: String,
    tick_mark_y: String,
    tick_label_y: String,
    axis_title_x: String,
    axis_title_y: String,
    lanes: Vec<Lane>,
    ticks: Vec<Tick>,
    bands: Vec<Band>,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Lane {
    y: String,
    label_y: String,
    label: String,
    title: String,
    shade: bool,
}

#[derive(Serialize)]
struct Tick {
    /// Position along the axis (x for time, y for latency).
    at: String,
    label: String,
}

#[derive(Serialize)]
struct Band {
    x: String,
    w: String,
    label: String,
    label_x: String,
    label_y: String,
    title: String,
}

#[derive(Serialize)]
struct Bar {
    /// A ring around a blamed operation, so that it stands out however short it is.
    ring: Option<(String, String)>,
    x: String,
    y: String,
    w: String,
    h: String,
    class: String,
    title: String,
    label: String,
    label_x: String,
    label_y: String,
}

#[derive(Serialize)]
struct Latency {
    width: String,
    height: String,
    left: String,
    right: String,
    top: String,
    bottom: String,
    band_h: String,
    plot_w: String,
    axis_y: String,
    tick_mark_y: String,
    tick_label_y: String,
    axis_title_x: String,
    axis_title_y: String,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    /// Unlabelled grid lines at 2 and 5 times each decade.
    y_minor: Vec<String>,
    y_label_x: String,
    dots: Vec<Dot>,
    bands: Vec<Band>,
    title_y: String,
    count: usize,
}

#[derive(Serialize)]
struct Dot {
    cx: String,
    cy: String,
    r: &'static str,
    class: String,
    title: String,
}

#[derive(Serialize)]
struct NemesisRow {
    fault: String,
    targets: String,
    start: String,
    end: String,
    duration: String,
}

#[derive(Serialize)]
struct OpRow {
    index: usize,
    process: String,
    f: String,
    key: String,
    value: String,
    output: String,
    kind: &'static str,
    invoke: String,
    complete: String,
    latency: String,
    node: String,
    note: String,
}

// ---------------------------------------------------------------------------
// Building the view.

fn page(r: &RunReport) -> Page<'_> {
    let s = &r.summary;
    let mut stage_names: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !stage_names.contains(&c.stage.as_str()) {
            stage_names.push(&c.stage);
        }
    }
    let stages = stage_names
        .into_iter()
        .map(|name| {
            let checks: Vec<&CheckResult> = r.checks.iter().filter(|c| c.stage == name).collect();
            let mut counts = crate::event::Summary::default();
            for c in &checks {
                counts.add(&c.outcome);
            }
            let status = if counts.failed > 0 {
                "failed"
            } else if counts.errors > 0 {
                "error"
            } else if counts.passed == 0 && counts.skipped > 0 {
                "skipped"
            } else {
                "passed"
            };
            StageView { name, status, counts: counts_text(&counts), checks: checks.into_iter().map(check_view).collect() }
        })
        .collect();
    let passed = r.passed();
    Page {
        lab: &r.lab,
        instance: &r.instance,
        target: &r.target,
        passed,
        verdict: if passed { "PASSED" } else { "FAILED" },
        total: r.checks.len(),
        counts: CountsView { passed: s.passed, failed: s.failed, skipped: s.skipped, errors: s.errors },
        duration: fmt_duration(s.duration),
        stages,
        history: r.history.as_ref().map(history_view),
    }
}

fn counts_text(s: &crate::event::Summary) -> String {
    let mut parts = Vec::new();
    for (n, what) in [(s.passed, "passed"), (s.failed, "failed"), (s.skipped, "skipped"), (s.errors, "error")] {
        if n > 0 {
            parts.push(format!("{n} {what}{}", if what == "error" && n != 1 { "s" } else { "" }));
        }
    }
    parts.join(", ")
}

fn check_view(c: &CheckResult) -> CheckView<'_> {
    let (status, icon) = match &c.outcome {
        Outcome::Passed => ("passed", "✓"),
        Outcome::Failed(_) => ("failed", "✗"),
        Outcome::Skipped { .. } => ("skipped", "–"),
        Outcome::Error { .. } => ("error", "!"),
    };
    CheckView {
        name: &c.name,
        expect: &c.expect,
        status,
        icon,
        duration: match c.outcome {
            Outcome::Skipped { .. } => String::new(),
            _ => fmt_duration(c.duration),
        },
        failure: match &c.outcome {
            Outcome::Failed(f) => Some(f),
            _ => None,
        },
        logs: match &c.outcome {
            Outcome::Failed(f) => &f.logs,
            _ => &[],
        },
        reason: match &c.outcome {
            Outcome::Skipped { reason } => Some(reason),
            _ => None,
        },
        message: match &c.outcome {
            Outcome::Error { message } => Some(message),
            _ => None,
        },
    }
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// A number for an SVG attribute.
fn n(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

fn kind_name(k: OpType) -> &'static str {
    match k {
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    }
}

/// A JSON value as a person reads it: strings bare, null as "nil".
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "nil".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A key without its run's prefix (`3f9a0c12-k1` is `k1` in a bar; the full
/// key is in the bar's details).
fn short_key(key: &str) -> &str {
    match key.split_once('-') {
        Some((run, rest)) if run.len() == 8 && run.chars().all(|c| c.is_ascii_hexdigit()) => rest,
        _ => key,
    }
}

/// The short label of a bar: `w k1 c3-7`, `r k0 → c1-2` (`→ nil` when the key
/// was missing), `cas k2 c0-1→c2-5`.
fn op_label(op: &HistoryOp) -> String {
    let op = &HistoryOp { key: short_key(&op.key).to_string(), ..op.clone() };
    match op.f.as_str() {
        "write" => format!("w {} {}", op.key, value_text(&op.value)),
        "read" => match op.kind {
            OpType::Ok => format!("r {} → {}", op.key, value_text(&op.output)),
            _ => format!("r {}", op.key),
        },
        "cas" => match &op.value {
            serde_json::Value::Array(a) if a.len() == 2 => {
                format!("cas {} {}→{}", op.key, value_text(&a[0]), value_text(&a[1]))
            }
            v => format!("cas {} {}", op.key, value_text(v)),
        },
        f => format!("{f} {} {}", op.key, value_text(&op.value)),
    }
}

fn completed(op: &HistoryOp) -> bool {
    op.complete != 0 && op.complete >= op.invoke
}

fn fmt_latency_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// The tooltip of an operation: everything it recorded.
fn op_title(i: usize, op: &HistoryOp, lane: &str, witness: bool) -> String {
    let mut t = format!("#{i} {lane} (process {}): {} {}", op.process, op.f, op.key);
    match op.f.as_str() {
        "read" => t.push_str(&format!("\noutput: {}", value_text(&op.output))),
        _ => t.push_str(&format!("\nvalue: {}", value_text(&op.value))),
    }
    if op.f != "read" && !op.output.is_null() {
        t.push_str(&format!("\noutput: {}", value_text(&op.output)));
    }
    t.push_str(&format!("\ntype: {}", kind_name(op.kind)));
    if completed(op) {
        let ms = (op.complete - op.invoke) as f64 / 1e6;
        t.push_str(&format!("\ninvoke {} s → complete {} s ({})", secs(op.invoke), secs(op.complete), fmt_latency_ms(ms)));
    } else {
        t.push_str(&format!("\ninvoke {} s, never completed", secs(op.invoke)));
    }
    t.push_str(&format!("\nsent to node {}, answered by node {}", op.node, op.answered_by));
    if !op.note.is_empty() {
        t.push_str(&format!("\nnote: {}", op.note));
    }
    if witness {
        t.push_str("\nblamed by the linearizability checker");
    }
    t
}

/// The time axis shared by both charts: [0, end] seconds over the plot width.
struct TimeAxis {
    end_s: f64,
    step: f64,
    plot_w: f64,
}

impl TimeAxis {
    fn new(max_ns: u64, plot_w: f64) -> TimeAxis {
        // A little room after the last event; the axis ends there, not at a round number.
        let end_s = (max_ns as f64 / 1e9 * 1.01).max(0.001);
        let step = nice_step(end_s / 12.0);
        TimeAxis { end_s, step, plot_w }
    }

    fn x(&self, ns: u64) -> f64 {
        LEFT + (ns as f64 / 1e9) / self.end_s * self.plot_w
    }

    fn right(&self) -> f64 {
        LEFT + self.plot_w
    }

    fn ticks(&self) -> Vec<Tick> {
        let decimals = if self.step >= 1.0 { 0 } else { (-self.step.log10()).ceil() as usize };
        let count = (self.end_s / self.step + 1e-9).floor() as u64;
        (0..=count)
            .map(|i| {
                let s = i as f64 * self.step;
                let text = format!("{s:.decimals$}");
                let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
                Tick { at: n(LEFT + s / self.end_s * self.plot_w), label: format!("{text} s") }
            })
            .collect()
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-6);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn lane_name(process: u32, clients: u32, max_process: u32) -> String {
    if process >= clients && process == max_process {
        "final read".into()
    } else {
        format!("client {process}")
    }
}

fn history_view(h: &HistoryReport) -> HistoryView {
    let witness: BTreeSet<usize> = h.witness.iter().copied().filter(|&i| i < h.ops.len()).collect();
    let max_ns = h.ops.iter().map(|o| o.complete.max(o.invoke)).chain(h.nemesis.iter().map(|n| n.end.max(n.start))).max().unwrap_or(0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let axis = TimeAxis::new(max_ns, plot_w);

    // Lanes: every client 0..clients, and every process that appears (the final reader last).
    let mut processes: BTreeSet<u32> = (0..h.clients).collect();
    processes.extend(h.ops.iter().map(|o| o.process));
    let max_process = processes.iter().copied().max().unwrap_or(0);
    let lanes: Vec<u32> = processes.into_iter().collect();
    let lane_index = |p: u32| lanes.binary_search(&p).unwrap_or(0);

    // Nemesis labels, stacked in rows so they do not overlap.
    let mut nem: Vec<&NemesisInterval> = h.nemesis.iter().collect();
    nem.sort_by_key(|n| n.start);
    let mut row_end: Vec<f64> = Vec::new();
    let mut placed: Vec<Placed> = Vec::new();
    for iv in &nem {
        let x0 = axis.x(iv.start);
        let x1 = if iv.end == 0 || iv.end < iv.start { axis.right() } else { axis.x(iv.end) };
        let label = nemesis_label(iv);
        let lw = label.chars().count() as f64 * CHAR_W + 8.0;
        // Keep the label inside the chart: shift it left at the right edge.
        let lx = (x0 + 2.0).min(WIDTH - lw).max(LEFT);
        let row = match row_end.iter().position(|&e| e <= lx) {
            Some(r) => r,
            None if row_end.len() < MAX_NEMESIS_ROWS => {
                row_end.push(f64::MIN);
                row_end.len() - 1
            }
            None => row_end.len() - 1,
        };
        row_end[row] = lx + lw;
        placed.push(Placed { iv, x0, x1, label, label_x: lx, row });
    }
    let labels_h = 6.0 + row_end.len() as f64 * NEMESIS_ROW_H + if row_end.is_empty() { 0.0 } else { 4.0 };
    let top = labels_h;
    let lanes_h = lanes.len() as f64 * LANE_H;
    let bottom = top + lanes_h;
    let bands = bands(&placed);

    let lane_views: Vec<Lane> = lanes
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let y = top + i as f64 * LANE_H;
            let label = lane_name(p, h.clients, max_process);
            let title = if label == "final read" { format!("process {p}: the reads of every key after the faults were healed") } else { format!("process {p}: client {p} of the workload") };
            Lane { y: n(y), label_y: n(y + LANE_H / 2.0 + 3.5), label, title, shade: i % 2 == 1 }
        })
        .collect();

    // Bars, the blamed ones last so that their outline is on top.
    let mut order: Vec<usize> = (0..h.ops.len()).filter(|i| !witness.contains(i)).collect();
    order.extend(witness.iter().copied());
    let bars: Vec<Bar> = order
        .into_iter()
        .map(|i| {
            let op = &h.ops[i];
            let lane = lane_index(op.process);
            let y = top + lane as f64 * LANE_H + (LANE_H - BAR_H) / 2.0;
            let x0 = axis.x(op.invoke);
            let x1 = if completed(op) { axis.x(op.complete) } else { axis.right() };
            let w = (x1 - x0).max(MIN_BAR_W);
            let is_w = witness.contains(&i);
            let mut class = format!("op {}", kind_name(op.kind));
            if !completed(op) {
                class.push_str(" open");
            }
            if is_w {
                class.push_str(" witness");
            }
            let text = op_label(op);
            let fits = w >= text.chars().count() as f64 * CHAR_W + 6.0;
            Bar {
                ring: is_w.then(|| (n(x0 + w.min(30.0) / 2.0), n(y + BAR_H / 2.0))),
                x: n(x0),
                y: n(y),
                w: n(w),
                h: n(BAR_H),
                class,
                title: op_title(i, op, &lane_name(op.process, h.clients, max_process), is_w),
                label: if fits { text } else { String::new() },
                label_x: n(x0 + 3.0),
                label_y: n(y + BAR_H - 3.0),
            }
        })
        .collect();

    let timeline = Timeline {
        width: n(WIDTH),
        height: n(bottom + AXIS_H),
        left: n(LEFT),
        right: n(axis.right()),
        top: n(top),
        bottom: n(bottom),
        band_h: n(lanes_h),
        lane_h: n(LANE_H),
        plot_w: n(plot_w),
        lane_label_x: n(LEFT - 8.0),
        axis_y: n(bottom),
        tick_mark_y: n(bottom + 4.0),
        tick_label_y: n(bottom + 15.0),
        axis_title_x: n(axis.right()),
        axis_title_y: n(bottom + 29.0),
        lanes: lane_views,
        ticks: axis.ticks(),
        bands,
        bars,
    };

    let latency = latency_view(h, &axis, &witness, &placed, labels_h, max_process);

    let count = |k: OpType| h.ops.iter().filter(|o| o.kind == k).count();
    HistoryView {
        ops: h.ops.len(),
        ok: count(OpType::Ok),
        fail: count(OpType::Fail),
        info: count(OpType::Info),
        clients: h.clients,
        seed: h.seed,
        span: format!("{:.2} s", max_ns as f64 / 1e9),
        timeline,
        latency,
        nemesis: nem
            .iter()
            .map(|iv| NemesisRow {
                fault: iv.fault.clone(),
                targets: iv.targets.join(", "),
                start: secs(iv.start),
                end: if iv.end == 0 || iv.end < iv.start { "—".into() } else { secs(iv.end) },
                duration: if iv.end == 0 || iv.end < iv.start { "—".into() } else { format!("{:.2} s", (iv.end - iv.start) as f64 / 1e9) },
            })
            .collect(),
        witness: witness
            .iter()
            .map(|&i| {
                let op = &h.ops[i];
                OpRow {
                    index: i,
                    process: lane_name(op.process, h.clients, max_process),
                    f: op.f.clone(),
                    key: op.key.clone(),
                    value: if op.f == "read" { String::new() } else { value_text(&op.value) },
                    output: if op.f == "read" && op.kind == OpType::Ok { value_text(&op.output) } else { String::new() },
                    kind: kind_name(op.kind),
                    invoke: secs(op.invoke),
                    complete: if completed(op) { secs(op.complete) } else { "—".into() },
                    latency: if completed(op) { fmt_latency_ms((op.complete - op.invoke) as f64 / 1e6) } else { "—".into() },
                    node: if op.node == op.answered_by { format!("{}", op.node) } else { format!("{} → {}", op.node, op.answered_by) },
                    note: op.note.clone(),
                }
            })
            .collect(),
    }
}

/// A nemesis interval placed on the time axis, its label in a row above the lanes.
struct Placed<'a> {
    iv: &'a NemesisInterval,
    x0: f64,
    x1: f64,
    label: String,
    label_x: f64,
    row: usize,
}

/// The shaded bands of the nemesis intervals (the same on the timeline and the latency plot).
fn bands(placed: &[Placed]) -> Vec<Band> {
    placed
        .iter()
        .map(|p| Band {
            x: n(p.x0),
            w: n((p.x1 - p.x0).max(1.5)),
            label: p.label.clone(),
            label_x: n(p.label_x),
            label_y: n(6.0 + (p.row as f64 + 1.0) * NEMESIS_ROW_H - 3.0),
            title: nemesis_title(p.iv),
        })
        .collect()
}

fn nemesis_label(iv: &NemesisInterval) -> String {
    if iv.targets.is_empty() {
        iv.fault.clone()
    } else {
        format!("{} {}", iv.fault, iv.targets.join(", "))
    }
}

fn nemesis_title(iv: &NemesisInterval) -> String {
    let end = if iv.end == 0 || iv.end < iv.start { "not healed during the workload".to_string() } else { format!("healed at {} s", secs(iv.end)) };
    format!("nemesis: {}\ntargets: {}\ninjected at {} s, {end}", iv.fault, if iv.targets.is_empty() { "—".to_string() } else { iv.targets.join(", ") }, secs(iv.start))
}

fn latency_view(h: &HistoryReport, axis: &TimeAxis, witness: &BTreeSet<usize>, placed: &[Placed], labels_h: f64, max_process: u32) -> Latency {
    let lat: Vec<(usize, f64)> = h.ops.iter().enumerate().filter(|(_, o)| completed(o)).map(|(i, o)| (i, ((o.complete - o.invoke) as f64 / 1e6).max(1e-3))).collect();
    let (lo_ms, hi_ms) = lat.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)));
    // Log scale from the decade under the fastest operation to a little above the slowest.
    let lo = if lat.is_empty() { 0.0 } else { lo_ms.log10().floor().max(-3.0) };
    let hi = if lat.is_empty() { 3.0 } else { (hi_ms * 1.3).log10().max(lo + 1.0) };
    let top = labels_h + LATENCY_TOP;
    let bottom = top + LATENCY_PLOT_H;
    let y = |ms: f64| bottom - (ms.log10() - lo) / (hi - lo) * LATENCY_PLOT_H;
    let decades = lo as i32..=(hi + 1e-9).floor() as i32;
    let y_ticks = decades
        .clone()
        .map(|e| {
            let ms = 10f64.powi(e);
            let label = if ms >= 1000.0 {
                format!("{} s", ms / 1000.0)
            } else if ms >= 1.0 {
                format!("{ms} ms")
            } else {
                format!("{} ms", trim_float(ms))
            };
            Tick { at: n(y(ms)), label }
        })
        .collect();
    let y_minor = decades.flat_map(|e| [2.0, 5.0].map(|m| m * 10f64.powi(e))).filter(|ms| ms.log10() <= hi).map(|ms| n(y(ms))).collect();
    let mut order: Vec<&(usize, f64)> = lat.iter().filter(|(i, _)| !witness.contains(i)).collect();
    order.extend(lat.iter().filter(|(i, _)| witness.contains(i)));
    let dots = order
        .into_iter()
        .map(|&(i, ms)| {
            let op = &h.ops[i];
            let is_w = witness.contains(&i);
            Dot {
                cx: n(axis.x(op.invoke)),
                cy: n(y(ms)),
                r: if is_w { "4.5" } else { "2.6" },
                class: format!("dot {}{}", kind_name(op.kind), if is_w { " witness" } else { "" }),
                title: op_title(i, op, &lane_name(op.process, h.clients, max_process), is_w),
            }
        })
        .collect();
    let bands = bands(placed);
    Latency {
        width: n(WIDTH),
        height: n(bottom + AXIS_H),
        left: n(LEFT),
        right: n(axis.right()),
        top: n(top),
        bottom: n(bottom),
        band_h: n(LATENCY_PLOT_H),
        plot_w: n(axis.plot_w),
        axis_y: n(bottom),
        tick_mark_y: n(bottom + 4.0),
        tick_label_y: n(bottom + 15.0),
        axis_title_x: n(axis.right()),
        axis_title_y: n(bottom + 29.0),
        x_ticks: axis.ticks(),
        y_ticks,
        y_minor,
        y_label_x: n(LEFT - 6.0),
        dots,
        bands,
        title_y: n(top + LATENCY_PLOT_H / 2.0),
        count: lat.len(),
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Summary;

    fn report(checks: Vec<CheckResult>, history: Option<HistoryReport>) -> RunReport {
        let mut summary = Summary::default();
        for c in &checks {
            summary.add(&c.outcome);
        }
        summary.duration = Duration::from_millis(4321);
        RunReport { lab: "kv-raft".into(), instance: "lab-kv-raft".into(), target: "http://127.0.0.1:8080".into(), checks, summary, history }
    }

    fn check(stage: &str, name: &str, outcome: Outcome) -> CheckResult {
        CheckResult { stage: stage.into(), name: name.into(), expect: format!("{name} works"), outcome, duration: Duration::from_millis(12), notes: vec![], measured: vec![] }
    }

    fn failure(summary: &str) -> Outcome {
        Outcome::Failed(Failure {
            summary: summary.into(),
            sent: "PUT /kv/k1 <b>".into(),
            got: "HTTP 500\n<html>oops</html>".into(),
            expected: "status 204 & \"ok\"".into(),
            hint: "write the value before answering".into(),
            step: 2,
            logs: vec!["panic: <nil> map".into()],
        })
    }

    fn op(process: u32, f: &str, value: serde_json::Value, output: serde_json::Value, kind: OpType, invoke: u64, complete: u64) -> HistoryOp {
        HistoryOp { process, key: "k1".into(), f: f.into(), value, output, kind, invoke, complete, node: 1, answered_by: 2, note: "200 OK".into() }
    }

    fn history() -> HistoryReport {
        use serde_json::json;
        HistoryReport {
            ops: vec![
                op(0, "write", json!("c0-1"), json!(null), OpType::Ok, 1_000_000_000, 2_000_000_000),
                op(1, "read", json!(null), json!("c0-1"), OpType::Ok, 1_500_000_000, 1_600_000_000),
                op(1, "cas", json!(["c0-1", "c1-2"]), json!(null), OpType::Fail, 2_100_000_000, 2_200_000_000),
                op(0, "write", json!("c0-3"), json!(null), OpType::Info, 3_000_000_000, 0),
                op(2, "read", json!(null), json!("c0-1"), OpType::Ok, 5_000_000_000, 5_010_000_000),
            ],
            nemesis: vec![NemesisInterval { fault: "partition".into(), targets: vec!["node1".into(), "node2".into()], start: 2_500_000_000, end: 4_000_000_000 }],
            witness: vec![1, 4],
            clients: 2,
            seed: 42,
        }
    }

    /// The x attribute of the tick labelled `label`.
    fn tick_x(page: &str, label: &str) -> f64 {
        let re = regex::Regex::new(&format!(r#"<text class="tick" x="([0-9.]+)"[^>]*>{}</text>"#, regex::escape(label))).unwrap();
        re.captures(page).unwrap_or_else(|| panic!("no tick {label}")).get(1).unwrap().as_str().parse().unwrap()
    }

    fn op_rects(page: &str) -> Vec<regex::Captures<'_>> {
        let re = regex::Regex::new(r#"<rect class="(op [a-z ]+)" x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)""#).unwrap();
        re.captures_iter(page).collect()
    }

    #[test]
    fn html_escapes_untrusted_strings() {
        let r = report(vec![check("links", "redirect", failure("got <script>alert(1)</script> back"))], None);
        let page = html(&r);
        assert!(!page.contains("<script>alert(1)"), "{page}");
        assert!(!page.contains("<script"), "the page has no script at all");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"), "{page}");
        assert!(page.contains("&lt;html&gt;oops"), "got is escaped");
        assert!(page.contains("panic: &lt;nil&gt; map"), "logs are escaped");
        assert!(page.contains("status 204 &amp; &quot;ok&quot;"), "expected is escaped");
        assert!(page.contains("write the value before answering"), "hint is shown");
        assert!(page.contains("FAILED"));
    }

    #[test]
    fn html_escapes_history_strings() {
        let mut h = history();
        h.ops[0].note = "<img src=x onerror=alert(1)>".into();
        h.ops[0].key = "<k>".into();
        h.nemesis[0].fault = "<svg onload=x>".into();
        let page = html(&report(vec![check("s", "c", Outcome::Passed)], Some(h)));
        assert!(!page.contains("<img"), "notes are escaped");
        assert!(!page.contains("<k>"), "keys are escaped");
        assert!(!page.contains("<svg onload"), "fault names are escaped");
    }

    #[test]
    fn html_without_history_has_no_svg() {
        let r = report(vec![check("links", "create", Outcome::Passed), check("links", "list", Outcome::Skipped { reason: "needs --solution".into() })], None);
        let page = html(&r);
        assert!(!page.contains("<svg"), "{page}");
        assert!(page.contains("PASSED"));
        assert!(page.contains("needs --solution"));
        assert!(page.contains("4.32 s"), "the run's duration");
    }

    #[test]
    fn html_shows_every_check_by_stage() {
        let r = report(
            vec![check("links", "create", Outcome::Passed), check("links", "redirect", failure("wrong status")), check("persistence", "restart", Outcome::Error { message: "no container x".into() })],
            None,
        );
        let page = html(&r);
        let links = page.find(">links<").expect("stage links");
        let persistence = page.find(">persistence<").expect("stage persistence");
        assert!(links < persistence);
        for needle in ["create", "redirect", "wrong status", "no container x", "1 passed, 1 failed", "PUT &#x2F;kv&#x2F;k1 &lt;b&gt;"] {
            assert!(page.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn html_timeline_has_one_bar_per_op_bands_and_witness() {
        let h = history();
        let page = html(&report(vec![check("workload", "linearizable", failure("not linearizable"))], Some(h.clone())));
        assert_eq!(page.matches("<svg").count(), 2, "timeline and latency chart");
        let rects = op_rects(&page);
        assert_eq!(rects.len(), h.ops.len(), "one bar per operation");
        assert_eq!(page.matches("<rect class=\"op ").count(), h.ops.len());
        // Nemesis: one band in each chart, labelled with its fault and targets.
        assert_eq!(page.matches("<rect class=\"band\"").count(), 2);
        assert!(page.contains("partition node1, node2"));
        // The witness: highlighted bars and dots, and a table row each.
        assert_eq!(rects.iter().filter(|c| c[1].contains("witness")).count(), 2);
        assert_eq!(page.matches("class=\"dot ok witness\"").count(), 2);
        assert_eq!(page.matches("<circle class=\"witness-ring\"").count(), 2);
        assert!(page.contains("<table class=\"data witness\""));
        assert_eq!(page.matches("<tr class=\"wrow\"").count(), 2);
        // Lanes: two clients and the final reader.
        assert!(page.contains(">client 0<") && page.contains(">client 1<") && page.contains(">final read<"));
        // Labels and types.
        assert!(page.contains(">w k1 c0-1<"), "a wide bar is labelled");
        assert_eq!(rects.iter().filter(|c| c[1].contains("info open")).count(), 1, "the op that never completed");
        assert_eq!(rects.iter().filter(|c| c[1].starts_with("op fail")).count(), 1);
        // Tooltips carry the details.
        assert!(
            page.contains("<title>#0 client 0 (process 0): write k1\nvalue: c0-1\ntype: ok\ninvoke 1.000 s → complete 2.000 s (1.00 s)\nsent to node 1, answered by node 2\nnote: 200 OK</title>"),
            "{page}"
        );
        // Latency: one dot per completed op.
        assert_eq!(page.matches("<circle class=\"dot ").count(), 4);
    }

    #[test]
    fn html_times_convert_to_the_axis() {
        let page = html(&report(vec![], Some(history())));
        let (t1, t2) = (tick_x(&page, "1 s"), tick_x(&page, "2 s"));
        assert!(t1 < t2);
        let rects = op_rects(&page);
        // The write from 1e9 to 2e9 ns sits between the 1 s and 2 s ticks.
        let bar = rects.iter().find(|c| &c[1] == "op ok").expect("the first write");
        let x: f64 = bar[2].parse().unwrap();
        let w: f64 = bar[3].parse().unwrap();
        assert!((x - t1).abs() < 0.11, "bar starts at {x}, the 1 s tick is at {t1}");
        assert!((x + w - t2).abs() < 0.21, "bar ends at {}, the 2 s tick is at {t2}", x + w);
        // The op that never completed reaches the right edge of the plot.
        let open = rects.iter().find(|c| c[1].contains("open")).unwrap();
        let end = open[2].parse::<f64>().unwrap() + open[3].parse::<f64>().unwrap();
        assert!((end - (WIDTH - RIGHT)).abs() < 0.2, "{end}");
    }

    #[test]
    fn html_axis_steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(6.0), 10.0);
        assert!((nice_step(0.013) - 0.02).abs() < 1e-12);
        let a = TimeAxis::new(60_500_000_000, 1000.0);
        assert_eq!(a.step, 10.0);
        let labels: Vec<String> = a.ticks().into_iter().map(|t| t.label).collect();
        assert_eq!(labels, ["0 s", "10 s", "20 s", "30 s", "40 s", "50 s", "60 s"]);
        assert!((a.x(60_500_000_000) - (LEFT + 1000.0 / 1.01)).abs() < 1e-6, "the last event is near the right edge");
        let small = TimeAxis::new(1_200_000_000, 1000.0);
        let labels: Vec<String> = small.ticks().into_iter().map(|t| t.label).collect();
        assert_eq!(labels, ["0 s", "0.2 s", "0.4 s", "0.6 s", "0.8 s", "1 s", "1.2 s"]);
    }

    #[test]
    fn html_labels_ops_like_the_terminal() {
        use serde_json::json;
        let h = history();
        assert_eq!(op_label(&h.ops[0]), "w k1 c0-1");
        assert_eq!(op_label(&h.ops[1]), "r k1 → c0-1");
        assert_eq!(op_label(&h.ops[2]), "cas k1 c0-1→c1-2");
        let missing = op(0, "read", json!(null), json!(null), OpType::Ok, 0, 1);
        assert_eq!(op_label(&missing), "r k1 → nil");
    }

    #[test]
    fn html_empty_history_and_bad_witness_do_not_break_the_page() {
        let h = HistoryReport { ops: vec![], nemesis: vec![NemesisInterval { fault: "kill".into(), targets: vec![], start: 0, end: 0 }], witness: vec![3], clients: 3, seed: 1 };
        let page = html(&report(vec![], Some(h)));
        assert_eq!(page.matches("<svg").count(), 2);
        assert_eq!(page.matches("<rect class=\"op ").count(), 0);
        assert!(!page.contains("class=\"wrow\""), "an out-of-range witness index is ignored");
        assert!(page.contains(">client 2<"), "every client has a lane");
    }

    #[test]
    fn html_large_history_stays_reasonable() {
        use serde_json::json;
        let ops: Vec<HistoryOp> = (0..5000u64)
            .map(|i| {
                let p = (i % 10) as u32;
                let t = i * 12_000_000;
                op(p, if i % 2 == 0 { "read" } else { "write" }, json!(format!("c{p}-{i}")), json!(null), OpType::Ok, t, t + 9_000_000)
            })
            .collect();
        let h = HistoryReport { ops, nemesis: vec![], witness: vec![10, 20], clients: 10, seed: 0 };
        let page = html(&report(vec![], Some(h)));
        assert_eq!(page.matches("<rect class=\"op ").count(), 5000);
        assert!(!page.contains("class=\"lbl\""), "bars under a pixel wide are not labelled");
        assert!(page.len() < 4_000_000, "{} bytes", page.len());
        if let Ok(p) = std::env::var("LAB_HTML_LARGE") {
            std::fs::write(p, &page).unwrap();
        }
    }

    /// Writes an example page with a realistic history to `LAB_HTML_EXAMPLE`
    /// (run with `LAB_HTML_EXAMPLE=/tmp/r.html cargo test --lib html_example`).
    #[test]
    fn html_example() {
        let Ok(path) = std::env::var("LAB_HTML_EXAMPLE") else {
            return;
        };
        std::fs::write(path, html(&example())).unwrap();
    }

    /// A synthetic run: 5 clients for 20 s against 3 nodes, a partition and a
    /// kill, and a witness of a lost write.
    fn example() -> RunReport {
        use rand::{Rng, SeedableRng};
        use serde_json::json;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let clients = 5u32;
        let mut ops = Vec::new();
        let sec = 1_000_000_000u64;
        let partition = (6 * sec, 11 * sec);
        let kill = (14 * sec, 16 * sec);
        for p in 0..clients {
            let mut t = rng.gen_range(0..200_000_000u64);
            let mut seq = 0;
            while t < 20 * sec {
                seq += 1;
                let key = format!("k{}", rng.gen_range(0..3));
                let node = rng.gen_range(1..=3u32);
                let faulty = (t >= partition.0 && t < partition.1 && node == 3) || (t >= kill.0 && t < kill.1 && node == 1);
                let lat = if faulty {
                    rng.gen_range(900_000_000..1_000_000_000u64)
                } else {
                    let slow = rng.gen_bool(0.1);
                    rng.gen_range(2_000_000..if slow { 400_000_000 } else { 60_000_000 })
                };
                let roll = rng.gen_range(0..10);
                let (f, value) = if roll < 5 {
                    ("read", json!(null))
                } else if roll < 8 {
                    ("write", json!(format!("c{p}-{seq}")))
                } else {
                    ("cas", json!([format!("c{}-{}", rng.gen_range(0..clients), rng.gen_range(1..=seq)), format!("c{p}-{seq}")]))
                };
                let kind = if faulty {
                    if f == "read" {
                        OpType::Fail
                    } else {
                        OpType::Info
                    }
                } else if f == "cas" && rng.gen_bool(0.6) {
                    OpType::Fail
                } else {
                    OpType::Ok
                };
                let output = if f == "read" && kind == OpType::Ok { json!(format!("c{}-{}", rng.gen_range(0..clients), rng.gen_range(1..=seq))) } else { json!(null) };
                let note = match kind {
                    OpType::Ok => "200 OK".to_string(),
                    OpType::Fail if f == "cas" => "409 Conflict".to_string(),
                    _ => "timeout after 1 s".to_string(),
                };
                ops.push(HistoryOp { process: p, key, f: f.into(), value, output, kind, invoke: t, complete: t + lat, node, answered_by: if node == 3 && !faulty { 1 } else { node }, note });
                t += lat + rng.gen_range(50_000_000..300_000_000);
            }
        }
        // One op that never completed.
        ops.push(HistoryOp {
            process: 2,
            key: "k2".into(),
            f: "write".into(),
            value: json!("c2-<99>"),
            output: json!(null),
            kind: OpType::Info,
            invoke: 20 * sec + 100_000_000,
            complete: 0,
            node: 2,
            answered_by: 2,
            note: "connection reset".into(),
        });
        for (i, key) in ["k0", "k1", "k2"].iter().enumerate() {
            let t = 21 * sec + i as u64 * 30_000_000;
            ops.push(HistoryOp {
                process: clients,
                key: key.to_string(),
                f: "read".into(),
                value: json!(null),
                output: json!(format!("c1-{}", i + 2)),
                kind: OpType::Ok,
                invoke: t,
                complete: t + 8_000_000,
                node: 1,
                answered_by: 1,
                note: "200 OK".into(),
            });
        }
        ops.sort_by_key(|o| (o.invoke, o.process));
        let w1 = ops.iter().position(|o| o.f == "write" && o.kind == OpType::Ok && o.invoke > 7 * sec).unwrap();
        let w2 = ops.iter().position(|o| o.f == "read" && o.kind == OpType::Ok && o.invoke > 12 * sec).unwrap();
        let history = HistoryReport {
            ops,
            nemesis: vec![
                NemesisInterval { fault: "partition".into(), targets: vec!["lab-kv-raft-node3".into()], start: partition.0, end: partition.1 },
                NemesisInterval { fault: "kill".into(), targets: vec!["lab-kv-raft-node1".into()], start: kill.0, end: kill.1 },
                NemesisInterval { fault: "pause".into(), targets: vec!["lab-kv-raft-node2".into()], start: kill.0 + 500_000_000, end: kill.1 + 200_000_000 },
            ],
            witness: vec![w1, w2],
            clients,
            seed: 1234,
        };
        report(
            vec![
                check("basics", "put-get", Outcome::Passed),
                check("basics", "delete", Outcome::Passed),
                check("replication", "follower-redirects", Outcome::Skipped { reason: "the lab has no leader header".into() }),
                check("workload", "linearizable", failure("key k1: the read of c0-1 at 12.3 s cannot follow the acknowledged write of c2-5 <script>alert(1)</script>")),
                check("workload", "no-lost-writes", Outcome::Error { message: "lab could not heal the partition: docker exec failed".into() }),
            ],
            Some(history),
        )
    }
}
