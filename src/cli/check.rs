//! `lab check linearizability FILE`: check a saved history, ours or another
//! tool's. Like Jepsen's checkers, the exit code tells valid, invalid and
//! unknown apart.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

use crate::checker::{self, CheckOptions, Verdict};
use crate::error::{exit, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// Detect from the content.
    Auto,
    /// lab's own JSON: {"ops": [{"process", "type": invoke|ok|fail|info, "f", "key", "value", "time"}]}.
    Json,
    /// A JSON list of {client_id, input, call, output, return} operations.
    Porcupine,
    /// EDN maps, one per line or in a vector: {:process 0, :type :ok, :f :read, :value 3}.
    Edn,
    /// jepsen.util log lines: `3	:ok	:read	4`.
    JepsenLog,
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum CheckCommand {
    /// Is this history linearizable? Exit 0 yes, 1 no, 5 unknown (budget ran out), 2 unreadable.
    #[command(
        after_help = "Examples:\n  lab check linearizability history.json\n  lab check linearizability history.edn --budget 60s --output json\n  lab check linearizability jepsen.log --format jepsen-log"
    )]
    Linearizability {
        /// The history file (- for standard input).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = HistoryFormat::Auto)]
        format: HistoryFormat,
        /// Give up (verdict unknown) after this long.
        #[arg(long, default_value = DEFAULT_BUDGET, value_parser = humantime::parse_duration)]
        budget: Duration,
        /// terminal or json.
        #[arg(long, default_value = DEFAULT_OUTPUT)]
        output: String,
    },
}

const DEFAULT_BUDGET: &str = "30s";
const DEFAULT_OUTPUT: &str = "terminal";

impl CheckCommand {
    /// Reads the plain forms of the arguments after `check` without clap
    /// (building clap's parser costs more than checking a small history):
    /// `linearizability FILE` with `--format`, `--budget` and `--output`, each
    /// at most once, as `--name value` or `--name=value`, with valid values.
    /// `None` for anything else (help, a mistake, another form), which clap
    /// then reads, and explains if need be.
    pub fn quick_parse(args: &[std::ffi::OsString]) -> Option<CheckCommand> {
        let mut it = args.iter().map(|a| a.to_str());
        if it.next()?? != "linearizability" {
            return None;
        }
        let (mut file, mut format, mut budget, mut output) = (None, None, None, None);
        while let Some(arg) = it.next() {
            let arg = arg?;
            if !arg.starts_with("--") {
                if arg.starts_with('-') && arg != "-" || file.is_some() {
                    return None;
                }
                file = Some(PathBuf::from(arg));
                continue;
            }
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value),
                None => (arg, it.next()??),
            };
            let fresh = match name {
                "--format" => format.replace(HistoryFormat::from_str(value, false).ok()?).is_none(),
                "--budget" => budget.replace(humantime::parse_duration(value).ok()?).is_none(),
                "--output" if value == "terminal" || value == "json" => output.replace(value.to_string()).is_none(),
                _ => false,
            };
            if !fresh {
                return None;
            }
        }
        Some(CheckCommand::Linearizability {
            file: file?,
            format: format.unwrap_or(HistoryFormat::Auto),
            budget: match budget {
                Some(b) => b,
                None => humantime::parse_duration(DEFAULT_BUDGET).ok()?,
            },
            output: output.unwrap_or_else(|| DEFAULT_OUTPUT.into()),
        })
    }
}

/// A history's text: read, or mapped from its file.
enum Input {
    Text(String),
    Mapped(memmap2::Mmap),
}

/// A regular file is mapped rather than copied (a large history is read once,
/// by the parser, straight from the page cache); anything else is read.
fn read_file(path: &std::path::Path) -> std::io::Result<Input> {
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_file() && meta.len() > 0 {
        // SAFETY: the map is read-only and private, and lab never writes to
        // it. The caveat of every mapped read: were another process to
        // rewrite the file while lab checks it, lab could read a mix of old
        // and new text, or stop with SIGBUS if the file shrank. A history
        // being checked is a finished file; `-` (standard input) is read.
        if let Ok(m) = unsafe { memmap2::Mmap::map(&f) } {
            return Ok(Input::Mapped(m));
        }
    }
    std::io::read_to_string(f).map(Input::Text)
}

