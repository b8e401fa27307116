//! The terminal reporter: stages and checks as they run, failures in full.

use std::io::{IsTerminal, Write};

use crate::event::{CheckResult, Event, Outcome, RunReport, Summary};
use crate::verify::expect::fmt_dur;

/// Prints events to a writer (stderr or stdout), with colour on a terminal.
pub struct Terminal<W: Write> {
    out: W,
    color: bool,
    verbose: bool,
}

impl Terminal<std::io::Stdout> {
    pub fn stdout(verbose: bool) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Terminal { out: std::io::stdout(), color, verbose }
    }
}

impl<W: Write> Terminal<W> {
    pub fn new(out: W, color: bool) -> Self {
        Terminal { out, color, verbose: false }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn event(&mut self, e: &Event) {
        let line = match e {
            Event::RunStarted { lab, instance, target, checks, .. } => {
                let what = format!("{checks} check{}", if *checks == 1 { "" } else { "s" });
                match (target.is_empty(), instance.is_empty()) {
                    (false, false) => format!("{} {lab}: {what} against {target} ({instance})\n", self.paint("1", "lab verify")),
                    (false, true) => format!("{} {lab}: {what} against {target}\n", self.paint("1", "lab verify")),
                    _ => format!("{} {lab}: {what}\n", self.paint("1", "lab verify")),
                }
            }
            Event::StageStarted { stage } => format!("\n{}\n", self.paint("1", stage)),
            Event::CheckStarted { .. } => String::new(),
            Event::Step { check, text } => {
                if self.verbose {
                    format!("    · {check}: {text}\n")
                } else {
                    String::new()
                }
            }
            Event::CheckFinished(r) => self.check_line(r),
            Event::StagesSkipped { reason, .. } => format!("\n{} {reason}\n", self.paint("33", "skipping the remaining stages:")),
            Event::RunFinished(s) => self.summary_line(s),
        };
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    fn check_line(&self, r: &CheckResult) -> String {
        let (mark, color) = match &r.outcome {
            Outcome::Passed => ("✓", "32"),
            Outcome::Failed(_) => ("✗", "31"),
            Outcome::Skipped { .. } => ("-", "33"),
            Outcome::Error { .. } => ("!", "35"),
        };
        let mut s = format!("  {} {:<28} {:>8}\n", self.paint(color, mark), r.name, fmt_dur(r.duration));
        // Notes (e.g. a fault lab could not inject), each on its own line:
        // right under the check, or under a failure's summary.
        let notes = |s: &mut String| {
            for n in &r.notes {
                for (i, l) in n.trim_end().lines().enumerate() {
                    if i == 0 {
                        s.push_str(&format!("      {}  {l}\n", self.paint("33", "warning:")));
                    } else {
                        s.push_str(&format!("      {}{l}\n", " ".repeat(10)));
                    }
                }
            }
        };
        match &r.outcome {
            Outcome::Passed => {
                notes(&mut s);
                // What its steps measured (polled times, bounded numbers), with --verbose.
                if self.verbose {
                    for m in &r.measured {
                        s.push_str(&format!("      measured: {m}\n"));
                    }
                }
            }
            Outcome::Skipped { reason } => {
                s.push_str(&format!("      skipped: {reason}\n"));
                notes(&mut s);
            }
            Outcome::Error { message } => {
                s.push_str(&format!("      lab could not run this check: {message}\n"));
                notes(&mut s);
            }
            Outcome::Failed(f) => {
                s.push_str(&format!("      {}\n", self.paint("31", &f.summary)));
                notes(&mut s);
                s.push_str(&format!("      expected: {}\n", r.expect));
                s.push_str(&indent("sent:     ", &f.sent));
                s.push_str(&indent("got:      ", &f.got));
                if !f.hint.is_empty() {
                    s.push_str(&indent("hint:     ", &f.hint));
                }
                if !f.logs.is_empty() {
                    s.push_str("      service log (last lines):\n");
                    for l in &f.logs {
                        s.push_str(&format!("        | {l}\n"));
                    }
                }
            }
        }
        s
    }

    fn summary_line(&self, s: &Summary) -> String {
        let total = s.passed + s.failed + s.skipped + s.errors;
        let verdict = if s.failed == 0 && s.errors == 0 { self.paint("32;1", "PASSED") } else { self.paint("31;1", "FAILED") };
        let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        format!("\n{verdict}: {}, {} passed, {} failed, {} skipped, {} in {}\n", n(total, "check", "checks"), s.passed, s.failed, s.skipped, n(s.errors, "error", "errors"), fmt_dur(s.duration))
    }
}

fn indent(label: &str, text: &str) -> String {
    let mut out = String::new();
    for (i, l) in text.trim_end().lines().enumerate() {
        if i == 0 {
            out.push_str(&format!("      {label}{l}\n"));
        } else {
            out.push_str(&format!("      {}{l}\n", " ".repeat(label.chars().count())));
        }
    }
    out
}

/// A finished report as the terminal shows it (no colour).
pub fn render_report(r: &RunReport) -> String {
    let mut t = Terminal::new(Vec::new(), false);
    t.event(&Event::RunStarted { lab: r.lab.clone(), instance: r.instance.clone(), target: r.target.clone(), stages: 0, checks: r.checks.len() });
    let mut stage = String::new();
    for c in &r.checks {
        if c.stage != stage {
            stage = c.stage.clone();
            t.event(&Event::StageStarted { stage: stage.clone() });
        }
        t.event(&Event::CheckFinished(c.clone()));
    }
    t.event(&Event::RunFinished(r.summary.clone()));
    String::from_utf8(t.out).expect("utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Failure;
    use std::time::Duration;

    fn result(outcome: Outcome, notes: Vec<String>) -> CheckResult {
        CheckResult { stage: "consistency".into(), name: "linearizable".into(), expect: "the history is linearizable".into(), outcome, duration: Duration::from_secs(14), notes, measured: vec![] }
    }

    #[test]
    fn a_passed_check_shows_its_notes_as_warnings_on_their_own_lines() {
        let t = Terminal::new(Vec::new(), false);
        let text = t.check_line(&result(Outcome::Passed, vec!["nemesis: partition at 2.000 s could not be applied: no such container".into()]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("✓ linearizable"), "{text}");
        assert_eq!(lines[1], "      warning:  nemesis: partition at 2.000 s could not be applied: no such container");
        // Without notes, a passed check is one line, as before.
        assert_eq!(t.check_line(&result(Outcome::Passed, vec![])).lines().count(), 1);
    }

    #[test]
    fn a_failed_check_shows_its_notes_under_the_summary_not_inside_sent() {
        let t = Terminal::new(Vec::new(), false);
        let f = Failure { summary: "1 acknowledged write lost".into(), sent: "120 operations".into(), got: "key k0: …".into(), expected: String::new(), hint: String::new(), step: 2, logs: vec![] };
        let text = t.check_line(&result(Outcome::Failed(f), vec!["nemesis: kill at 6.500 s could not be applied: boom\nsecond line".into()]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "      1 acknowledged write lost");
        assert_eq!(lines[2], "      warning:  nemesis: kill at 6.500 s could not be applied: boom");
        assert_eq!(lines[3], "                second line");
        assert!(lines[4].starts_with("      expected: "), "{text}");
        assert_eq!(lines[5], "      sent:     120 operations");
    }

    #[test]
    fn what_a_passed_check_measured_shows_with_verbose_only() {
        let mut r = result(Outcome::Passed, vec![]);
        r.measured = vec![
            crate::event::Measured { step: 2, what: "/drain/rate".into(), value: 1540.25, unit: String::new() },
            crate::event::Measured { step: 4, what: "passed after".into(), value: 4.0, unit: "s".into() },
        ];
        assert_eq!(Terminal::new(Vec::new(), false).check_line(&r).lines().count(), 1);
        let t = Terminal { out: Vec::new(), color: false, verbose: true };
        let text = t.check_line(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1..], ["      measured: step 2: /drain/rate = 1540.25", "      measured: step 4: passed after 4 s"], "{text}");
    }
}
