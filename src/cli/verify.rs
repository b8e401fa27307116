//! `lab verify`: run a lab's checks and give a verdict a learner understands
//! and a CI can read.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{check_student, interrupted, session, up::guarded_up, RunArgs};
use crate::error::{exit, Error};
use crate::event::{CheckResult, Event, Failure, Outcome, RunReport, Summary};
use crate::images;
use crate::lab::{Catalogue, RunKind};
use crate::report::{self, Format, Terminal};
use crate::session::{SolutionArg, UpOptions};
use crate::verify::{self, Target};

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Lab name or folder.
    pub lab: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// What to print on stdout.
    #[arg(long, value_parser = super::report_format(), default_value = "terminal")]
    pub output: Format,
    /// Also write the report to this file (.xml: JUnit, .json: JSON, .html: a page of the checks, with the workload's timeline and latencies for labs that run a workload); repeatable.
    #[arg(long = "report", value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    /// Keep the instance running afterwards when verify brought it up (also when the service did not start).
    #[arg(long)]
    pub keep: bool,
    /// The workload's seed (its choices of keys, values, nodes, nemesis targets); default: the lab's, else a fresh one, printed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Show each step as it runs, and what a passed check measured.
    #[arg(long, short)]
    pub verbose: bool,
    /// Run only this check (repeatable), with the required stages before it (`lab show <lab>` lists the checks).
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
    /// Run only the checks of this stage (repeatable), with the required stages before it.
    #[arg(long = "stage", value_name = "NAME")]
    pub stages: Vec<String>,
    /// Build and run the checks again on every save of the solution's Go files
    /// (debounced), keeping the lab up between runs and saying which checks
    /// changed; Ctrl-C stops and removes the lab (unless --keep).
    #[arg(long, requires = "solution")]
    pub watch: bool,
    /// A run of --watch (which keeps the lab up between runs itself).
    #[arg(skip)]
    pub watching: bool,
}

pub async fn run(cat: &Catalogue, a: VerifyArgs, quiet: bool) -> Result<i32, Error> {
    if a.watch {
        return watch(cat, a, quiet).await;
    }
    once(cat, a, quiet).await.map(|(code, _)| code)
}

/// `--watch`: verify, then again after each burst of saves of the solution's
/// Go files, until Ctrl-C.
async fn watch(cat: &Catalogue, a: VerifyArgs, quiet: bool) -> Result<i32, Error> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let lab = cat.find(&a.lab)?;
    let dir = a.run.solution.clone().expect("clap requires --solution with --watch");
    if !dir.is_dir() {
        return Err(Error::Usage(format!("--watch {}: watch needs a Go folder to watch, not a file; give --solution DIR", dir.display())));
    }
    // Events name absolute paths: the folder's own, to show them relative to it.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    if a.output != Format::Terminal {
        return Err(Error::Usage("--watch prints each run for a person reading it: drop --output (use --report FILE to keep each run's report)".into()));
    }
    // Writes, creations, removals and renames of Go files; not reads (the
    // build reads every file, and would set the next run off).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let writes = matches!(
                ev.kind,
                EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Data(_) | notify::event::ModifyKind::Name(_) | notify::event::ModifyKind::Any)
            );
            let go: Vec<PathBuf> = ev.paths.into_iter().filter(|p| is_go_file(p)).collect();
            if writes && !go.is_empty() {
                let _ = tx.send(go);
            }
        }
    })
    .map_err(|e| Error::Io(format!("watching {}: {e}", dir.display())))?;
    watcher.watch(&dir, RecursiveMode::Recursive).map_err(|e| Error::Io(format!("watching {}: {e}", dir.display())))?;
    let mut each = a.clone();
    each.watch = false;
    each.keep = true;
    each.watching = true;
    let mut last: Option<RunReport> = None;
    let mut code;
    loop {
        let res = tokio::select! {
            r = once(cat, each.clone(), quiet) => r,
            _ = interrupted() => Err(Error::Interrupted),
        };
        match res {
            Ok((c, report)) => {
                code = c;
                if let (Some(before), Some(now)) = (&last, &report) {
                    println!("{}", changes(before, now));
                }
                if report.is_some() {
                    last = report;
                }
            }
            Err(Error::Interrupted) => return stop_watching(&lab, &a, quiet).await,
            // lab itself could not run this time (the engine went away, a
            // port was taken): say so and wait for the next save.
            Err(e) => {
                code = e.exit_code();
                super::print_error(e);
            }
        }
        println!("watching {} for changes to .go files, go.mod and go.sum (Ctrl-C stops and {})", dir.display(), if a.keep { "keeps the lab up" } else { "removes the lab" });
        // A save (also one made while the run ran), then quiet for 300 ms (an
        // editor writes a file in several steps; `gofmt -w` of many files is one change).
        let mut changed: Vec<PathBuf> = tokio::select! {
            got = rx.recv() => match got {
                Some(paths) => paths,
                None => return Ok(code),
            },
            _ = interrupted() => return stop_watching(&lab, &a, quiet).await,
        };
        loop {
            tokio::select! {
                more = tokio::time::timeout(Duration::from_millis(300), rx.recv()) => match more {
                    Ok(Some(paths)) => changed.extend(paths),
                    _ => break,
                },
                _ = interrupted() => return stop_watching(&lab, &a, quiet).await,
            }
        }
        changed.sort();
        changed.dedup();
        let shown: Vec<String> = changed.iter().map(|p| p.strip_prefix(&dir).unwrap_or(p).display().to_string()).collect();
        println!("\n── {} changed: building and checking again", shown.join(", "));
    }
}

