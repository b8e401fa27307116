//! `lab status`: running instances, read back from the backend's labels, and
//! the programs of command-line labs (`service.run: cli`) that `lab up` built
//! (they run no container: the built program in lab's cache is their state).

use std::path::PathBuf;

use serde::Serialize;

use super::session;
use crate::error::{exit, Error};
use crate::lab::Catalogue;

/// A command-line lab's instance: its built program.
#[derive(Debug, Serialize, PartialEq)]
pub struct ProgramState {
    pub instance: String,
    pub lab: String,
    pub student: Option<String>,
    pub program: PathBuf,
}

/// The built programs of the catalogue's command-line labs found under
/// `bin_dir` (lab's cache: one folder per instance), in instance order;
/// only `only` (an instance name) when given.
pub fn built_programs(cat: &Catalogue, bin_dir: &std::path::Path, only: Option<&str>) -> Vec<ProgramState> {
    let Ok(entries) = std::fs::read_dir(bin_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    if dirs.is_empty() {
        return Vec::new();
    }
    dirs.sort();
    let cli_labs: Vec<crate::lab::Lab> = cat.all().into_iter().filter_map(|(_, l)| l.ok()).filter(|l| l.def.service.run == crate::lab::RunKind::Cli).collect();
    let mut out = Vec::new();
    for dir in dirs.into_iter().filter(|d| only.is_none_or(|o| o == d)) {
        // `lab-<lab>` or `lab-<lab>--<student>`: names hold no `--`, so the split is unambiguous.
        let Some(rest) = dir.strip_prefix("lab-") else { continue };
        let (lab_name, student) = match rest.split_once(crate::plan::STUDENT_SEP) {
            Some((l, s)) => (l, Some(s.to_string())),
            None => (rest, None),
        };
        let found = cli_labs.iter().find(|l| l.name() == lab_name).map(|l| (l, student));
        if let Some((l, student)) = found {
            let program = bin_dir.join(&dir).join(&l.def.service.name);
            if program.is_file() {
                out.push(ProgramState { instance: dir, lab: l.name().to_string(), student, program });
            }
        }
    }
    out
}

/// A key that orders names as people do: runs of digits by their value.
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            out.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    out.push((text, 0));
    out
}

/// Revert the faults of these instances that are past their end (a `chaos
/// --for` whose process died); whether any was.
async fn revert_expired(cat: &Catalogue, s: &crate::session::Session, all: &[crate::backend::InstanceState]) -> Result<bool, Error> {
    let now = crate::backend::unix_now();
    let faults = s.backend.faults(None).await?;
    let mut any = false;
    for i in all.iter().filter(|i| faults.iter().any(|f| f.instance == i.instance && f.expired(now))) {
        let Ok(lab) = cat.find(&i.lab) else {
            continue;
        };
        let plan = s.running_plan(&lab, i.student.as_deref()).await?;
        any |= !s.revert_faults(&lab, &plan, true).await?.is_empty();
    }
    Ok(any)
}

pub async fn run(cat: &Catalogue, lab: Option<String>, student: Option<String>, json: bool) -> Result<i32, Error> {
    let s = session(true).await?;
    s.backend.ping().await?;
    // With a lab, every student's instance of it (or the one student's).
    let filter = student.as_deref().zip(lab.as_deref()).map(|(st, l)| crate::plan::instance_name(l, Some(st)));
    let lab_name = lab.as_deref().map(|l| cat.find(l).map(|x| x.name().to_string()).unwrap_or_else(|_| l.to_string()));
    let list = || async {
        let mut v = s.backend.instances(filter.as_deref()).await?;
        v.retain(|i| lab_name.as_deref().is_none_or(|l| i.lab == l));
        // s2 before s10.
        v.sort_by_key(|i| natural_key(&i.instance));
        Ok::<_, Error>(v)
    };
    let mut all = list().await?;
    if revert_expired(cat, &s, &all).await? {
        all = list().await?;
    }
    let mut programs = built_programs(cat, &crate::build::cache_dir().join("bin"), filter.as_deref());
    programs.retain(|p| lab_name.as_deref().is_none_or(|l| p.lab == l));
    if json {
        // Containers' instances, then command-line programs (with `program`).
        let mut items: Vec<serde_json::Value> = all.iter().map(|i| serde_json::to_value(i).expect("serializes")).collect();
        items.extend(programs.iter().map(|p| serde_json::to_value(p).expect("serializes")));
        println!("{}", serde_json::to_string_pretty(&items).expect("serializes"));
        return Ok(exit::OK);
    }
    if all.is_empty() && programs.is_empty() {
        println!("no lab instances are running{}", lab.map(|l| format!(" for {l}")).unwrap_or_default());
        return Ok(exit::OK);
    }
    for i in all {
        println!(
            "{} (lab {}{}{})",
            i.instance,
            i.lab,
            i.student.as_ref().map(|s| format!(", student {s}")).unwrap_or_default(),
            i.target.as_ref().map(|t| format!(", your service at {t}")).unwrap_or_default()
        );
        for c in &i.containers {
            let addr = c.host_port.map(|p| format!("127.0.0.1:{p}")).unwrap_or_else(|| "-".into());
            println!("  {:<36} {:<10} {:<22} {}", c.name, c.state, addr, c.image);
        }
    }
    for p in programs {
        println!("{} (lab {}{}, a command-line program: nothing runs between checks)", p.instance, p.lab, p.student.as_ref().map(|s| format!(", student {s}")).unwrap_or_default());
        println!("  built program {}", p.program.display());
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut v = vec!["lab-x--s10", "lab-x--s2", "lab-x", "lab-x--s1"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["lab-x", "lab-x--s1", "lab-x--s2", "lab-x--s10"]);
    }

    #[test]
    fn built_programs_of_command_line_labs_are_listed_by_instance() {
        let bin = tempfile::tempdir().unwrap();
        let put = |dir: &str, file: &str| {
            std::fs::create_dir_all(bin.path().join(dir)).unwrap();
            if !file.is_empty() {
                std::fs::write(bin.path().join(dir).join(file), "#!/bin/sh\n").unwrap();
            }
        };
        put("lab-task-cli", "task");
        put("lab-task-cli--alice", "task");
        put("lab-task-cli--bob", ""); // a build that did not finish: no program
        put("lab-url-shortener", "app"); // a container lab's binary: its containers say it
        put("lab-nope--x", "task");
        let cat = Catalogue::new(vec![]);
        let found = built_programs(&cat, bin.path(), None);
        let names: Vec<(&str, &str, Option<&str>)> = found.iter().map(|p| (p.instance.as_str(), p.lab.as_str(), p.student.as_deref())).collect();
        assert_eq!(names, vec![("lab-task-cli", "task-cli", None), ("lab-task-cli--alice", "task-cli", Some("alice"))]);
        assert_eq!(found[1].program, bin.path().join("lab-task-cli--alice/task"));
        let only = built_programs(&cat, bin.path(), Some("lab-task-cli--alice"));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].student.as_deref(), Some("alice"));
        assert!(built_programs(&cat, &bin.path().join("missing"), None).is_empty());
    }
}
