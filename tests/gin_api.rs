//! The gin-api lab end to end on the real Docker engine (PostgreSQL from the
//! debian image set, reached through lab's fault proxy): the reference
//! solution passes every check; each realistic bug fails at the check a mentor
//! would name; a hostile fake service fails its checks without hanging `lab
//! verify`; each check alone gives the verdict of the whole run.

mod common;

use std::time::Duration;

use common::*;

fn api() -> std::path::PathBuf {
    root().join("tests/solutions/gin-api")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("gin-api", Some("good"));
    let mut c = lab();
    c.args(["verify", "gin-api", "--student", "good", "--output", "json", "--solution"]).arg(api());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");
    assert_gone("lab-gin-api--good");
}

static VARIANTS: Variants = Variants {
    lab: "gin-api",
    var: "GINAPI_BUG",
    solution: "tests/solutions/gin-api",
    prefix: "bug",
    at_once: 2,
    // Two PostgreSQLs starting at once on two cores take their time.
    stagger: Duration::from_secs(5),
    passing: &["healthz", "create-account", "field-errors"],
    within: Some(Duration::from_secs(150)),
    also: earlier_checks_passed,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, GIN_API_BUGS);
}

/// A fake service: /healthz answers 200; the rest hangs, floods, or answers bytes that are not HTTP.
#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("gin-api", Some("hostile"));
    hostile_run(
        "gin-api",
        "hostile",
        &[
            (Hostile::Hang, "hang", "the service hung"),
            (Hostile::Flood(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"id\": 1, \"owner\": \""), "flood", ""),
            (Hostile::Garbage, "garbage", ""),
        ],
        "create-account",
        "deposit-and-transfer",
        Duration::from_secs(90),
    );
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("gin-api", &api(), "alone");
    assert_eq!(took.len(), 10);
}