/// Whether a changed path is one a Go build reads.
fn is_go_file(p: &std::path::Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".go") || name == "go.mod" || name == "go.sum") && !name.starts_with('.') && !p.components().any(|c| c.as_os_str() == ".git")
}

/// Ctrl-C while watching: remove the lab (unless --keep), exit as interrupted.
async fn stop_watching(lab: &crate::lab::Lab, a: &VerifyArgs, quiet: bool) -> Result<i32, Error> {
    if a.keep {
        eprintln!("stopped watching; the lab is kept up (lab down {} removes it)", lab.name());
        return Err(Error::Interrupted);
    }
    // Session::down removes a command-line lab's built program too.
    let s = session(quiet).await?;
    let instance = crate::plan::instance_name(lab.name(), a.run.student.as_deref());
    if let Err(e) = s.down(Some(&instance)).await {
        s.ui.warn(&format!("could not remove {instance}: {e}"));
    }
    Err(Error::Interrupted)
}

/// Which checks changed since the last run, one line each.
fn changes(before: &RunReport, now: &RunReport) -> String {
    let status = |o: &Outcome| match o {
        Outcome::Passed => "passed",
        Outcome::Failed(_) => "failed",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Error { .. } => "error",
    };
    let mut lines = Vec::new();
    for c in &now.checks {
        let was = before.checks.iter().find(|b| b.name == c.name).map(|b| status(&b.outcome));
        let is = status(&c.outcome);
        match was {
            Some(w) if w != is => lines.push(format!(
                "  {} {}: {w} → {is}",
                if is == "passed" {
                    "✓"
                } else if is == "failed" || is == "error" {
                    "✗"
                } else {
                    "-"
                },
                c.name
            )),
            None => lines.push(format!("  {}: new, {is}", c.name)),
            _ => {}
        }
    }
    if lines.is_empty() {
        format!("no check changed since the last run ({} passed, {} failed)", now.summary.passed, now.summary.failed)
    } else {
        format!("changed since the last run:\n{}", lines.join("\n"))
    }
}

