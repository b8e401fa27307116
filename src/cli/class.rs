//! `lab class`: one instance of a lab per student of a roster. Each student's
//! `up`, `verify` and `down` runs as its own `lab` process (a student's
//! failure cannot stop the others), a bounded number at a time; verdicts are
//! kept with the instances by the backend.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use futures_util::stream::{self, StreamExt};

use crate::class::{read_roster, Student, Verdict};
use crate::error::{exit, Error};
use crate::lab::Catalogue;
use crate::verify::expect::fmt_dur;

#[derive(Subcommand, Debug)]
pub enum ClassCommand {
    /// Bring up an instance per student of the roster (idempotent; a new roster line adds a student).
    #[command(
        after_help = "Roster: CSV with the columns id,name[,email,solution,image,target,git] (a header line may name them), or YAML: a list of {id, name, ...}. A git column (URL or URL#BRANCH) is cloned into lab's cache and fetched again before each run.\n\nExamples:\n  lab class up url-shortener --roster class.csv --images debian\n  lab class up url-shortener --roster class.csv --solutions ./submissions --jobs 4 --prune"
    )]
    Up {
        #[command(flatten)]
        c: ClassArgs,
        /// Also take down the instances of this class's students who are no
        /// longer on the roster (see --class); another class's students and
        /// instances brought up by hand are left alone.
        #[arg(long)]
        prune: bool,
    },
    /// Run every student's checks and keep each verdict with their instance.
    #[command(
        after_help = "Each student's solution: the roster's solution/image/target/git column, else --solutions DIR/<id>, else the instance as `class up` left it.\n\nExample:\n  lab class verify url-shortener --roster class.csv --solutions ./submissions"
    )]
    Verify {
        #[command(flatten)]
        c: ClassArgs,
    },
    /// A table of the class: each student's instance and last verdict.
    #[command(after_help = "Example:\n  lab class status url-shortener")]
    Status {
        /// The lab (a name from `lab list`, or a folder).
        lab: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only the students of this roster (default: every student instance of the lab).
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
    },
    /// A live web page of the class for the projector: students × checks,
    /// green/red/grey, updated every 2 s; a click on a red cell shows that
    /// check's failure. Self-contained (no external scripts or fonts).
    #[command(after_help = "Example:\n  lab class board url-shortener --listen 127.0.0.1:8090\n  # then open http://127.0.0.1:8090/ (a link to a failure: /#s2/redirect)")]
    Board {
        /// The lab (a name from `lab list`, or a folder).
        lab: String,
        /// Where to serve it (port 0: any free port; the URL is printed).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Only the students of this roster (default: every student instance of the lab).
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
        /// Show nothing without a token: the address printed (the
        /// instructor's token) shows the class, a student's
        /// LAB_BOARD_TOKEN (from `class credentials`) their own row alone.
        #[arg(long)]
        private: bool,
    },
    /// Write what each student needs to reach their own instance and nothing
    /// else: on Kubernetes a kubeconfig per student (a ServiceAccount of
    /// their namespace, a Role limited to reading it, its logs and
    /// port-forwards, a token that expires); on Docker their addresses.
    #[command(after_help = "Example:\n  lab class credentials url-shortener --roster class.csv --out ./creds --expires 8h\n  # a student then: KUBECONFIG=creds/s1.kubeconfig kubectl get pods")]
    Credentials {
        /// The lab (a name from `lab list`, or a folder).
        lab: String,
        /// The class's roster file.
        #[arg(long, value_name = "FILE")]
        roster: PathBuf,
        /// The folder to write to (one file per student).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How long a Kubernetes token lasts (at least 10m, the API server's minimum).
        #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
        expires: std::time::Duration,
    },
    /// Remove every student instance of a lab (asks first unless --yes).
    #[command(after_help = "Example:\n  lab class down url-shortener --yes")]
    Down {
        /// The lab (a name from `lab list`, or a folder).
        lab: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
        /// Only the students of this roster (default: every student instance of the lab).
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ClassArgs {
    /// The lab (a name from `lab list`, or a folder).
    pub lab: String,
    /// The class's roster file (.csv, or .yaml/.yml).
    #[arg(long, value_name = "FILE")]
    pub roster: PathBuf,
    /// A folder holding each student's solution as a folder (or archive) named by their id.
    #[arg(long, value_name = "DIR")]
    pub solutions: Option<PathBuf>,
    /// How many students at a time.
    #[arg(long, short, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Image set: upstream (pulled) or debian (baked here).
    #[arg(long, value_parser = super::image_set())]
    pub images: Option<crate::images::ImageSet>,
    /// The class's name, kept on each student's instance so that `--prune`
    /// removes this class's students alone (default: the roster's file name
    /// without its extension, `monday` for monday.csv).
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
}

impl ClassArgs {
    /// The class's name: `--class`, else the roster's file stem; letters,
    /// digits, `.`, `_` and `-`, at most 63.
    fn class_name(&self) -> Result<String, Error> {
        let (name, from) = match &self.class {
            Some(c) => (c.clone(), "--class".to_string()),
            None => (self.roster.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(), format!("the roster's file name ({})", self.roster.display())),
        };
        if name.is_empty() || name.len() > 63 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(Error::Usage(format!("{from} gives the class name {name:?}: a class name holds 1 to 63 letters, digits, '.', '_' or '-'; name it with --class NAME")));
        }
        Ok(name)
    }
}

