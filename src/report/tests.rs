use std::time::Duration;

use super::*;
use crate::event::{CheckResult, Failure, Outcome, RunReport, Summary};

fn sample() -> RunReport {
    let checks = vec![
        CheckResult {
            stage: "links".into(),
            name: "create-link".into(),
            expect: "POST /api/links answers 201".into(),
            outcome: Outcome::Passed,
            duration: Duration::from_millis(12),
            notes: vec![],
            measured: vec![],
        },
        CheckResult {
            stage: "links".into(),
            name: "redirect".into(),
            expect: "GET /{code} answers 302 Found".into(),
            outcome: Outcome::Failed(Failure {
                summary: "the request got status 301 Moved Permanently; expected status 302 Found".into(),
                sent: "GET /abc123".into(),
                got: "HTTP 301 Moved Permanently after 3 ms\nlocation: https://example.org/".into(),
                expected: "status 302 Found".into(),
                hint: "use http.StatusFound".into(),
                step: 2,
                logs: vec!["GET /abc123 301".into()],
            }),
            duration: Duration::from_millis(7),
            notes: vec![],
            measured: vec![],
        },
        CheckResult {
            stage: "persistence".into(),
            name: "survives-restart".into(),
            expect: "links survive".into(),
            outcome: Outcome::Skipped { reason: "it restarts the service, which lab does not run with --target".into() },
            duration: Duration::ZERO,
            notes: vec![],
            measured: vec![],
        },
        CheckResult {
            stage: "persistence".into(),
            name: "redis-recovers".into(),
            expect: "it recovers".into(),
            outcome: Outcome::Error { message: "step 2: no container x".into() },
            duration: Duration::from_millis(1),
            notes: vec![],
            measured: vec![],
        },
    ];
    let mut summary = Summary::default();
    for c in &checks {
        summary.add(&c.outcome);
    }
    summary.duration = Duration::from_millis(1234);
    RunReport { lab: "url-shortener".into(), instance: "lab-url-shortener".into(), target: "http://127.0.0.1:1234".into(), checks, summary, history: None }
}

#[test]
fn terminal_report() {
    insta::assert_snapshot!(render(&sample(), Format::Terminal));
}

#[test]
fn json_report() {
    let text = render(&sample(), Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["summary"]["failed"], 1);
    assert_eq!(v["checks"][1]["status"], "failed");
    insta::assert_snapshot!(text);
}

#[test]
fn junit_report() {
    let xml = render(&sample(), Format::Junit);
    assert!(xml.contains(r#"<testsuite name="url-shortener.links" tests="2""#), "{xml}");
    insta::assert_snapshot!(xml);
}

#[test]
fn github_report() {
    let text = render(&sample(), Format::Github);
    // One annotation per failed check and per check lab could not run, titled by the check.
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("::error ")).collect();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(errors[0].starts_with("::error title=redirect::the request got status 301"), "{text}");
    // A message's lines are one command's: newlines escaped.
    assert!(errors[0].contains("%0Ahint: use http.StatusFound"), "{text}");
    assert_eq!(text.matches("::group::").count(), 2);
    assert_eq!(text.matches("::endgroup::").count(), 2);
    insta::assert_snapshot!(text);
}

#[test]
fn github_commands_escape_what_would_end_them() {
    assert_eq!(super::github::data("50% done\r\nnext"), "50%25 done%0D%0Anext");
    assert_eq!(super::github::property("a: b, c"), "a%3A b%2C c");
}

#[test]
fn a_report_passes_only_without_failures_and_errors() {
    let mut r = sample();
    assert!(!r.passed());
    r.checks.retain(|c| matches!(c.outcome, Outcome::Passed | Outcome::Skipped { .. }));
    r.summary = Summary { passed: 1, skipped: 1, ..Default::default() };
    assert!(r.passed());
}
