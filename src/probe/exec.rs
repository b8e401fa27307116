//! The exec probe: run a program on the host with arguments, environment and
//! standard input, under a timeout, and read its exit code and (capped) output.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Answer;

/// The most of stdout and of stderr kept (the rest is read and dropped).
pub const OUTPUT_CAP: usize = 256 * 1024;

/// A program to run, with its templates rendered.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<String>,
    pub timeout: Duration,
    /// Working directory and HOME.
    pub dir: std::path::PathBuf,
}

/// Why a program gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExecFailure {
    #[error("could not start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} did not finish within {timeout:?} (killed)")]
    Timeout { program: String, timeout: Duration },
    #[error("reading the output of {program}: {source}")]
    Io { program: String, source: std::io::Error },
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command line as a learner would type it.
pub fn command_line(spec: &ExecSpec) -> String {
    let mut parts: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    let prog = Path::new(&spec.program).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| spec.program.clone());
    parts.push(quote(&prog));
    parts.extend(spec.args.iter().map(|a| quote(a)));
    let mut line = parts.join(" ");
    if let Some(input) = &spec.stdin {
        line.push_str(&format!(" <<< {}", quote(input)));
    }
    line
}

async fn read_capped<R: AsyncReadExt + Unpin>(mut r: R) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
}

/// Run the program. The answer's value is
/// `{"exit": code|null, "signal": n|null, "stdout": "...", "stderr": "...", "json": stdout-as-JSON|null, "truncated": bool}`.
pub async fn run(spec: &ExecSpec) -> Result<Answer, ExecFailure> {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args).current_dir(&spec.dir).env_clear();
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
    cmd.env("HOME", &spec.dir);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let program = spec.program.clone();
    let mut child = cmd.spawn().map_err(|source| ExecFailure::Spawn { program: program.clone(), source })?;
    let mut stdin = child.stdin.take();
    let input = spec.stdin.clone().unwrap_or_default();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let work = async {
        let feed = async {
            if let Some(mut w) = stdin.take() {
                // A program that does not read its input is not an error.
                let _ = w.write_all(input.as_bytes()).await;
            }
        };
        let (_, out, err, status) = tokio::join!(feed, read_capped(stdout), read_capped(stderr), child.wait());
        Ok::<_, std::io::Error>((out?, err?, status?))
    };
    let ((out, out_cut), (err, err_cut), status) = match tokio::time::timeout(spec.timeout, work).await {
        Ok(r) => r.map_err(|source| ExecFailure::Io { program: program.clone(), source })?,
        Err(_) => return Err(ExecFailure::Timeout { program, timeout: spec.timeout }),
    };
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    let stderr = String::from_utf8_lossy(&err).into_owned();
    let json = serde_json::from_str::<serde_json::Value>(&stdout).unwrap_or(serde_json::Value::Null);
    let value = serde_json::json!({
        "exit": status.code(),
        "signal": status.signal(),
        "stdout": stdout,
        "stderr": stderr,
        "json": json,
        "truncated": out_cut || err_cut,
    });
    let mut shown = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "no exit status".to_string(),
    };
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        if !text.trim().is_empty() {
            shown.push_str(&format!("\n{name}:\n{}", super::excerpt(text, 600)));
        }
    }
    Ok(Answer { value, shown, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str]) -> ExecSpec {
        ExecSpec { program: program.into(), args: args.iter().map(|s| s.to_string()).collect(), env: vec![], stdin: None, timeout: Duration::from_secs(5), dir: std::env::temp_dir() }
    }

    #[tokio::test]
    async fn reads_exit_code_and_output() {
        let a = run(&ExecSpec { env: vec![("X".into(), "7".into())], ..spec("sh", &["-c", "echo '{\"n\": '$X'}'; echo oops >&2; exit 3"]) }).await.unwrap();
        assert_eq!(a.value["exit"], 3);
        assert_eq!(a.value["json"]["n"], 7);
        assert_eq!(a.value["stderr"], "oops\n");
        assert!(a.shown.contains("exit code 3"), "{}", a.shown);
    }

    #[tokio::test]
    async fn a_hanging_program_is_killed() {
        let e = run(&ExecSpec { timeout: Duration::from_millis(200), ..spec("sleep", &["30"]) }).await.unwrap_err();
        assert!(matches!(e, ExecFailure::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_flood_is_capped() {
        let a = run(&spec("sh", &["-c", "head -c 5000000 /dev/zero | tr '\\0' x"])).await.unwrap();
        assert_eq!(a.value["stdout"].as_str().unwrap().len(), OUTPUT_CAP);
        assert_eq!(a.value["truncated"], true);
    }

    #[test]
    fn command_lines_are_quoted() {
        let s = ExecSpec { env: vec![("TASKS_FILE".into(), "/tmp/a b".into())], stdin: Some("y".into()), ..spec("/x/bin/task", &["add", "buy milk"]) };
        assert_eq!(command_line(&s), "TASKS_FILE='/tmp/a b' task add 'buy milk' <<< y");
    }
}
