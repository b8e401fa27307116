//! The memlimit lab end to end on the real Docker engine: the reference
//! solution lives through the load in its 200 MiB container; a service without
//! a Go memory limit is killed by the kernel and the failure says so (not "did
//! not answer"); a hostile fake service fails without hanging `lab verify`;
//! each check alone gives the verdict of the whole run.

mod common;

use std::time::Duration;

use common::*;

fn service() -> std::path::PathBuf {
    root().join("tests/solutions/memlimit")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("memlimit", Some("good"));
    let mut c = lab();
    c.args(["verify", "memlimit", "--student", "good", "--output", "json", "--solution"]).arg(service());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 4, "{report:#}");
    assert_gone("lab-memlimit--good");
}

const KILLED: &str = "app-1 was killed by the kernel for memory (OOMKilled), at its limit of 200 MiB";

/// (bug, the check that must fail, words its message must contain).
const BUGS: &[(&str, &str, &str)] = &[("no-memlimit", "survives-the-load", KILLED), ("host-memory", "survives-the-load", KILLED)];

/// The container's own record: killed for memory, not exited of itself.
fn oom_is_the_cause(bug: &str, _: &str, report: &serde_json::Value, ch: &serde_json::Value) {
    let summary = ch["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with(KILLED), "{bug}: the kill comes first, before what the requests got: {summary}");
    // Later checks name the kill too, instead of a bare "could not connect".
    let limits = check(report, "reports-the-limit");
    assert!(limits["summary"].as_str().unwrap_or_default().contains(KILLED), "{bug}: {limits:#}");
}

static VARIANTS: Variants = Variants {
    lab: "memlimit",
    var: "MEMLIMIT_BUG",
    solution: "tests/solutions/memlimit",
    prefix: "bug",
    at_once: 2,
    stagger: Duration::ZERO,
    passing: &["healthz", "docs-and-transform"],
    within: Some(Duration::from_secs(120)),
    also: oom_is_the_cause,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, BUGS);
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("memlimit", &service(), "alone");
    assert_eq!(took.len(), 4);
}

/// A fake service (hanging, flooding, answering garbage) fails the first
/// check without hanging `lab verify`; the memory stage is skipped.
#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("memlimit", Some("hostile"));
    hostile_run(
        "memlimit",
        "hostile",
        &[
            (Hostile::Hang, "hang", "the service hung"),
            (Hostile::Flood(b"HTTP/1.1 204 No Content\r\ncontent-type: application/json\r\n\r\n{\"x\": \""), "flood", ""),
            (Hostile::Garbage, "garbage", ""),
        ],
        "docs-and-transform",
        "survives-the-load",
        Duration::from_secs(60),
    );
}