/// The global options each student's `lab` process gets again.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub args: Vec<std::ffi::OsString>,
}

pub async fn run(cat: &Catalogue, cmd: ClassCommand, globals: Globals, quiet: bool) -> Result<i32, Error> {
    match cmd {
        ClassCommand::Up { c, prune } => up(cat, c, prune, &globals, quiet).await,
        ClassCommand::Verify { c } => verify(cat, c, &globals, quiet).await,
        ClassCommand::Status { lab, json, roster } => status(cat, &lab, json, only(roster.as_deref())?).await,
        ClassCommand::Board { lab, listen, roster, private } => board(cat, &lab, listen, only(roster.as_deref())?, private, quiet).await,
        ClassCommand::Credentials { lab, roster, out, expires } => credentials(cat, &lab, &roster, &out, expires, quiet).await,
        ClassCommand::Down { lab, yes, roster } => down(cat, &lab, yes, only(roster.as_deref())?, quiet).await,
    }
}

/// What one student's `lab` process did.
struct Done {
    id: String,
    code: i32,
    took: std::time::Duration,
    stdout: String,
    stderr: String,
}

/// The first line of an error a `lab` process printed (miette's `×` line).
fn error_line(stderr: &str) -> String {
    let l =
        stderr.lines().map(str::trim).find(|l| l.starts_with('×') || l.starts_with("Error") || l.starts_with("error")).or_else(|| stderr.lines().map(str::trim).rfind(|l| !l.is_empty())).unwrap_or("");
    crate::probe::excerpt(l.trim_start_matches('×').trim(), 200)
}

