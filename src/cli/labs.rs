//! `lab list`, `lab show`, `lab validate`: reading lab definitions, no backend.

use std::path::PathBuf;

use crate::error::{exit, Error};
use crate::images::ImageSet;
use crate::lab::{self, Catalogue};

pub fn list(cat: &Catalogue) -> Result<i32, Error> {
    let all = cat.all();
    if all.is_empty() {
        println!("no labs found; add a folder with --labs DIR");
        return Ok(exit::OK);
    }
    let mut bad = false;
    // In roadmap order: the rung first (labs without one last), then the name.
    let mut all = all;
    all.sort_by_key(|(name, res)| (res.as_ref().ok().and_then(|l| l.def.rung).unwrap_or(u32::MAX), name.clone()));
    for (name, res) in all {
        match res {
            Ok(l) => println!("{:<16} {:>2}  {:<16} {}", name, l.def.rung.map(|r| r.to_string()).unwrap_or_else(|| "-".into()), l.def.module.as_deref().unwrap_or("-"), l.def.title),
            Err(_) => {
                bad = true;
                println!("{name:<16} (invalid: run `lab validate` for details)");
            }
        }
    }
    Ok(if bad { exit::BAD_INPUT } else { exit::OK })
}

pub fn show(cat: &Catalogue, name: &str, readme: bool) -> Result<i32, Error> {
    let l = cat.find(name)?;
    let d = &l.def;
    println!("{} — {}", d.name, d.title);
    if let (Some(r), Some(m)) = (d.rung, &d.module) {
        println!("rung {r} of the roadmap: {m}");
    }
    println!("source: {}", l.source.describe());
    if !d.summary.trim().is_empty() {
        println!("\n{}", d.summary.trim());
    }
    println!("\nDependencies:");
    if d.dependencies.is_empty() {
        println!("  none");
    }
    for (n, dep) in &d.dependencies {
        // A dependency that runs lab's own program (lab's upstream) runs from the set's base image.
        let runs_lab = crate::template::render(&dep.template, "image", n, "lab", &dep.options).is_ok_and(|(_, s)| s.lab.runs_lab);
        if runs_lab {
            println!("  {n:<12} template {:<12} lab's own program, on the base image (upstream {}, debian {})", dep.template, ImageSet::Upstream.image("base"), ImageSet::Debian.image("base"));
        } else {
            println!("  {n:<12} template {:<12} upstream {:<26} debian {}", dep.template, ImageSet::Upstream.image(&dep.template), ImageSet::Debian.image(&dep.template));
        }
    }
    let s = &d.service;
    // What `--solution` takes for this lab, and what lab does with it.
    let made = match (s.build, s.program.as_deref()) {
        (crate::lab::BuildKind::Go, _) => "built from Go source (or an executable you built, taken as it is)".to_string(),
        (crate::lab::BuildKind::Executable, Some(p)) => format!("a program you give as it is, nothing built: a folder (or .tar.gz of it) holding the executable {p} and its files"),
        (crate::lab::BuildKind::Executable, None) => "a program you give as it is, nothing built: an executable, or a folder (or .tar.gz of it) holding one executable and its files".to_string(),
    };
    match (&s.run, &s.ready) {
        (crate::lab::RunKind::Cli, _) => println!(
            "\nYour program `{}`: {made}, a command-line program. Nothing runs between checks: each check runs it with arguments and environment, in a fresh directory that is its HOME, and reads its exit code, output and files",
            s.name
        ),
        (_, Some(r)) => {
            let ready = if r.grpc {
                "the gRPC health service (grpc.health.v1.Health/Check) answers SERVING".to_string()
            } else if r.tcp {
                format!("port {} accepts a TCP connection", s.port)
            } else {
                format!("GET {} answers {}", r.path, r.status)
            };
            println!("\nYour service `{}`: {made}; run as {} container(s), listening on port {}, ready when {ready}", s.name, s.replicas, s.port)
        }
        (_, None) => println!("\nYour service `{}`: {made}; run as {} container(s), listening on port {}", s.name, s.replicas, s.port),
    }
    if !s.command.is_empty() {
        println!("Started with the arguments (in its data folder {}): {}", crate::plan::DATA_DIR, s.command.join(" "));
    }
    if s.env.is_empty() {
        println!("Environment it receives from lab: only HOME and PATH, plus what each check sets");
    } else {
        println!("Environment it receives:");
    }
    for (k, v) in &s.env {
        println!("  {k}={v}");
    }
    println!("\nChecks:");
    for st in &d.stages {
        println!("  {}{}", st.stage, if st.required { " (required: later stages need it)" } else { "" });
        for c in &st.checks {
            println!("    {:<28} {}", c.name, c.expect);
        }
    }
    if readme {
        match l.readme() {
            Some(r) => println!("\n{r}"),
            None => println!("\n(no README.md)"),
        }
    } else {
        println!("\nThe full contract: lab show {} --readme", d.name);
    }
    Ok(exit::OK)
}

pub fn validate(cat: &Catalogue, paths: &[PathBuf]) -> Result<i32, Error> {
    let results: Vec<(String, Result<lab::Lab, lab::LoadError>)> = if paths.is_empty() { cat.all() } else { paths.iter().map(|p| (p.display().to_string(), lab::load_path(p))).collect() };
    if results.is_empty() {
        return Err(Error::Usage("no labs to validate".into()));
    }
    let mut bad = 0;
    for (name, res) in results {
        match res {
            Ok(l) => println!("✓ {name} ({} checks)", l.def.stages.iter().map(|s| s.checks.len()).sum::<usize>()),
            Err(e) => {
                bad += 1;
                println!("✗ {name}");
                match e {
                    lab::LoadError::Invalid(errs) => super::print_definition_errors(errs),
                    other => eprintln!("{:?}", miette::Report::new(other)),
                }
            }
        }
    }
    Ok(if bad > 0 { exit::BAD_INPUT } else { exit::OK })
}
