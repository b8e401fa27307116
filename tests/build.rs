//! Builds of the learner's solution: one `go build` per source however many
//! instances ask for it at once, and nothing of a build left behind by a
//! `kill -9` of lab (no running `go build`, no temporary GOPATH).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn task_cli() -> std::path::PathBuf {
    root().join("tests/solutions/task-cli")
}

/// `lab` with its cache (and Go's) in `cache`.
fn lab_in(cache: &std::path::Path) -> Command {
    let mut c = lab();
    c.env("LAB_CACHE_DIR", cache).env("GOCACHE", cache.join("go-build"));
    c
}

#[test]
fn three_instances_of_one_source_run_one_go_build() {
    let cache = tempfile::tempdir().unwrap();
    let children: Vec<_> = (1..=3)
        .map(|i| {
            let mut c = lab_in(cache.path());
            c.args(["up", "task-cli", "--student", &format!("b{i}"), "--solution"]).arg(task_cli()).stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let said: Vec<String> = outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).to_string()).collect();
    assert!(outs.iter().all(|o| o.status.success()), "{said:#?}");
    let reused = said.iter().filter(|s| s.contains("(the build of the same source, reused)")).count();
    assert_eq!(reused, 2, "one build, two reuses: {said:#?}");
    let builds: Vec<_> = std::fs::read_dir(cache.path().join("builds")).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    assert_eq!(builds.len(), 1, "one source, one build");
    let bins: Vec<Vec<u8>> = (1..=3).map(|i| std::fs::read(cache.path().join(format!("bin/lab-task-cli--b{i}/task"))).unwrap()).collect();
    assert!(bins.windows(2).all(|w| w[0] == w[1]), "every instance runs the same program");

    // A changed source is a new build.
    let src = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(task_cli()).unwrap().flatten() {
        std::fs::copy(e.path(), src.path().join(e.file_name())).unwrap();
    }
    std::fs::write(src.path().join("extra.go"), "package main\n\nvar extra = 1\n").unwrap();
    let mut c = lab_in(cache.path());
    c.args(["up", "task-cli", "--student", "b4", "--solution"]).arg(src.path());
    let out = run(c);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("reused"));
    // down --all takes the shared builds with it.
    let mut c = lab_in(cache.path());
    c.args(["down", "--all"]);
    assert!(run(c).status.success());
    assert!(!cache.path().join("builds").exists() && std::fs::read_dir(cache.path().join("bin")).unwrap().next().is_none());
}

/// The `go build` processes whose command line mentions `needle`.
fn go_builds(needle: &str) -> Vec<String> {
    let out = Command::new("ps").args(["-eo", "pid,args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(needle) && l.contains(" build ")).map(str::to_string).collect()
}

#[test]
fn kill_9_during_a_build_leaves_no_go_build_and_no_gopath() {
    let cache = tempfile::tempdir().unwrap();
    let needle = cache.path().to_string_lossy().to_string();
    // A cold Go cache makes the build last seconds: time to kill lab in the middle.
    let mut c = lab_in(cache.path());
    c.args(["up", "task-cli", "--student", "k9", "--solution"]).arg(task_cli()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let t = Instant::now();
    while go_builds(&needle).is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!go_builds(&needle).is_empty(), "go build started");
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    while !go_builds(&needle).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(go_builds(&needle), Vec::<String>::new(), "go build died with lab");
    let gopaths = || std::fs::read_dir(cache.path().join("gopath")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(gopaths(), 1, "the killed lab's GOPATH is still there");
    // The next build removes it, and builds what the killed one did not finish.
    let mut c = lab_in(cache.path());
    c.args(["up", "task-cli", "--student", "k9", "--solution"]).arg(task_cli());
    let out = run(c);
    assert!(out.status.success());
    assert_eq!(gopaths(), 0, "the GOPATH of a lab process that is gone is removed");
    let mut c = lab_in(cache.path());
    c.args(["down", "task-cli", "--student", "k9"]);
    run(c);
}
