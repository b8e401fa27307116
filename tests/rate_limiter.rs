//! The rate-limiter lab end to end on the real Docker engine: three instances
//! of the reference solution sharing one Redis pass every check; each
//! realistic bug fails at the check a mentor would name; a hostile fake
//! service (hanging, flooding, answering garbage, limiting nothing) fails its
//! checks without hanging `lab verify`; each check alone gives the verdict of
//! the whole run.

mod common;

use std::time::Duration;

use common::*;

fn limiter() -> std::path::PathBuf {
    root().join("tests/solutions/rate-limiter")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("rate-limiter", Some("good"));
    let mut c = lab();
    c.args(["verify", "rate-limiter", "--student", "good", "--output", "json", "--solution"]).arg(limiter());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");
    // The burst admitted exactly the limit, over all three instances.
    let race = check(&report, "atomic-at-the-limit");
    assert_eq!(race["status"], "passed");
    assert_gone("lab-rate-limiter--good");
}

static VARIANTS: Variants = Variants {
    lab: "rate-limiter",
    var: "RATELIMIT_BUG",
    solution: "tests/solutions/rate-limiter",
    prefix: "bug",
    at_once: 3,
    stagger: Duration::ZERO,
    passing: &["healthz", "requires-api-key"],
    within: Some(Duration::from_secs(120)),
    also: nothing_more,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, RATE_LIMITER_BUGS);
}

/// A fake service: /healthz answers 200; the API hangs, floods, answers bytes that are not HTTP, or admits everything (no limit at all).
#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("rate-limiter", Some("hostile"));
    hostile_run(
        "rate-limiter",
        "hostile",
        &[
            (Hostile::Hang, "hang", "the service hung"),
            (Hostile::Flood(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"ok\": \""), "flood", ""),
            (Hostile::Garbage, "garbage", ""),
            (
                Hostile::Answer(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ratelimit-limit: 10\r\nx-ratelimit-remaining: 9\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"ok\": true}",
                ),
                "no limit",
                "X-RateLimit-Remaining",
            ),
        ],
        "limit-per-client",
        "atomic-at-the-limit",
        Duration::from_secs(60),
    );
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("rate-limiter", &limiter(), "alone");
    assert_eq!(took.len(), 10);
}