pub fn run(cmd: CheckCommand) -> Result<i32, Error> {
    let CheckCommand::Linearizability { file, format, budget, output } = cmd;
    let input = if file.as_os_str() == "-" {
        Input::Text(std::io::read_to_string(std::io::stdin()).map_err(|e| Error::Io(format!("reading standard input: {e}")))?)
    } else {
        read_file(&file).map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?
    };
    let text: &str = match &input {
        Input::Text(t) => t,
        Input::Mapped(m) => std::str::from_utf8(m).map_err(|e| Error::Usage(format!("cannot read {}: stream did not contain valid UTF-8 ({e})", file.display())))?,
    };
    let parsed = match format {
        HistoryFormat::Auto => checker::parse(&text),
        HistoryFormat::Json => checker::formats::parse_as(&text, checker::Format::Json),
        HistoryFormat::Porcupine => checker::formats::parse_as(&text, checker::Format::Porcupine),
        HistoryFormat::Edn => checker::formats::parse_as(&text, checker::Format::Edn),
        HistoryFormat::JepsenLog => checker::formats::parse_as(&text, checker::Format::JepsenLog),
    };
    let history = parsed.map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
    let result = checker::check(&history, &CheckOptions::with_budget(budget));
    use std::fmt::Write as _;
    let mut out = String::new();
    if output == "json" {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&result).expect("result serializes"));
    } else {
        let _ = writeln!(out, "{}: {} ({} operations on {} keys, checked in {:.1} ms)", file.display(), result.verdict.name(), result.ops, result.keys, result.elapsed.as_secs_f64() * 1000.0);
        if let Some(r) = &result.reason {
            let _ = writeln!(out, "  {r}");
        }
        if let Some(w) = &result.witness {
            let _ = writeln!(out, "\n{}\n", w.explanation);
            let on = if w.key.is_empty() { "the register".to_string() } else { format!("key {}", w.key) };
            let _ = writeln!(out, "witness ({} operations on {on}{}):", w.ops.len(), if w.minimal { ", minimal" } else { "" });
            for op in &w.ops {
                let _ = writeln!(out, "  {}{}", op.text, if op.context { "   (context)" } else { "" });
            }
        }
    }
    // A reader that stops early (`| head`) is not an error; the verdict is still the exit code.
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_all(out.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::Usage(format!("writing the result: {e}")));
        }
    }
    let code = match result.verdict {
        Verdict::Linearizable => exit::OK,
        Verdict::NotLinearizable => exit::CHECKS_FAILED,
        Verdict::Unknown => exit::UNKNOWN,
    };
    // The process ends right after this; freeing a large history one
    // allocation at a time would only delay the exit.
    std::mem::forget((input, history, result));
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// What clap makes of `lab check ARGS`.
    fn clap(args: &[&str]) -> Option<CheckCommand> {
        match crate::cli::Cli::try_parse_from(["lab", "check"].into_iter().chain(args.iter().copied())).ok()?.command {
            crate::cli::Command::Check(c) => Some(c),
            _ => None,
        }
    }

    fn quick(args: &[&str]) -> Option<CheckCommand> {
        CheckCommand::quick_parse(&args.iter().map(std::ffi::OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn the_quick_reading_is_clap_s_or_none() {
        // Read quickly, exactly as clap reads them.
        for args in [
            &["linearizability", "h.json"][..],
            &["linearizability", "-"],
            &["linearizability", "h.edn", "--format", "edn"],
            &["linearizability", "--format=porcupine", "h.json"],
            &["linearizability", "h.log", "--format", "jepsen-log", "--budget", "2m 5s", "--output", "json"],
            &["linearizability", "--output=terminal", "--budget=500ms", "h.json"],
        ] {
            let q = quick(args);
            assert!(q.is_some(), "{args:?} is a plain form");
            assert_eq!(q, clap(args), "{args:?}");
        }
        // Left to clap: help, mistakes, repeated or unknown options, other forms.
        for args in [
            &["linearizability"][..],
            &["linearizability", "--help"],
            &["help"],
            &["linearizability", "a.json", "b.json"],
            &["linearizability", "h.json", "--format", "yaml"],
            &["linearizability", "h.json", "--format"],
            &["linearizability", "h.json", "--budget", "soon"],
            &["linearizability", "h.json", "--output", "xml"],
            &["linearizability", "h.json", "--format", "edn", "--format", "json"],
            &["linearizability", "h.json", "--bogus", "1"],
            &["linearizability", "h.json", "-q"],
            &["linearizability", "--", "h.json"],
            &["linearizability", "h.json", "--labs", "x"],
        ] {
            assert_eq!(quick(args), None, "{args:?} is left to clap");
        }
    }
}
