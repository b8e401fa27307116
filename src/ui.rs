//! Progress on stderr: a spinner with the current step on a terminal, plain
//! lines otherwise (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Clone)]
pub struct Ui {
    quiet: bool,
    tty: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Ui { quiet, tty: std::io::stderr().is_terminal() }
    }

    /// A finished step: `✓ text`.
    pub fn done(&self, text: &str) {
        if !self.quiet {
            eprintln!("  ✓ {text}");
        }
    }

    /// A plain line.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// Something lab did on its own that the user must know of (reverting a
    /// fault left in force), shown even with --quiet; on stderr.
    pub fn notice(&self, text: &str) {
        eprintln!("{text}");
    }

    /// A warning, shown even with --quiet.
    pub fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    /// A long step: a spinner on a terminal, a start line otherwise.
    pub fn task(&self, text: &str) -> Task {
        if self.quiet {
            return Task { bar: None, plain: false };
        }
        if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}").expect("static template"));
            bar.set_prefix(text.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            Task { bar: Some(bar), plain: false }
        } else {
            eprintln!("  … {text}");
            Task { bar: None, plain: true }
        }
    }
}

/// A running step.
pub struct Task {
    bar: Option<ProgressBar>,
    plain: bool,
}

impl Task {
    /// Update the detail (e.g. the last line of a tool's output).
    pub fn set(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.chars().take(70).collect::<String>());
        }
    }
    /// Finish with a line.
    pub fn finish(self, text: &str) {
        match self.bar {
            Some(b) => {
                b.finish_and_clear();
                eprintln!("  ✓ {text}");
            }
            None if self.plain => eprintln!("  ✓ {text}"),
            None => {}
        }
    }
    pub fn fail(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
