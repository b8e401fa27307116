//! The Raft lab end to end on the real Docker engine: the reference solution
//! passes every check under the lab's nemesis (seed 20261127, 12 s workload);
//! each realistic bug is caught by the check made for it.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn raft() -> std::path::PathBuf {
    root().join("tests/solutions/raft-kv")
}

fn verify(student: &str, bug: Option<&str>) -> (Option<i32>, serde_json::Value) {
    let mut c = lab();
    c.args(["verify", "raft", "--student", student, "--output", "json", "--solution"]).arg(raft());
    if let Some(b) = bug {
        c.args(["--env", &format!("RAFT_BUG={b}")]);
    }
    let out = run(c);
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_lab")).args(["down", "raft", "--student", student]).output();
    assert_gone(&format!("lab-raft--{student}"));
    (out.status.code(), json(&out))
}

#[test]
fn the_reference_solution_passes_under_faults() {
    let (code, report) = verify("good", None);
    assert_eq!(code, Some(0), "{report:#}");
    let history = &report["history"];
    assert!(history["ops"].as_array().unwrap().len() > 100, "a real workload ran");
    assert!(history["nemesis"].as_array().unwrap().len() >= 3, "the nemesis struck: {}", history["nemesis"]);
}

#[test]
fn each_buggy_variant_is_caught_by_its_check() {
    for (bug, checks) in RAFT_BUGS {
        let (code, report) = verify(&format!("bug-{bug}"), Some(bug));
        assert_eq!(code, Some(1), "{bug}: {report:#}");
        let failed: Vec<&str> = report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "failed").map(|c| c["name"].as_str().unwrap()).collect();
        assert!(checks.iter().any(|c| failed.contains(c)), "{bug}: expected one of {checks:?} to fail, failed: {failed:?}\n{report:#}");
        for c in report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "failed") {
            assert!(!c["hint"].as_str().unwrap_or("").is_empty(), "{bug}: {} has no hint", c["name"]);
        }
    }
}

#[test]
fn a_second_mapping_drives_the_same_service_through_redirects() {
    let student = "redirect";
    let mut c = lab();
    c.args(["verify", "raft-redirect", "--student", student, "--output", "json", "--solution"]).arg(raft());
    let out = run(c);
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_lab")).args(["down", "raft-redirect", "--student", student]).output();
    assert_gone("lab-raft-redirect--redirect");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    // Some operations reached a follower first and were answered by the leader.
    let redirected = report["history"]["ops"].as_array().unwrap().iter().filter(|o| o["node"] != o["answered_by"]).count();
    assert!(redirected > 0, "no operation was redirected");
}

fn curl(args: &[&str]) -> (String, Duration) {
    let t = std::time::Instant::now();
    let out = std::process::Command::new("curl").args(["-s", "-m", "5"]).args(args).output().unwrap();
    (String::from_utf8_lossy(&out.stdout).to_string(), t.elapsed())
}