/// Runs `lab ARGS` for each student, `jobs` at a time; a line per student as
/// each finishes. On Ctrl-C no new student starts and the running ones are
/// interrupted (they revert and clean up what they started), then 130.
async fn each(
    students: &[Student],
    jobs: u16,
    class: &str,
    globals: &Globals,
    quiet: bool,
    what: &str,
    args: impl Fn(&Student) -> Vec<std::ffi::OsString>,
    line: impl Fn(&Done) -> String,
) -> Result<Vec<Done>, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Io(format!("finding lab's own executable: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let pids: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
    if !quiet {
        eprintln!("{what} {} student{}, {} at a time", students.len(), if students.len() == 1 { "" } else { "s" }, jobs.min(students.len() as u16));
    }
    let runs = stream::iter(students.iter().map(|s| {
        let (exe, stop, pids) = (exe.clone(), stop.clone(), pids.clone());
        let argv: Vec<std::ffi::OsString> = globals.args.iter().cloned().chain(args(s)).collect();
        async move {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            let began = Instant::now();
            let child =
                tokio::process::Command::new(&exe).args(&argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("NO_COLOR", "1").env(crate::session::CLASS_ENV, class).spawn();
            let out = match child {
                Ok(c) => {
                    let pid = c.id();
                    if let Some(p) = pid {
                        pids.lock().unwrap().push(p);
                    }
                    let out = c.wait_with_output().await;
                    pids.lock().unwrap().retain(|p| Some(*p) != pid);
                    out
                }
                Err(e) => Err(e),
            };
            Some(match out {
                Ok(o) => Done {
                    id: s.id.clone(),
                    code: o.status.code().unwrap_or(exit::INTERRUPTED),
                    took: began.elapsed(),
                    stdout: String::from_utf8_lossy(&o.stdout).into(),
                    stderr: String::from_utf8_lossy(&o.stderr).into(),
                },
                Err(e) => Done { id: s.id.clone(), code: exit::LAB_FAILED, took: began.elapsed(), stdout: String::new(), stderr: format!("× starting lab: {e}") },
            })
        }
    }))
    .buffer_unordered(jobs as usize)
    .filter_map(|d| async move { d })
    .inspect(|d| {
        if !quiet {
            eprintln!("{}", line(d));
        }
    })
    .collect::<Vec<Done>>();
    tokio::pin!(runs);
    let done = tokio::select! {
        d = &mut runs => d,
        _ = super::interrupted() => {
            stop.store(true, Ordering::SeqCst);
            for p in pids.lock().unwrap().iter() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p as i32), nix::sys::signal::Signal::SIGINT);
            }
            if !quiet {
                eprintln!("interrupted: waiting for the running students' lab to clean up");
            }
            let _ = runs.await;
            return Err(Error::Interrupted);
        }
    };
    Ok(done)
}

fn mark(code: i32) -> &'static str {
    if code == 0 {
        "✓"
    } else {
        "✗"
    }
}

/// The exit code of a class command: 0 when every student's was; else 1 when
/// each failure was the service's, else the first other code (lab's own trouble).
fn class_code(done: &[Done]) -> i32 {
    let bad: Vec<i32> = done.iter().map(|d| d.code).filter(|c| *c != 0).collect();
    if bad.is_empty() {
        0
    } else if bad.iter().all(|c| *c == exit::CHECKS_FAILED) {
        exit::CHECKS_FAILED
    } else {
        bad.into_iter().find(|c| *c != exit::CHECKS_FAILED).unwrap_or(exit::LAB_FAILED)
    }
}

fn summary(what: &str, done: &[Done]) -> String {
    let failed: Vec<&str> = done.iter().filter(|d| d.code != 0).map(|d| d.id.as_str()).collect();
    if failed.is_empty() {
        format!("{what}: {} of {} students", done.len(), done.len())
    } else {
        format!("{what}: {} of {} students; not: {}", done.len() - failed.len(), done.len(), failed.join(", "))
    }
}

/// Fetches the repositories of the students with a `git` column, `jobs` at a
/// time, and gives each the fetched folder as their solution; those that
/// cannot be fetched are taken out of the run, each with their error.
async fn fetch_repos(students: &mut Vec<Student>, jobs: u16, quiet: bool) -> Vec<Done> {
    let with_git: Vec<(usize, String)> = students.iter().enumerate().filter_map(|(i, s)| s.git.clone().map(|g| (i, g))).collect();
    if with_git.is_empty() {
        return vec![];
    }
    if !quiet {
        eprintln!("fetching {} student repositor{}", with_git.len(), if with_git.len() == 1 { "y" } else { "ies" });
    }
    let fetched: Vec<(usize, std::time::Duration, Result<PathBuf, String>)> = stream::iter(with_git.into_iter().map(|(i, url)| async move {
        let t0 = Instant::now();
        let r = tokio::task::spawn_blocking(move || crate::class::fetch_git(&url)).await.unwrap_or_else(|e| Err(e.to_string()));
        (i, t0.elapsed(), r)
    }))
    .buffer_unordered(jobs as usize)
    .collect()
    .await;
    let mut failed = Vec::new();
    let mut drop_ids = Vec::new();
    for (i, took, r) in fetched {
        match r {
            Ok(dir) => students[i].solution = Some(dir),
            Err(e) => {
                let d = Done { id: students[i].id.clone(), code: exit::LAB_FAILED, took, stdout: String::new(), stderr: format!("× could not fetch their repository: {e}") };
                if !quiet {
                    eprintln!("  {} {:<16} {}", mark(d.code), d.id, error_line(&d.stderr));
                }
                drop_ids.push(d.id.clone());
                failed.push(d);
            }
        }
    }
    students.retain(|s| !drop_ids.contains(&s.id));
    failed
}

