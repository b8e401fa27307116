//! The URL-shortener lab end to end on the real Docker engine: the reference
//! solution passes every check; each realistic bug fails at the right check
//! with a message a learner can act on.

mod common;

use common::*;

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("url-shortener", Some("good"));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "good", "--output", "json", "--solution"]).arg(shortener());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 10);
    assert_eq!(report["summary"]["failed"], 0);
    // verify brought the instance up, so it took it down again.
    assert_gone("lab-url-shortener--good");
}

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&SHORTENER_VARIANTS, SHORTENER_BUGS);
}

#[test]
fn junit_report_names_every_check() {
    let _down = Down("url-shortener", Some("junit"));
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "junit", "--env", "SHORTENER_BUG=redirect-301", "--solution"]).arg(shortener()).arg("--report").arg(&xml);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains(r#"<testcase name="redirect""#), "{text}");
    assert!(text.contains("<failure message=\"the request got status 301 Moved Permanently; expected status 302 Found\""), "{text}");
    // Later stages depend on links and are skipped, not failed.
    assert!(text.contains(r#"<testcase name="survives-restart""#) && text.contains("<skipped"), "{text}");
    let term = stdout(&out);
    assert!(term.contains("✗ redirect"), "{term}");
    assert!(term.contains("hint:"), "{term}");
}
