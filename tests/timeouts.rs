//! The timeouts lab end to end on the real Docker engine, against lab's own
//! programmable upstream behind lab's fault proxy: the reference solution
//! passes every check; each realistic bug fails at the check a mentor would
//! name; a hostile fake service fails its checks without hanging `lab verify`;
//! each check alone gives the verdict of the whole run.

mod common;

use std::time::Duration;

use common::*;

fn service() -> std::path::PathBuf {
    root().join("tests/solutions/timeouts")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("timeouts", Some("good"));
    let mut c = lab();
    c.args(["verify", "timeouts", "--student", "good", "--output", "json", "--solution"]).arg(service());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 9, "{report:#}");
    assert_gone("lab-timeouts--good");
}

static VARIANTS: Variants = Variants {
    lab: "timeouts",
    var: "TIMEOUTS_BUG",
    solution: "tests/solutions/timeouts",
    prefix: "bug",
    at_once: 3,
    stagger: Duration::ZERO,
    passing: &["healthz", "fetch-ok", "goroutines-published"],
    within: Some(Duration::from_secs(120)),
    also: earlier_checks_passed,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, TIMEOUTS_BUGS);
}

/// A fake service: /healthz answers 200; the rest hangs, floods, or answers bytes that are not HTTP.
#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("timeouts", Some("hostile"));
    hostile_run(
        "timeouts",
        "hostile",
        &[(Hostile::Hang, "hang", "the service hung"), (Hostile::Flood(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"data\": \""), "flood", ""), (Hostile::Garbage, "garbage", "")],
        "fetch-ok",
        "upstream-hangs",
        Duration::from_secs(60),
    );
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("timeouts", &service(), "alone");
    assert_eq!(took.len(), 9);
}