/// One verify run: its exit code and, when checks ran, the report.
async fn once(cat: &Catalogue, a: VerifyArgs, quiet: bool) -> Result<(i32, Option<RunReport>), Error> {
    let began = std::time::Instant::now();
    let lab = cat.find(&a.lab)?;
    check_student(&a.run.student)?;
    let only = verify::Selection { checks: a.checks.clone(), stages: a.stages.clone() };
    if let Some(why) = only.unknown(&lab.def) {
        return Err(Error::Usage(why));
    }
    let mut report_files = Vec::new();
    for p in &a.reports {
        report_files.push(match p.extension().and_then(|e| e.to_str()) {
            Some("xml") => (p.clone(), Format::Junit),
            Some("json") => (p.clone(), Format::Json),
            Some("html") => (p.clone(), Format::Html),
            _ => return Err(Error::Usage(format!("--report {}: name a .xml (JUnit), .json or .html file", p.display()))),
        });
    }
    let solution = a.run.solution()?;
    let s = session(quiet || a.output != Format::Terminal).await?;
    let _lock = crate::session::InstanceLock::acquire(&crate::plan::instance_name(lab.name(), a.run.student.as_deref()), "verify", &s.ui).await?;
    s.backend.ping().await?;
    // A command-line lab runs nothing between checks: what `lab up` leaves is the built program.
    let cli = lab.def.service.run == RunKind::Cli;
    let existed = if cli { crate::session::built_program(&lab, a.run.student.as_deref()).is_file() } else { s.find_instance(lab.name(), a.run.student.as_deref()).await?.is_some() };

    let plan = match &solution {
        SolutionArg::Target(_) if cli => return Err(Error::Usage(format!("{} is a command-line lab: give --solution PATH (your Go folder or program); there is no URL to check", lab.name()))),
        SolutionArg::None if cli => s.cli_plan(&lab, a.run.student.as_deref(), &a.run.extra_env()?).map_err(|e| match e {
            Error::NotUp(_) => Error::Usage(format!("no program of yours is built for {}: give --solution PATH, or run `lab up {} --solution PATH` first", lab.name(), lab.name())),
            other => other,
        })?,
        SolutionArg::None => s.running_plan(&lab, a.run.student.as_deref()).await?,
        _ => {
            let (set, _) = images::choose(a.run.images).map_err(Error::Usage)?;
            let opts = UpOptions { student: a.run.student.clone(), images: set, solution: solution.clone(), go_mode: a.run.go_mode, extra_env: a.run.extra_env()?, ready_timeout: a.run.ready_timeout };
            match guarded_up(&s, &lab, &opts, a.keep, "--keep").await {
                Ok(p) => p,
                // The learner's code did not build or start: a failed check, reported as such.
                Err(e @ (Error::Build(crate::build::BuildError::Compile { .. } | crate::build::BuildError::Libraries { .. }) | Error::ServiceNotReady { .. } | Error::ServiceExited { .. })) => {
                    let instance = crate::plan::instance_name(lab.name(), a.run.student.as_deref());
                    let target = match &solution {
                        SolutionArg::Path(p) => p.display().to_string(),
                        SolutionArg::Image(r) => r.clone(),
                        _ => String::new(),
                    };
                    let report = startup_failure(&lab, &only, &instance, &target, &e, began.elapsed());
                    emit_report(&report, &a, &report_files, false)?;
                    return Ok((exit::CHECKS_FAILED, Some(report)));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let brought_up = !existed;
    if existed && !cli {
        // Checks start from an instance lab has not broken: faults left in force
        // (by `lab chaos`, or by a run that crashed) are reverted first.
        let healed = s.revert_faults(&lab, &plan, false).await?;
        // What the service kept from the faults (a pooled connection to a
        // Redis that went away) is not the checks' business: fresh processes.
        let nodes: Vec<&crate::plan::ContainerSpec> = plan.replicas().collect();
        if !healed.is_empty() && !nodes.is_empty() {
            let chaos = crate::chaos::Chaos { backend: &s.backend, plan: &plan, lab: &lab, helper_image: plan.helper_image() };
            chaos.inject(&crate::chaos::Fault::Restart, &nodes, None).await.map_err(|e| Error::Chaos(Box::new(e)))?;
            s.ui.notice(&format!("restarted {} so that the checks start from a fresh state", nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")));
        }
    }
    let managed = plan.replicas().next().is_some() || plan.program.is_some();
    if !managed && plan.target.is_none() {
        if brought_up {
            let _ = s.down(Some(&plan.instance)).await;
        }
        return Err(Error::Usage(format!("instance {} runs no service of yours; give --solution PATH or --target URL", plan.instance)));
    }

    let mut target = Target::new(&lab, &plan, &s.backend, managed, plan.helper_image());
    // Exec probes run the learner's program as lab built it.
    target.solution = plan.program.clone();
    target.seed = a.seed;
    target.only = only;
    let mut term = Terminal::stdout(a.verbose);
    let live = a.output == Format::Terminal;
    let mut emit = |e: &Event| {
        if live {
            term.event(e);
        }
    };
    let result = tokio::select! {
        r = verify::run(&target, &mut emit) => Some(r),
        _ = interrupted() => None,
    };
    let cleanup = async {
        if brought_up && !a.keep {
            if let Err(e) = s.down(Some(&plan.instance)).await {
                s.ui.warn(&format!("could not remove {}: {e}", plan.instance));
            }
        } else if !cli {
            // Leave a kept instance running as it was: revert every fault this
            // run made (it found none in force), start anything a check stopped.
            if let Err(e) = s.revert_faults(&lab, &plan, false).await {
                s.ui.warn(&format!("could not revert the faults of this run: {e}; run `lab chaos {} heal`", lab.name()));
            }
            for c in &plan.containers {
                let _ = s.backend.start(&c.name).await;
            }
        }
    };
    let Some(report) = result else {
        cleanup.await;
        return Err(Error::Interrupted);
    };
    cleanup.await;
    if brought_up && a.keep && !a.watching {
        if cli {
            s.ui.line(&format!("kept the built program of {} (lab down {} removes it)", plan.instance, lab.name()));
        } else {
            s.ui.line(&format!("kept {} running (lab down {} removes it)", plan.instance, lab.name()));
        }
    }
    emit_report(&report, &a, &report_files, true)?;
    let code = if report.passed() {
        exit::OK
    } else if report.summary.failed == 0 {
        exit::LAB_FAILED
    } else {
        exit::CHECKS_FAILED
    };
    Ok((code, Some(report)))
}

/// Print the report in the chosen format (the terminal's live output already
/// showed a run that `lived`) and write the `--report` file.
fn emit_report(report: &RunReport, a: &VerifyArgs, files: &[(PathBuf, Format)], lived: bool) -> Result<(), Error> {
    match a.output {
        Format::Terminal => {
            if !lived {
                print!("{}", report::render(report, Format::Terminal));
            }
        }
        f => print!("{}", report::render(report, f)),
    }
    for (path, f) in files {
        std::fs::write(path, report::render(report, *f)).map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// A report for a service that did not build or start: that failure, as the
/// first check (`service-builds` or `service-starts`), then every check of
/// the lab (or of `--check`/`--stage`), skipped for it.
fn startup_failure(lab: &crate::lab::Lab, only: &verify::Selection, instance: &str, target: &str, e: &Error, took: Duration) -> RunReport {
    let (name, expect, summary, got, hint) = match e {
        Error::Build(crate::build::BuildError::Compile { output, .. }) => {
            ("service-builds", "the solution builds with `go build`", "your code does not compile".to_string(), output.clone(), "fix the compile errors shown".to_string())
        }
        Error::Build(b @ crate::build::BuildError::Libraries { .. }) => {
            let help = miette::Diagnostic::help(b).map(|h| h.to_string()).unwrap_or_default();
            ("service-builds", "the solution builds with `go build`", b.to_string(), String::new(), help)
        }
        Error::Build(crate::build::BuildError::NoProgram { dir, why, hint }) => {
            ("service-given", "the solution holds the program to run", format!("{}: {why}", dir.display()), String::new(), hint.clone())
        }
        Error::ServiceExited { container, code, after, oom, logs, probe } => (
            "service-starts",
            "the service starts and answers its readiness probe",
            format!("{container} exited with code {code} after {after}{oom}"),
            logs.clone(),
            format!("it must keep running and answer {probe}; read the log lines above"),
        ),
        Error::ServiceNotReady { container, last, logs, probe, .. } => (
            "service-starts",
            "the service starts and answers its readiness probe",
            format!("{container} never became ready"),
            format!("{last}\n{logs}"),
            format!("it must answer {probe}; read the log lines above"),
        ),
        other => ("service-starts", "the service starts", other.to_string(), String::new(), String::new()),
    };
    let outcome = Outcome::Failed(Failure { summary, sent: String::new(), got, expected: expect.to_string(), hint, step: 1, logs: vec![] });
    let mut s = Summary::default();
    s.add(&outcome);
    let mut checks = vec![CheckResult { stage: "startup".into(), name: name.into(), expect: expect.into(), outcome, duration: took, notes: vec![], measured: vec![] }];
    let reason = if name == "service-builds" { "the service did not build" } else { "the service did not start" };
    for (stage, picked) in only.pick(&lab.def) {
        for c in picked {
            let r = CheckResult {
                stage: stage.stage.clone(),
                name: c.name.clone(),
                expect: c.expect.clone(),
                outcome: Outcome::Skipped { reason: reason.into() },
                duration: Duration::ZERO,
                notes: vec![],
                measured: vec![],
            };
            s.add(&r.outcome);
            checks.push(r);
        }
    }
    s.duration = took;
    RunReport { lab: lab.name().to_string(), instance: instance.to_string(), target: target.to_string(), checks, summary: s, history: None }
}