fn load(cat: &Catalogue, c: &ClassArgs) -> Result<Vec<Student>, Error> {
    cat.find(&c.lab)?;
    let students = read_roster(&c.roster)?;
    if let Some(dir) = &c.solutions {
        if !dir.is_dir() {
            return Err(Error::Usage(format!("--solutions {}: not a folder; give the folder holding a folder per student, named by their id", dir.display())));
        }
    }
    Ok(students)
}

/// How a student's service is given to `up`/`verify`.
fn solution_args(s: &Student, solutions: Option<&PathBuf>) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = Vec::new();
    if let Some(p) = &s.solution {
        v.extend(["--solution".into(), p.clone().into_os_string()]);
    } else if let Some(i) = &s.image {
        v.extend(["--image".into(), i.into()]);
    } else if let Some(t) = &s.target {
        v.extend(["--target".into(), t.into()]);
    } else if let Some(dir) = solutions {
        v.extend(["--solution".into(), dir.join(&s.id).into_os_string()]);
    }
    v
}

fn images_args(c: &ClassArgs) -> Vec<std::ffi::OsString> {
    match c.images {
        Some(crate::images::ImageSet::Debian) => vec!["--images".into(), "debian".into()],
        Some(crate::images::ImageSet::Upstream) => vec!["--images".into(), "upstream".into()],
        None => vec![],
    }
}

async fn up(cat: &Catalogue, c: ClassArgs, prune: bool, globals: &Globals, quiet: bool) -> Result<i32, Error> {
    let all = load(cat, &c)?;
    let class = c.class_name()?;
    let mut students = all.clone();
    let failed = fetch_repos(&mut students, c.jobs, quiet).await;
    let lab = c.lab.clone();
    let mut done = each(
        &students,
        c.jobs,
        &class,
        globals,
        quiet,
        &format!("bringing up {lab} for"),
        |s| {
            let mut a: Vec<std::ffi::OsString> = vec!["up".into(), lab.as_str().into(), "--student".into(), s.id.as_str().into(), "--quiet".into()];
            a.extend(images_args(&c));
            a.extend(solution_args(s, c.solutions.as_ref()));
            a
        },
        |d| if d.code == 0 { format!("  {} {:<16} up in {}", mark(0), d.id, fmt_dur(d.took)) } else { format!("  {} {:<16} exit {}: {}", mark(d.code), d.id, d.code, error_line(&d.stderr)) },
    )
    .await?;
    done.extend(failed);
    if prune {
        let session = super::session(quiet).await?;
        let keep: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        for i in session.backend.instances(None).await? {
            let Some(student) = i.student.clone().filter(|s| i.lab == lab && !keep.contains(&s.as_str())) else { continue };
            match crate::session::instance_class(&i) {
                Some(k) if k == class => {
                    let r = session.backend.down(Some(&i.instance)).await?;
                    if !quiet {
                        eprintln!("  - {student:<16} not on the roster: removed {} ({} containers)", i.instance, r.containers.len());
                    }
                }
                other if !quiet => {
                    let whose = other.map_or("not by a class (lab up --student)".to_string(), |k| format!("by class {k}"));
                    eprintln!("  · {student:<16} not on the roster, left alone: brought up {whose}, not by class {class}");
                }
                _ => {}
            }
        }
    }
    println!("{}", summary("up", &done));
    Ok(class_code(&done))
}

