//! GitHub Actions workflow commands: a `::group::` per stage holding its
//! checks, and an `::error title=<check>::` per failed check, so that a failed
//! check shows as an annotation of the run (the JUnit report keeps working for
//! other CI systems).

use crate::event::{Outcome, RunReport};

/// Escape the message of a workflow command (after the `::`).
pub(super) fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escape a property of a workflow command (`title=`).
pub(super) fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn github(r: &RunReport) -> String {
    let mut out = String::new();
    for stage in r.stages() {
        let checks: Vec<_> = r.checks.iter().filter(|c| c.stage == stage).collect();
        out.push_str(&format!("::group::{} ({} check{})\n", data(stage), checks.len(), if checks.len() == 1 { "" } else { "s" }));
        for c in checks {
            let ms = c.duration.as_millis();
            match &c.outcome {
                Outcome::Passed => out.push_str(&format!("✓ {} ({ms} ms)\n", c.name)),
                Outcome::Skipped { reason } => out.push_str(&format!("- {}: skipped, {reason}\n", c.name)),
                Outcome::Failed(f) => {
                    out.push_str(&format!("✗ {} ({ms} ms): {}\n", c.name, f.summary));
                    let mut text = format!("{}\nexpected: {}", f.summary, c.expect);
                    if !f.sent.is_empty() {
                        text.push_str(&format!("\nsent: {}", f.sent));
                    }
                    if !f.got.is_empty() {
                        text.push_str(&format!("\ngot: {}", f.got));
                    }
                    if !f.hint.is_empty() {
                        text.push_str(&format!("\nhint: {}", f.hint));
                    }
                    out.push_str(&format!("::error title={}::{}\n", property(&c.name), data(&text)));
                    for l in &f.logs {
                        out.push_str(&format!("    | {l}\n"));
                    }
                }
                Outcome::Error { message } => {
                    out.push_str(&format!("! {} ({ms} ms): lab could not run it: {message}\n", c.name));
                    out.push_str(&format!("::error title={}::{}\n", property(&c.name), data(&format!("lab could not run this check: {message}"))));
                }
            }
        }
        out.push_str("::endgroup::\n");
    }
    let s = &r.summary;
    let verdict = if r.passed() { "passed" } else { "FAILED" };
    let line = format!("lab verify {}: {verdict}: {} passed, {} failed, {} skipped, {} errors in {:.1} s", r.lab, s.passed, s.failed, s.skipped, s.errors, s.duration.as_secs_f64());
    if r.passed() {
        out.push_str(&format!("::notice title=lab verify {}::{}\n", property(&r.lab), data(&line)));
    }
    out.push_str(&line);
    out.push('\n');
    out
}
