//! `lab up`: bring a lab up and say where everything is.

use clap::Args;

use super::{check_student, interrupted, session, RunArgs};
use crate::error::{exit, Error};
use crate::images;
use crate::lab::Catalogue;
use crate::plan::Plan;
use crate::session::{Session, SolutionArg, UpOptions};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Lab name or folder.
    pub lab: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// On failure, keep what was started (for debugging) instead of removing it.
    #[arg(long)]
    pub keep_on_failure: bool,
}

pub async fn run(cat: &Catalogue, a: UpArgs, quiet: bool) -> Result<i32, Error> {
    let lab = cat.find(&a.lab)?;
    check_student(&a.run.student)?;
    let (set, _) = images::choose(a.run.images).map_err(Error::Usage)?;
    if lab.def.service.run == crate::lab::RunKind::Cli && a.run.target.is_some() {
        return Err(Error::Usage(format!("{} is a command-line lab: give --solution PATH (your Go folder or program); there is no URL to run against", lab.name())));
    }
    let opts = UpOptions { student: a.run.student.clone(), images: set, solution: a.run.solution()?, go_mode: a.run.go_mode, extra_env: a.run.extra_env()?, ready_timeout: a.run.ready_timeout };
    let s = session(quiet).await?;
    let _lock = crate::session::InstanceLock::acquire(&crate::plan::instance_name(lab.name(), a.run.student.as_deref()), "up", &s.ui).await?;
    s.ui.line(&format!("lab up {} ({} images)", lab.name(), set));
    let plan = guarded_up(&s, &lab, &opts, a.keep_on_failure, "--keep-on-failure").await?;
    s.revert_faults(&lab, &plan, true).await?;
    print_plan(&plan);
    if matches!(s.backend, crate::backend::Backend::Kubernetes(_)) && !plan.containers.is_empty() {
        println!("\nOn Kubernetes these addresses are port-forwards that end with this command; `lab verify`, `lab chaos` and `lab logs` open their own.");
        if let Some(c) = plan.replicas().next().or(plan.containers.first()) {
            println!("To reach a node yourself: kubectl port-forward -n {} pod/{} {}:{}", plan.instance, crate::backend::kubernetes::objects::pod_name(c), c.port.host, c.port.container);
        }
    }
    Ok(exit::OK)
}

/// `up`, removing what it started if it fails or is interrupted (unless `keep`,
/// the command's flag `keep_flag`), as long as the instance did not exist before.
pub(crate) async fn guarded_up(s: &Session, lab: &crate::lab::Lab, opts: &UpOptions, keep: bool, keep_flag: &str) -> Result<Plan, Error> {
    s.backend.ping().await?;
    let existed = s.find_instance(lab.name(), opts.student.as_deref()).await?.is_some();
    let res = tokio::select! {
        r = s.up(lab, opts) => r,
        _ = interrupted() => Err(Error::Interrupted),
    };
    if let Err(e) = &res {
        if !existed && !keep && !matches!(e, Error::Backend(b) if b.unreachable()) {
            let name = crate::plan::instance_name(lab.name(), opts.student.as_deref());
            match s.down(Some(&name)).await {
                Ok(r) if !r.containers.is_empty() || !r.networks.is_empty() => s.ui.line(&format!("removed the half-made instance {name} (keep it with {keep_flag})")),
                Ok(_) => {}
                Err(e2) => s.ui.warn(&format!("could not remove {name}: {e2}; run `lab down {}`", lab.name())),
            }
        }
    }
    res
}

/// ` --student NAME` for the commands a student's instance needs.
fn student_arg(plan: &Plan) -> String {
    plan.student.as_ref().map(|s| format!(" --student {s}")).unwrap_or_default()
}

fn print_plan(plan: &Plan) {
    if plan.is_cli() {
        match &plan.program {
            Some(p) => {
                println!("\nbuilt your program: {}", p.display());
                println!("This is a command-line lab: nothing runs between checks, and `lab chaos` has nothing to break.");
                println!("Try it yourself, e.g.: {} --help", p.display());
                println!("\nNext: lab verify {}{}   (runs each check's commands in a fresh HOME)", plan.lab, student_arg(plan));
            }
            None => println!("\n{} is a command-line lab: give --solution PATH and `lab up` builds your program (nothing else runs).", plan.lab),
        }
        return;
    }
    println!("\n{} is up.", plan.instance);
    for c in &plan.containers {
        println!(
            "  {:<16} http://127.0.0.1:{} ({})",
            c.name,
            c.port.host,
            if c.role == crate::plan::Role::Service { "your service" } else { "dependency" }.to_string() + &format!(", port {} inside", c.port.container)
        );
    }
    match (&plan.target, plan.replicas().next()) {
        (Some(t), _) => {
            println!("\nRun your service yourself with this environment, then `lab verify {}{}` checks {t}:", plan.lab, student_arg(plan));
            for (k, v) in plan.service_env.first().into_iter().flatten() {
                println!("  export {k}={}", shell_quote(v));
            }
        }
        (None, Some(_)) => println!("\nNext: lab verify {}{s}   (lab logs {}{s} shows your service's log)", plan.lab, plan.lab, s = student_arg(plan)),
        (None, None) => println!("\nOnly the dependencies run. Give --solution PATH or --target URL for your service."),
    }
    let _ = SolutionArg::None;
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
