//! The Raft lab end to end on the real Docker engine: the reference solution
//! passes every check under the lab's nemesis (seed 20261127, 12 s workload);
//! each realistic bug is caught by the check made for it.

mod common;

use common::*;

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
    assert_gone(&format!("lab-raft-{student}"));
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

/// (bug, checks of which at least one must fail)
const BUGS: &[(&str, &[&str])] = &[
    ("stale-reads", &["linearizable"]),
    // Acknowledged early, the PUT's entry can land after the cas changed the
    // map, so the bug shows either as a non-atomic cas or as a leader alone
    // acknowledging a write.
    ("ack-before-commit", &["no-ack-without-majority", "compare-and-set"]),
    ("lose-data-on-restart", &["survives-full-restart"]),
    ("no-forward", &["follower-accepts-writes"]),
];

#[test]
fn each_buggy_variant_is_caught_by_its_check() {
    for (bug, checks) in BUGS {
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
    assert_gone("lab-raft-redirect-redirect");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    // Some operations reached a follower first and were answered by the leader.
    let redirected = report["history"]["ops"].as_array().unwrap().iter().filter(|o| o["node"] != o["answered_by"]).count();
    assert!(redirected > 0, "no operation was redirected");
}