async fn verify(cat: &Catalogue, c: ClassArgs, globals: &Globals, quiet: bool) -> Result<i32, Error> {
    let mut students = load(cat, &c)?;
    let class = c.class_name()?;
    let failed = fetch_repos(&mut students, c.jobs, quiet).await;
    let lab = c.lab.clone();
    let session = super::session(quiet).await?;
    let mut done = each(
        &students,
        c.jobs,
        &class,
        globals,
        quiet,
        &format!("verifying {lab} for"),
        |s| {
            let mut a: Vec<std::ffi::OsString> = vec!["verify".into(), lab.as_str().into(), "--student".into(), s.id.as_str().into(), "--output".into(), "json".into(), "--keep".into()];
            a.extend(images_args(&c));
            a.extend(solution_args(s, c.solutions.as_ref()));
            a
        },
        |d| match serde_json::from_str::<serde_json::Value>(&d.stdout) {
            Ok(r) => {
                let v = Verdict::from_report("", "", &d.id, 0, &r);
                let total = v.passed + v.failed + v.skipped + v.errors;
                match &v.first_failed {
                    None => format!("  {} {:<16} {}/{total} passed in {}", mark(d.code), d.id, v.passed, fmt_dur(d.took)),
                    Some(f) => format!("  {} {:<16} {}/{total} passed; first failed: {f}: {}", mark(d.code), d.id, v.passed, v.summary.unwrap_or_default()),
                }
            }
            Err(_) => format!("  {} {:<16} exit {}: {}", mark(d.code), d.id, d.code, error_line(&d.stderr)),
        },
    )
    .await?;
    done.extend(failed);
    // Each verdict is kept with the student's instance.
    let now = crate::backend::unix_now();
    for d in &done {
        let instance = crate::plan::instance_name(&lab, Some(&d.id));
        let report = serde_json::from_str::<serde_json::Value>(&d.stdout).unwrap_or_else(|_| {
            // It did not get as far as checking: a verdict that says why.
            serde_json::json!({"checks": [{"name": "lab-verify", "status": "error", "message": error_line(&d.stderr)}], "summary": {"errors": 1}})
        });
        let v = Verdict::from_report(&instance, &lab, &d.id, now, &report);
        if let Err(e) = session.backend.record_verdict(&v).await {
            eprintln!("warning: the verdict of {} could not be kept: {e}", d.id);
        }
    }
    println!("{}", summary("all checks passed", &done));
    Ok(class_code(&done))
}

/// One student's line of `class status`.
#[derive(Debug, serde::Serialize)]
struct Row {
    student: String,
    instance: String,
    /// running, partly running (n of m containers), stopped, none (a verdict without an instance).
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    /// The token of the student's own view of the board (from the instance's secret).
    #[serde(skip)]
    token: Option<String>,
}

/// The students of `--roster`, when given.
fn only(roster: Option<&std::path::Path>) -> Result<Option<Vec<String>>, Error> {
    Ok(match roster {
        Some(r) => Some(read_roster(r)?.into_iter().map(|s| s.id).collect()),
        None => None,
    })
}

/// Each student instance of a lab (of `only`'s students, when given) with its last verdict, in natural order.
async fn rows(backend: &crate::backend::Backend, lab: &str, only: Option<&[String]>) -> Result<Vec<Row>, Error> {
    let mut rows: Vec<Row> = Vec::new();
    for i in backend.instances(None).await? {
        let Some(student) = i.student.clone().filter(|_| i.lab == lab) else { continue };
        let running = i.containers.iter().filter(|c| c.running()).count();
        let state = match (running, i.containers.len()) {
            (0, 0) => "none".to_string(),
            (0, _) => "stopped".to_string(),
            (r, n) if r == n => "running".to_string(),
            (r, n) => format!("partly running ({r} of {n} containers)"),
        };
        let token = crate::session::instance_secret(&i).map(crate::class::board_token);
        rows.push(Row { student, instance: i.instance.clone(), state, verdict: None, token });
    }
    for v in backend.verdicts(lab).await? {
        match rows.iter_mut().find(|r| r.instance == v.instance) {
            Some(r) => r.verdict = Some(v),
            None => rows.push(Row { student: v.student.clone(), instance: v.instance.clone(), state: "none".into(), verdict: Some(v), token: None }),
        }
    }
    if let Some(ids) = only {
        rows.retain(|r| ids.contains(&r.student));
    }
    rows.sort_by(|a, b| crate::class::natural(&a.student, &b.student));
    Ok(rows)
}

