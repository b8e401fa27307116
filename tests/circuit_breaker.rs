//! The circuit-breaker lab end to end on the real Docker engine, against lab's
//! own programmable upstream: the reference solution passes every check; each
//! realistic bug fails at the check a mentor would name; a hostile fake
//! service fails its checks without hanging `lab verify`; each check alone
//! gives the verdict of the whole run.

mod common;

use std::time::Duration;

use common::*;

fn breaker() -> std::path::PathBuf {
    root().join("tests/solutions/circuit-breaker")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("circuit-breaker", Some("good"));
    let mut c = lab();
    c.args(["verify", "circuit-breaker", "--student", "good", "--output", "json", "--solution"]).arg(breaker());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 8, "{report:#}");
    assert_gone("lab-circuit-breaker--good");
}

static VARIANTS: Variants = Variants {
    lab: "circuit-breaker",
    var: "BREAKER_BUG",
    solution: "tests/solutions/circuit-breaker",
    prefix: "bug",
    at_once: 3,
    stagger: Duration::ZERO,
    passing: &["healthz", "passes-through"],
    within: Some(Duration::from_secs(120)),
    also: earlier_checks_passed,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, CIRCUIT_BREAKER_BUGS);
}

/// A fake service: /healthz answers 200; the rest hangs, floods, answers bytes that are not HTTP, or answers 200 whatever the upstream does (a cache that never calls it).
#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("circuit-breaker", Some("hostile"));
    hostile_run(
        "circuit-breaker",
        "hostile",
        &[
            (Hostile::Hang, "hang", "the service hung"),
            (Hostile::Flood(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"quote\": \""), "flood", ""),
            (Hostile::Garbage, "garbage", ""),
            (Hostile::Answer(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\nconnection: close\r\n\r\n{\"state\": \"closed\"}"), "never calls", "/quote"),
        ],
        "passes-through",
        "opens-after-failures",
        Duration::from_secs(60),
    );
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("circuit-breaker", &breaker(), "alone");
    assert_eq!(took.len(), 8);
}
