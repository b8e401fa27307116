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

#[derive(Subcommand, Debug)]
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
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        budget: Duration,
        /// terminal or json.
        #[arg(long, default_value = "terminal")]
        output: String,
    },
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
