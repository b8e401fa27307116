//! The exec probe: run a program on the host with arguments, environment and
//! standard input, under a timeout, and read its exit code, its (capped) output
//! and the files it wrote. The program runs in its own process group, which is
//! killed when it times out or exits (nothing it started outlives the probe), and
//! under a file-size limit (a flood cannot fill the disk).

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Answer;

/// The most of stdout and of stderr kept (the rest is read and dropped).
pub const OUTPUT_CAP: usize = 256 * 1024;
/// The most of a file read after the run that is kept.
pub const FILE_CAP: u64 = 1024 * 1024;
/// The largest file a program may write unless the step says otherwise.
pub const DEFAULT_FSIZE_LIMIT: u64 = 64 * 1024 * 1024;
/// How long the output pipes may stay open after the program exited (held by
/// something it left behind) before they are given up on.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

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
    /// Files written before the run (relative path, content).
    pub files: Vec<(String, String)>,
    /// Files read after the run (relative paths).
    pub read: Vec<String>,
    /// RLIMIT_FSIZE in bytes (default [`DEFAULT_FSIZE_LIMIT`]).
    pub fsize_limit: Option<u64>,
}

impl ExecSpec {
    /// A spec with only a program and its arguments.
    pub fn new(program: impl Into<String>, args: Vec<String>, dir: PathBuf) -> Self {
        ExecSpec { program: program.into(), args, env: vec![], stdin: None, timeout: Duration::from_secs(10), dir, files: vec![], read: vec![], fsize_limit: None }
    }
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
    /// lab could not prepare the run (a bad path in `files` or `read`, a write that failed).
    #[error("{0}")]
    Setup(String),
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command line as a learner would type it (with the files written before it).
pub fn command_line(spec: &ExecSpec) -> String {
    let mut parts: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    let prog = Path::new(&spec.program).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| spec.program.clone());
    parts.push(quote(&prog));
    parts.extend(spec.args.iter().map(|a| quote(a)));
    let mut line = parts.join(" ");
    if let Some(input) = &spec.stdin {
        line.push_str(&format!(" <<< {}", quote(input)));
    }
    if let Some(limit) = spec.fsize_limit {
        line = format!("(ulimit -f {}; {line})", limit.div_ceil(1024));
    }
    let mut before = String::new();
    for (path, content) in &spec.files {
        before.push_str(&format!("# {path} holds {} bytes: {}\n", content.len(), super::excerpt(content.trim_end(), 120).replace('\n', "⏎")));
    }
    format!("{before}{line}")
}

/// A path inside the run's directory: relative, without `..`.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ExecFailure> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ExecFailure::Setup(format!("`{rel}`: paths of an exec probe are relative to the check's directory, without `..`")));
    }
    Ok(dir.join(p))
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

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Kill the program's process group (the program and whatever it started).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// What a file holds after the run, as an answer entry and a line for a learner.
fn read_back(dir: &Path, rel: &str, written: Option<&str>) -> Result<Option<(serde_json::Value, String)>, ExecFailure> {
    use std::io::Read;
    let path = inside(dir, rel)?;
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecFailure::Setup(format!("reading {rel}: {e}"))),
    };
    if !meta.is_file() {
        // A FIFO or a device would block or never end: not read.
        let v = serde_json::json!({"size": 0, "sha256": "", "content": "", "json": null, "valid_json": false, "json_error": "not a regular file", "not_a_file": true});
        return Ok(Some((v, format!("{rel}: not a regular file"))));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path).and_then(|f| f.take(FILE_CAP).read_to_end(&mut bytes)).map_err(|e| ExecFailure::Setup(format!("reading {rel}: {e}")))?;
    let cut = meta.len() > FILE_CAP;
    let content = String::from_utf8_lossy(&bytes).into_owned();
    let (json, json_error) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => (v, None),
        Err(e) => (serde_json::Value::Null, Some(e.to_string())),
    };
    let mut v = serde_json::json!({
        "size": meta.len(),
        "sha256": sha256(&bytes),
        "content": content,
        "json": json,
        "valid_json": json_error.is_none(),
        "json_error": json_error,
        "truncated": cut,
    });
    let mut line = format!("{rel}: {} bytes", meta.len());
    if let Some(before) = written {
        let same = !cut && bytes == before.as_bytes();
        v["unchanged"] = same.into();
        line.push_str(&if same { ", unchanged".to_string() } else { format!(", CHANGED (it held {} bytes before the run)", before.len()) });
    }
    match &json_error {
        None => line.push_str(", valid JSON"),
        Some(e) => line.push_str(&format!(", not valid JSON ({e})")),
    }
    if !content.trim().is_empty() {
        line.push_str(&format!("\n  {}", super::excerpt(content.trim_end(), 300).replace('\n', "\n  ")));
    }
    Ok(Some((v, line)))
}