fn host_port(container: &str) -> u16 {
    let out = std::process::Command::new("docker").args(["port", container, "8080"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.trim().parse().ok()).expect("a published port")
}

/// The leader's node number as node `via` sees it, if any.
fn leader(ports: &[u16], via: usize) -> Option<usize> {
    let (body, _) = curl(&[&format!("http://127.0.0.1:{}/status", ports[via - 1])]);
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["leader"].as_str()?.trim_start_matches('n').parse().ok()
}

/// The fastest of three writes through node `n`.
fn put_time(ports: &[u16], n: usize) -> Duration {
    (0..3).map(|i| curl(&["-X", "PUT", "-d", &format!(r#"{{"value":"{i}"}}"#), &format!("http://127.0.0.1:{}/kv/links", ports[n - 1])]).1).min().unwrap()
}

#[test]
fn links_between_nodes_are_slowed_and_cut_through_the_fault_proxy() {
    let student = "links";
    let _down = Down("raft", Some(student));
    let mut c = lab();
    c.args(["up", "raft", "--student", student, "--solution"]).arg(raft());
    assert!(run(c).status.success());
    let ports: Vec<u16> = (1..=3).map(|n| host_port(&format!("lab-raft--{student}-app-{n}"))).collect();
    let wait_leader = |via: usize, not: Option<usize>| {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            match leader(&ports, via) {
                Some(l) if Some(l) != not => return l,
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        panic!("node {via} saw no leader (other than {not:?}) within 15 s");
    };
    let l = wait_leader(1, None);
    let before = put_time(&ports, l);
    assert!(before < Duration::from_millis(150), "a write commits quickly without faults: {before:?}");

    // 200 ms on what the leader sends: each commit waits for a follower's ack.
    let mut c = lab();
    c.args(["chaos", "raft", "slow-leader", "--student", student]);
    assert!(run(c).status.success());
    let slow = put_time(&ports, l);
    assert!(slow >= Duration::from_millis(200), "the leader's links are slowed: {slow:?}");
    // The learner's service cannot heal the fault that slows it: the proxy's
    // control port refuses a node of the instance network, token or not.
    let from_node = Command::new("docker")
        .args(["exec", &format!("lab-raft--{student}-app-{l}"), "bash", "-c"])
        .arg(r#"exec 3<>/dev/tcp/proxy/8474 && echo '{"cmd":"clear","link":"*","direction":null}' >&3 && head -n1 <&3"#)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&from_node.stdout);
    assert!(said.contains("\"ok\":false") && said.contains("takes only lab on the host"), "{said} {}", String::from_utf8_lossy(&from_node.stderr));
    let still = put_time(&ports, l);
    assert!(still >= Duration::from_millis(200), "the fault is still in force: {still:?}");
    let mut c = lab();
    c.args(["chaos", "raft", "heal", "--student", student]);
    assert!(run(c).status.success());
    let after = put_time(&ports, l);
    assert!(after < Duration::from_millis(150), "heal restores the links: {after:?}");

    // Split the leader from the two others: they elect one of themselves.
    let others: Vec<String> = (1..=3).filter(|n| *n != l).map(|n| n.to_string()).collect();
    let split = format!("{l}|{}", others.join(","));
    let mut c = lab();
    c.args(["chaos", "raft", "partition", "--split", &split, "--student", student]);
    assert!(run(c).status.success());
    let via: usize = others[0].parse().unwrap();
    let new = wait_leader(via, Some(l));
    assert_ne!(new, l, "the majority side elected a new leader");
    let mut c = lab();
    c.args(["chaos", "raft", "heal", "--student", student]);
    assert!(run(c).status.success());
}

/// Ctrl-C during `lab verify raft` on an instance that is up, while a check
/// holds the leader partitioned: exit 130, and nothing of the run is left in
/// force (no chain in any node, no paused or stopped node, no record).
#[test]
fn an_interrupted_verify_reverts_the_faults_it_made() {
    let student = "intr";
    let inst = format!("lab-raft--{student}");
    let _down = Down("raft", Some(student));
    let mut c = lab();
    c.args(["up", "raft", "--student", student, "--solution"]).arg(raft());
    assert!(run(c).status.success());
    let mut c = lab();
    c.args(["verify", "raft", "--student", student]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let child = c.spawn().unwrap();
    let t = std::time::Instant::now();
    let partitioned = || docker_names("volume", &format!("label=lab.instance={inst}")).iter().any(|v| v.contains("-fault-partition-"));
    while !partitioned() && t.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(partitioned(), "verify never partitioned a node");
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(docker_names("volume", &format!("label=lab.instance={inst}")).is_empty(), "fault records left");
    for n in 1..=3 {
        let node = format!("{inst}-app-{n}");
        assert_eq!(container_state(&node), "running", "{node}");
        assert!(lab_chains(&node).is_empty(), "{node}: {:?}", lab_chains(&node));
    }
    // The instance stayed up with the interrupted run's values in it: a new
    // run uses keys of its own (and the seed it is given), and passes.
    let mut c = lab();
    c.args(["verify", "raft", "--student", student, "--output", "json", "--seed", "7"]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["history"]["seed"], 7, "{:#}", report["history"]["seed"]);
    let key = report["history"]["ops"][0]["key"].as_str().unwrap_or_default().to_string();
    assert!(key.len() > 3 && key.contains("-k"), "keys carry the run's id: {key}");
}

/// Each check alone (`--check`) gives the verdict it has in the whole run.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("raft", &raft(), "alone");
}