async fn status(cat: &Catalogue, lab: &str, json: bool, only: Option<Vec<String>>) -> Result<i32, Error> {
    cat.find(lab)?;
    let session = super::session(true).await?;
    let rows = rows(&session.backend, lab, only.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"lab": lab, "students": rows})).expect("rows serialize"));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no student instances of {lab} (start them with `lab class up {lab} --roster FILE`)");
        return Ok(exit::OK);
    }
    let now = crate::backend::unix_now();
    println!("{:<16} {:<12} {:<10} {:<24} when", "student", "state", "checks", "first failed");
    for r in &rows {
        let (checks, first, when) = match &r.verdict {
            None => ("-".to_string(), "not verified yet".to_string(), String::new()),
            Some(v) => (
                format!("{}/{}", v.passed, v.passed + v.failed + v.skipped + v.errors),
                v.first_failed.clone().unwrap_or_else(|| "-".into()),
                match now.saturating_sub(v.at) {
                    0 => "just now".to_string(),
                    d => format!("{} ago", fmt_dur(std::time::Duration::from_secs(d))),
                },
            ),
        };
        println!("{:<16} {:<12} {:<10} {:<24} {when}", r.student, r.state, checks, first);
    }
    Ok(exit::OK)
}

async fn credentials(cat: &Catalogue, lab: &str, roster: &std::path::Path, out: &std::path::Path, expires: std::time::Duration, quiet: bool) -> Result<i32, Error> {
    cat.find(lab)?;
    let students = read_roster(roster)?;
    if expires < std::time::Duration::from_secs(600) {
        return Err(Error::Usage(format!("--expires {}: the API server gives tokens of 10 minutes or more; give 10m or longer", humantime::format_duration(expires))));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Usage(format!("--out {}: {e}; give a folder lab may write to", out.display())))?;
    let session = super::session(quiet).await?;
    let kube = session.backend.name() == "kubernetes";
    let mut code = exit::OK;
    for s in &students {
        let instance = crate::plan::instance_name(lab, Some(&s.id));
        // Both backends: the instance's name and the token of the student's
        // own row of the board; on Docker also their addresses and their
        // fault proxy's control token; on Kubernetes a kubeconfig.
        let written = match session.backend.instances(Some(&instance)).await {
            Ok(found) if found.is_empty() => Err(format!("no instance {instance} (bring the class up first: lab class up {lab} --roster FILE)")),
            Ok(found) => {
                let mut text = format!("# {} ({}): your instance of {lab}\nLAB_INSTANCE={instance}\n", s.id, s.name);
                let secret = found.iter().find_map(crate::session::instance_secret);
                if let Some(secret) = secret {
                    text.push_str(&format!("# your own row of the class board: its address with ?token=<this>\nLAB_BOARD_TOKEN={}\n", crate::class::board_token(secret)));
                }
                if !kube {
                    for c in found.iter().flat_map(|i| i.containers.iter()) {
                        if let Some(p) = c.host_port {
                            let var = format!("{}_{}", c.service, c.node).to_uppercase().replace('-', "_");
                            text.push_str(&format!("{var}_ADDR=127.0.0.1:{p}\n"));
                        }
                    }
                    let proxied = found.iter().flat_map(|i| i.containers.iter()).any(|c| c.service == "proxy");
                    if let (true, Some(secret)) = (proxied, secret) {
                        text.push_str(&format!(
                            "# your fault proxy's control port (PROXY_1_ADDR) takes JSON lines after {{\"cmd\":\"auth\",\"token\":\"<this>\"}}\n{}={}\n",
                            crate::chaos::proxy::TOKEN_ENV,
                            crate::chaos::proxy::token_for(secret)
                        ));
                    }
                }
                let env = write_private(&out.join(format!("{}.env", s.id)), &text);
                if kube {
                    match (env, session.backend.student_kubeconfig(&instance, lab, &s.id, expires).await) {
                        (Ok(env), Ok((text, until))) => write_private(&out.join(format!("{}.kubeconfig", s.id)), &text).map(|p| format!("{p} and {env} (namespace {instance}; expires {until})")),
                        (Err(e), _) => Err(e),
                        (_, Err(e)) => Err(e.to_string()),
                    }
                } else {
                    env
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(what) if !quiet => eprintln!("  ✓ {:<16} {what}", s.id),
            Ok(_) => {}
            Err(e) => {
                eprintln!("  ✗ {:<16} {e}", s.id);
                code = exit::LAB_FAILED;
            }
        }
    }
    Ok(code)
}

/// Writes a file only its owner may read (it holds a token or addresses).
fn write_private(path: &std::path::Path, text: &str) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

/// The board page; it polls `state`.
const BOARD_PAGE: &str = include_str!("board.html");

/// The `token` of a request's query, if any.
fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// What the board's `state` shows to a request with this token: every row
/// without a token (refused on a private board), a student's own row alone
/// with their token, every row with the instructor's; any other token is
/// refused.
fn board_view(mut rows: Vec<Row>, token: Option<&str>, instructor: Option<&str>) -> Result<Vec<Row>, &'static str> {
    let same = |a: Option<&str>, b: &str| a.is_some_and(|a| crate::class::same_token(a, b));
    match token {
        Some(t) if instructor.is_some_and(|i| crate::class::same_token(t, i)) => Ok(rows),
        Some(t) => match rows.iter().position(|r| same(r.token.as_deref(), t)) {
            Some(k) => Ok(vec![rows.swap_remove(k)]),
            None => Err("this token opens no row of this board: use the address lab class board printed, or your LAB_BOARD_TOKEN from lab class credentials"),
        },
        None if instructor.is_some() => Err("this board is private: open it with a token (the address lab class board printed, or ?token=<your LAB_BOARD_TOKEN>)"),
        None => Ok(rows),
    }
}

async fn board(cat: &Catalogue, lab: &str, listen: std::net::SocketAddr, only: Option<Vec<String>>, private: bool, quiet: bool) -> Result<i32, Error> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let def = cat.find(lab)?.def;
    let checks: Vec<serde_json::Value> = def.stages.iter().flat_map(|st| st.checks.iter().map(move |c| serde_json::json!({"stage": st.stage, "name": c.name, "expect": c.expect}))).collect();
    let session = super::session(true).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| Error::Usage(format!("--listen {listen}: {e}; pick another port (or 0 for any free one)")))?;
    let addr = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    let instructor = private.then(|| crate::class::board_token(&crate::plan::new_secret()));
    match &instructor {
        Some(t) => println!("class board of {lab}: http://{addr}/?token={t}"),
        None => println!("class board of {lab}: http://{addr}/"),
    }
    if !quiet {
        if !addr.ip().is_loopback() && !private {
            eprintln!("warning: anyone who reaches {addr} sees every student's results (--private shows them only with a token)");
        }
        eprintln!("(Ctrl-C stops it)");
    }
    let shared = std::sync::Arc::new((session, checks, lab.to_string(), only, instructor));
    let serve = async {
        loop {
            let (sock, _) = listener.accept().await.map_err(|e| Error::Io(format!("board: {e}")))?;
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let (session, checks, lab, only, instructor) = &*shared;
                        let (status, kind, body) = match (req.method(), req.uri().path()) {
                            (&hyper::Method::GET, "/") => (200, "text/html; charset=utf-8", BOARD_PAGE.as_bytes().to_vec()),
                            (&hyper::Method::GET, "/state") => match rows(&session.backend, lab, only.as_deref()).await.map(|r| board_view(r, query_token(req.uri().query()), instructor.as_deref())) {
                                Ok(Ok(rows)) => (
                                    200,
                                    "application/json",
                                    serde_json::to_vec(&serde_json::json!({"lab": lab, "at": crate::backend::unix_now(), "checks": checks, "students": rows})).expect("state serializes"),
                                ),
                                Ok(Err(why)) => (401, "text/plain; charset=utf-8", format!("{why}\n").into_bytes()),
                                Err(e) => (503, "text/plain; charset=utf-8", format!("the backend could not be read: {e}\n").into_bytes()),
                            },
                            _ => (404, "text/plain; charset=utf-8", b"not found: the board is at /\n".to_vec()),
                        };
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
                        let h = r.headers_mut();
                        h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
                        h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
                        // Nothing from elsewhere: the page works offline and leaks nothing.
                        h.insert(
                            hyper::header::CONTENT_SECURITY_POLICY,
                            hyper::header::HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"),
                        );
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
            });
        }
    };
    tokio::select! {
        r = serve => r,
        _ = super::interrupted() => Ok(exit::OK),
    }
}