/// Run the program. The answer's value is
/// `{"exit": code|null, "signal": n|null, "stdout": "...", "stderr": "...", "json": stdout-as-JSON|null, "truncated": bool, "files": {...}}`.
pub async fn run(spec: &ExecSpec) -> Result<Answer, ExecFailure> {
    for (rel, content) in &spec.files {
        let path = inside(&spec.dir, rel)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ExecFailure::Setup(format!("creating the folder of {rel}: {e}")))?;
        }
        std::fs::write(&path, content).map_err(|e| ExecFailure::Setup(format!("writing {rel}: {e}")))?;
    }
    for rel in &spec.read {
        inside(&spec.dir, rel)?;
    }
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args).current_dir(&spec.dir).env_clear();
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
    cmd.env("HOME", &spec.dir);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    // Its own process group, so that whatever it starts is killed with it.
    cmd.process_group(0);
    let limit = spec.fsize_limit.unwrap_or(DEFAULT_FSIZE_LIMIT);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, sigaction).
    unsafe {
        cmd.pre_exec(move || {
            use nix::sys::signal::{signal, SigHandler, Signal};
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, limit, limit).map_err(std::io::Error::from)?;
            // A write beyond the limit then fails with EFBIG instead of killing the program.
            signal(Signal::SIGXFSZ, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let program = spec.program.clone();
    let mut child = cmd.spawn().map_err(|source| ExecFailure::Spawn { program: program.clone(), source })?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let input = spec.stdin.clone().unwrap_or_default();
    let out_task = tokio::spawn(read_capped(child.stdout.take().expect("piped")));
    let err_task = tokio::spawn(read_capped(child.stderr.take().expect("piped")));
    let feed = tokio::spawn(async move {
        if let Some(mut w) = stdin {
            // A program that does not read its input is not an error.
            let _ = w.write_all(input.as_bytes()).await;
        }
    });
    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(r) => r.map_err(|source| ExecFailure::Io { program: program.clone(), source }),
        Err(_) => Err(ExecFailure::Timeout { program: program.clone(), timeout: spec.timeout }),
    };
    // Whatever it left running goes too; then the pipes close.
    kill_group(pid);
    if status.is_err() {
        let _ = child.kill().await;
    }
    feed.abort();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            out_task.abort();
            err_task.abort();
            return Err(e);
        }
    };
    let drain = |t: tokio::task::JoinHandle<std::io::Result<(Vec<u8>, bool)>>| async move {
        match tokio::time::timeout(DRAIN_GRACE, t).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
            // Held open by a process outside its group: keep nothing of it.
            Err(_) => Ok((b"(the output stayed open after the program exited; not read)".to_vec(), true)),
        }
    };
    let (out, out_cut) = drain(out_task).await.map_err(|source| ExecFailure::Io { program: program.clone(), source })?;
    let (err, err_cut) = drain(err_task).await.map_err(|source| ExecFailure::Io { program: program.clone(), source })?;
    let elapsed = started.elapsed();
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    let stderr = String::from_utf8_lossy(&err).into_owned();
    let json = serde_json::from_str::<serde_json::Value>(&stdout).unwrap_or(serde_json::Value::Null);
    let mut files = serde_json::Map::new();
    let mut file_lines = Vec::new();
    for rel in &spec.read {
        let written = spec.files.iter().find(|(p, _)| p == rel).map(|(_, c)| c.as_str());
        match read_back(&spec.dir, rel, written)? {
            Some((v, line)) => {
                files.insert(rel.clone(), v);
                file_lines.push(line);
            }
            None => file_lines.push(format!("{rel}: does not exist")),
        }
    }
    let value = serde_json::json!({
        "exit": status.code(),
        "signal": status.signal(),
        "stdout": stdout,
        "stderr": stderr,
        "json": json,
        "truncated": out_cut || err_cut,
        "files": files,
    });
    let mut shown = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "no exit status".to_string(),
    };
    for (name, text, cut) in [("stdout", &stdout, out_cut), ("stderr", &stderr, err_cut)] {
        if !text.trim().is_empty() {
            shown.push_str(&format!("\n{name}{}:\n{}", if cut { format!(" (cut at {OUTPUT_CAP} bytes)") } else { String::new() }, super::excerpt(text, 600)));
        }
    }
    if !file_lines.is_empty() {
        shown.push_str(&format!("\nfiles afterwards:\n{}", file_lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")));
    }
    Ok(Answer { value, shown, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str]) -> ExecSpec {
        ExecSpec { timeout: Duration::from_secs(5), ..ExecSpec::new(program, args.iter().map(|s| s.to_string()).collect(), std::env::temp_dir()) }
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

    #[tokio::test]
    async fn files_are_written_before_and_read_after() {
        let d = tempfile::tempdir().unwrap();
        let s = ExecSpec {
            files: vec![("conf/c.yaml".into(), "file: t.json\n".into()), ("keep.json".into(), "[1]".into()), ("bad.json".into(), "[1".into())],
            read: vec!["t.json".into(), "keep.json".into(), "bad.json".into(), "never.json".into()],
            ..ExecSpec::new("sh", vec!["-c".into(), "test \"$HOME\" = \"$PWD\" && cat conf/c.yaml >&2 && echo '{\"a\": [2]}' > t.json && echo ']' >> bad.json".into()], d.path().into())
        };
        let a = run(&s).await.unwrap();
        assert_eq!(a.value["exit"], 0, "{}", a.shown);
        assert_eq!(a.value["stderr"], "file: t.json\n");
        let f = &a.value["files"];
        assert_eq!(f["t.json"]["json"]["a"][0], 2);
        assert_eq!(f["t.json"]["valid_json"], true);
        assert!(f["t.json"].get("unchanged").is_none(), "t.json was not written by lab");
        assert_eq!(f["keep.json"]["unchanged"], true);
        assert_eq!(f["bad.json"]["unchanged"], false);
        assert_eq!(f["bad.json"]["valid_json"], true);
        assert!(f.get("never.json").is_none());
        assert!(a.shown.contains("never.json: does not exist"), "{}", a.shown);
        assert!(a.shown.contains("bad.json: 4 bytes, CHANGED (it held 2 bytes before the run)"), "{}", a.shown);
    }

    #[tokio::test]
    async fn paths_stay_inside_the_directory() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", ""] {
            let e = run(&ExecSpec { read: vec![bad.into()], ..ExecSpec::new("true", vec![], d.path().into()) }).await.unwrap_err();
            assert!(matches!(e, ExecFailure::Setup(_)), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_write_beyond_the_size_limit_fails_instead_of_killing() {
        let d = tempfile::tempdir().unwrap();
        let s = ExecSpec { fsize_limit: Some(4096), read: vec!["big".into()], ..ExecSpec::new("sh", vec!["-c".into(), "head -c 10000 /dev/zero > big; echo rc=$?".into()], d.path().into()) };
        let a = run(&s).await.unwrap();
        assert_eq!(a.value["signal"], serde_json::Value::Null, "{}", a.shown);
        assert_eq!(a.value["stdout"], "rc=1\n", "{}", a.shown);
        assert_eq!(a.value["files"]["big"]["size"], 4096);
    }

    #[tokio::test]
    async fn what_a_program_leaves_behind_is_killed_and_a_fifo_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let marker = format!("{}", 900 + std::process::id() % 97);
        // A child keeps stdout open after the program exits; a FIFO would block a reader forever.
        let script = format!("mkfifo pipe; sleep {marker} & echo started");
        let started = Instant::now();
        let a = run(&ExecSpec { read: vec!["pipe".into()], ..ExecSpec::new("sh", vec!["-c".into(), script], d.path().into()) }).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(a.value["stdout"], "started\n");
        assert_eq!(a.value["files"]["pipe"]["not_a_file"], true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().unwrap();
        assert!(left.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&left.stdout));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let marker = format!("{}", 800 + std::process::id() % 97);
        let e = run(&ExecSpec { timeout: Duration::from_millis(300), ..spec("sh", &["-c", &format!("sleep {marker} & sleep {marker}")]) }).await.unwrap_err();
        assert!(matches!(e, ExecFailure::Timeout { .. }), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().unwrap();
        assert!(left.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&left.stdout));
    }

    #[test]
    fn command_lines_are_quoted() {
        let s = ExecSpec { env: vec![("TASKS_FILE".into(), "/tmp/a b".into())], stdin: Some("y".into()), ..spec("/x/bin/task", &["add", "buy milk"]) };
        assert_eq!(command_line(&s), "TASKS_FILE='/tmp/a b' task add 'buy milk' <<< y");
    }
}
