//! A third-party Raft key-value store, brought up, broken and judged by lab
//! with nothing but lab.yaml files: no wrapper script, no lab contract.
//!
//! The store is tests/stores/textkv (hashicorp/raft, flags only, raw text
//! values, no health route, leadership only in Prometheus metrics, a
//! plain-text /status page and a header). It is built here with Go (GOPATH
//! mode, Debian's libraries) into a folder holding the executable and the
//! textkv.conf it reads from its own folder, and handed to lab as that folder
//! or as a .tar.gz of it. The labs are tests/labs/textkv* (`--labs`):
//!
//! - textkv: leader by the metric `textkv_is_leader` (`is: "1"`), forwarding;
//! - textkv-unsafe: the same store with --ack-before-commit --local-reads,
//!   leader by the labelled series `textkv_raft_state{state="leader"}`;
//! - textkv-redirect: followers answer 307 + X-Raft-Leader, leader by a
//!   regex over the plain-text /status, matched against each node's `id`;
//! - textkv-header: leader by the X-Raft-Leader header.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the store is built and packed, for this test binary's runs.
fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("third-party")
}

/// The store built once per run (tests/common): a folder holding `textkv`
/// and `textkv.conf`.
fn dist() -> &'static Path {
    textkv_dist()
}

/// The same folder as a .tar.gz (`./textkv`, `./textkv.conf`).
fn archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dist = dist();
        let path = work().join("textkv-dist.tar.gz");
        let file = std::fs::File::create(&path).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
        tar.append_dir_all(".", dist).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        path
    })
}

/// `lab --labs tests/labs ...`, debian images.
fn tlab() -> Command {
    let mut c = lab();
    c.arg("--labs").arg(root().join("tests/labs"));
    c
}

/// Takes an instance down however the test ends, then checks nothing is left.
struct Down {
    lab: &'static str,
    student: &'static str,
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = tlab().args(["down", self.lab, "--student", self.student]).output();
        if !std::thread::panicking() {
            assert_gone(&format!("lab-{}--{}", self.lab, self.student));
        }
    }
}

fn verify(lab_name: &'static str, student: &'static str, solution: &Path) -> (Output, serde_json::Value, Duration) {
    let _down = Down { lab: lab_name, student };
    let t = Instant::now();
    let mut c = tlab();
    c.args(["verify", lab_name, "--images", "debian", "--student", student, "--output", "json", "--solution"]).arg(solution);
    let out = run(c);
    let took = t.elapsed();
    eprintln!("lab verify {lab_name} took {took:?}");
    let report = json(&out);
    (out, report, took)
}

fn status_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    check(report, name)["status"].as_str().unwrap_or_default()
}