async fn down(cat: &Catalogue, lab: &str, yes: bool, only: Option<Vec<String>>, quiet: bool) -> Result<i32, Error> {
    cat.find(lab)?;
    let session = super::session(quiet).await?;
    let mut instances: Vec<String> = rows(&session.backend, lab, only.as_deref()).await?.into_iter().map(|r| r.instance).collect();
    instances.sort_by(|a, b| crate::class::natural(a, b));
    if instances.is_empty() {
        println!("no student instances of {lab}");
        return Ok(exit::OK);
    }
    if !yes {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(Error::Usage(format!("lab class down {lab} removes {} student instances; add --yes to do it without a question", instances.len())));
        }
        eprint!("remove {} student instances of {lab} ({})? [y/N] ", instances.len(), instances.join(", "));
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing removed");
            return Ok(exit::OK);
        }
    }
    let results = futures_util::future::join_all(instances.iter().map(|i| session.backend.down(Some(i)))).await;
    let mut code = exit::OK;
    for (i, r) in instances.iter().zip(results) {
        match r {
            Ok(r) if !quiet => eprintln!("  removed {i} ({} containers)", r.containers.len()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("  {i}: {e}");
                code = exit::LAB_FAILED;
            }
        }
    }
    println!("removed {} student instances of {lab}", instances.len());
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, code: i32) -> Done {
        Done { id: id.into(), code, took: std::time::Duration::ZERO, stdout: String::new(), stderr: String::new() }
    }

    #[test]
    fn the_class_exit_code_tells_the_services_failures_from_labs() {
        assert_eq!(class_code(&[done("a", 0), done("b", 0)]), 0);
        assert_eq!(class_code(&[done("a", 0), done("b", 1)]), 1);
        assert_eq!(class_code(&[done("a", 1), done("b", 4), done("c", 3)]), 4);
        assert_eq!(summary("up", &[done("s1", 0), done("s2", 1)]), "up: 1 of 2 students; not: s2");
    }

    #[test]
    fn a_board_token_opens_its_own_row_the_instructor_s_all_any_other_none() {
        let row = |id: &str| Row { student: id.into(), instance: format!("lab-x--{id}"), state: "running".into(), verdict: None, token: Some(crate::class::board_token(id)) };
        let class = || vec![row("s1"), row("s2"), Row { token: None, ..row("s3") }];
        fn ids(r: Result<Vec<Row>, &str>) -> Result<Vec<String>, &str> {
            r.map(|v| v.into_iter().map(|r| r.student).collect())
        }
        let s2 = crate::class::board_token("s2");
        // An open board: everything without a token, a student's row with theirs.
        assert_eq!(ids(board_view(class(), None, None)).unwrap(), ["s1", "s2", "s3"]);
        assert_eq!(ids(board_view(class(), Some(&s2), None)).unwrap(), ["s2"]);
        assert!(board_view(class(), Some("0123"), None).is_err());
        // A private board: nothing without a token, everything with the instructor's.
        assert!(board_view(class(), None, Some("inst")).unwrap_err().contains("private"));
        assert_eq!(ids(board_view(class(), Some("inst"), Some("inst"))).unwrap(), ["s1", "s2", "s3"]);
        assert_eq!(ids(board_view(class(), Some(&s2), Some("inst"))).unwrap(), ["s2"]);
        assert!(board_view(class(), Some(&s2[..31]), Some("inst")).is_err(), "a prefix of a token is no token");
        assert_eq!(query_token(Some("a=1&token=abc")), Some("abc"));
        assert_eq!(query_token(None), None);
        assert_ne!(crate::class::board_token("a"), crate::class::board_token("b"));
        assert_ne!(crate::class::board_token("a"), crate::chaos::proxy::token_for("a")[..32], "the board's token does not give the proxy's");
    }

    #[test]
    fn a_students_error_line_is_the_one_lab_printed() {
        assert_eq!(
            error_line("  × your service (app-1) did not become ready within 20s: refused\n  help: it must answer GET /healthz\n"),
            "your service (app-1) did not become ready within 20s: refused"
        );
        assert_eq!(error_line("something\nlast words\n"), "last words");
    }
}
