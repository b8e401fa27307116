//! JUnit XML: one test suite per stage, one test case per check.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::event::{Outcome, RunReport};

pub fn junit(r: &RunReport) -> String {
    let mut report = Report::new(format!("lab verify {}", r.lab));
    report.set_time(r.summary.duration);
    for stage in r.stages() {
        let mut suite = TestSuite::new(format!("{}.{stage}", r.lab));
        for c in r.checks.iter().filter(|c| c.stage == stage) {
            let status = match &c.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed(f) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(f.summary.clone());
                    s.set_type("check failed");
                    let mut text = format!("expected: {}\n\ngot:\n{}\n\nsent:\n{}\n", f.expected, f.got, f.sent);
                    if !f.hint.is_empty() {
                        text.push_str(&format!("\nhint: {}\n", f.hint));
                    }
                    if !f.logs.is_empty() {
                        text.push_str(&format!("\nservice log:\n{}\n", f.logs.join("\n")));
                    }
                    s.set_description(text);
                    s
                }
                Outcome::Skipped { reason } => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(reason.clone());
                    s
                }
                Outcome::Error { message } => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(message.clone());
                    s.set_type("lab error");
                    s
                }
            };
            let mut tc = TestCase::new(c.name.clone(), status);
            tc.set_classname(format!("{}.{}", r.lab, c.stage));
            tc.set_time(c.duration);
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    xml_safe(&report.to_string().expect("JUnit XML serializes"))
}

/// XML 1.0 allows no control characters but tab, newline and carriage return, even
/// escaped; a learner's program may print any bytes. They become U+FFFD.
fn xml_safe(s: &str) -> String {
    s.chars().map(|c| if (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}' { '\u{fffd}' } else { c }).collect()
}