fn failed(report: &serde_json::Value) -> Vec<String> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "failed").map(|c| c["name"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn the_store_passes_every_check_from_its_lab_yaml_alone() {
    let (out, report, _) = verify("textkv", "tp-good", dist());
    assert_eq!(out.status.code(), Some(0), "failed: {:?}\n{report:#}", failed(&report));
    for name in ["leader-elected", "put-then-get", "followers-forward", "missing-key", "survives-full-restart", "no-lost-writes", "linearizable"] {
        assert_eq!(status_of(&report, name), "passed", "{name}\n{report:#}");
    }
    let history = &report["history"];
    let ops = history["ops"].as_array().unwrap();
    assert!(ops.len() > 100, "a real workload ran: {} ops", ops.len());
    // The schedule slides when the machine is loaded (each fault starts once
    // the one before is healed), so the last one (a pause at 6.5 s) may fall
    // after the workload ends: the partition and the kill must have struck.
    let faults: Vec<&str> = history["nemesis"].as_array().unwrap().iter().filter_map(|f| f["fault"].as_str()).collect();
    assert!(faults.starts_with(&["partition", "kill"]), "the nemesis struck: {}", history["nemesis"]);
    // Raw text bodies were read as values: reads returned the workload's own values.
    let read_values = ops.iter().filter(|o| o["f"] == "read" && o["type"] == "ok" && o["output"].as_str().is_some_and(|v| v.starts_with('c') && v.contains('-'))).count();
    assert!(read_values > 10, "reads returned the written text values: {read_values}\n{}", serde_json::to_string(&ops[..ops.len().min(20)]).unwrap());
}

#[test]
fn the_unsafe_flags_are_caught_by_the_history_checks() {
    let (out, report, _) = verify("textkv-unsafe", "tp-unsafe", dist());
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    // The store starts and its leader is found through the labelled series:
    // what failed is the store's consistency, not the setup. (A follower's
    // local read right after a forwarded write may already fail
    // followers-forward: a stale read too.)
    for name in ["leader-elected", "put-then-get", "missing-key"] {
        assert_eq!(status_of(&report, name), "passed", "{name}\n{report:#}");
    }
    let failed = failed(&report);
    let caught: Vec<&serde_json::Value> = ["linearizable", "no-lost-writes"].iter().map(|n| check(&report, n)).filter(|c| c["status"] == "failed").collect();
    assert!(!caught.is_empty(), "neither linearizable nor no-lost-writes failed; failed: {failed:?}\n{report:#}");
    for c in caught {
        let summary = c["summary"].as_str().unwrap_or_default();
        let got = c["got"].as_str().unwrap_or_default();
        assert!(summary.contains("not linearizable") || summary.contains("lost") || summary.contains("did not agree"), "{}: {summary}", c["name"]);
        assert!(!got.is_empty(), "{}: the checker explains what it saw\n{c:#}", c["name"]);
        assert!(!c["hint"].as_str().unwrap_or_default().is_empty(), "{}: a hint", c["name"]);
        eprintln!("{} failed: {summary}\n{got}", c["name"]);
    }
}

#[test]
fn followers_that_redirect_are_followed_and_the_leader_is_read_from_status_text() {
    let (out, report, _) = verify("textkv-redirect", "tp-redirect", dist());
    assert_eq!(out.status.code(), Some(0), "failed: {:?}\n{report:#}", failed(&report));
    assert_eq!(status_of(&report, "follower-redirects"), "passed", "{report:#}");
    let ops = report["history"]["ops"].as_array().unwrap();
    let redirected = ops.iter().filter(|o| o["node"] != o["answered_by"]).count();
    assert!(redirected > 0, "no operation was redirected");
}

/// A node's host port for the store's port 9000.
fn host_port(container: &str) -> u16 {
    let out = Command::new("docker").args(["port", container, "9000"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("{container} publishes port 9000"))
}

fn get(port: u16, path: &str) -> Option<(String, String)> {
    let out = Command::new("curl").args(["-s", "-m", "2", "-D", "-", &format!("http://127.0.0.1:{port}{path}")]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n")?;
    Some((head.to_string(), body.to_string()))
}

/// The node (1-based) whose metrics say it leads, among `alive`, within 15 s.
fn metric_leader(ports: &[u16], alive: &[usize]) -> usize {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        let leaders: Vec<usize> = alive.iter().copied().filter(|&n| get(ports[n - 1], "/metrics").is_some_and(|(_, b)| b.lines().any(|l| l == "textkv_is_leader 1"))).collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no single node of {alive:?} reported textkv_is_leader 1 within 15 s");
}

/// `lab up` of a lab, `lab chaos <lab> kill leader`: the node killed is the
/// one the store itself says leads, and the two others elect a new one.
fn kill_the_leader(lab_name: &'static str, student: &'static str, solution: &Path) {
    let _down = Down { lab: lab_name, student };
    let t = Instant::now();
    let mut c = tlab();
    c.args(["up", lab_name, "--images", "debian", "--student", student, "--solution"]).arg(solution);
    let out = run(c);
    assert!(out.status.success(), "lab up {lab_name} --solution {}", solution.display());
    eprintln!("lab up {lab_name} took {:?}", t.elapsed());
    let names: Vec<String> = (1..=3).map(|n| format!("lab-{lab_name}--{student}-kv-{n}")).collect();
    let ports: Vec<u16> = names.iter().map(|c| host_port(c)).collect();

    // The folder's other file came along: textkv found its textkv.conf next to itself.
    let (_, status) = get(ports[0], "/status").expect("/status answers");
    let conf = status.lines().find_map(|l| l.strip_prefix("conf: ")).unwrap_or_default();
    assert!(conf.ends_with("/textkv.conf"), "textkv read no textkv.conf from its folder:\n{status}");

    // One node's log, by its name in the instance.
    let mut c = tlab();
    c.args(["logs", lab_name, "kv-2", "--student", student, "--tail", "50"]);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.trim().is_empty() && !text.contains("kv-1 |"), "lab logs {lab_name} kv-2:\n{text}");

    let leader = metric_leader(&ports, &[1, 2, 3]);
    let t = Instant::now();
    let mut c = tlab();
    c.args(["chaos", lab_name, "kill", "leader", "--student", student]);
    let out = run(c);
    assert!(out.status.success(), "lab chaos {lab_name} kill leader");
    eprintln!("lab chaos {lab_name} kill leader took {:?}", t.elapsed());
    for (n, name) in names.iter().enumerate() {
        let state = container_state(name);
        if n + 1 == leader {
            assert_ne!(state, "running", "the leader, node {leader}, was killed");
        } else {
            assert_eq!(state, "running", "{name}: only the leader is killed");
        }
    }
    let others: Vec<usize> = (1..=3).filter(|&n| n != leader).collect();
    let t = Instant::now();
    let new = metric_leader(&ports, &others);
    eprintln!("node {new} leads {:?} after node {leader} was killed", t.elapsed());
    // The surviving majority still serves writes and raw reads.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "after the kill", &format!("http://127.0.0.1:{}/kv/after", ports[others[0] - 1])])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    let (_, body) = get(ports[others[1] - 1], "/kv/after").expect("a read answers");
    assert_eq!(body, "after the kill");
    let mut c = tlab();
    c.args(["down", lab_name, "--student", student]);
    assert!(run(c).status.success());
}

#[test]
fn an_archive_of_the_folder_runs_and_chaos_kills_the_leader_the_metric_names() {
    kill_the_leader("textkv", "tp-archive", archive());
}

#[test]
fn the_leader_is_found_through_a_response_header() {
    kill_the_leader("textkv-header", "tp-header", dist());
}

#[test]
fn the_test_labs_are_valid() {
    let mut c = tlab();
    c.args(["validate"]).args(["textkv", "textkv-unsafe", "textkv-redirect", "textkv-header"].map(|l| root().join("tests/labs").join(l)));
    let out = run(c);
    assert!(out.status.success(), "lab validate tests/labs/textkv*");
}
