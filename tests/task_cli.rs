//! The task-CLI lab end to end: a command-line lab builds the learner's program
//! and runs it (no container). The reference solution passes every check; each
//! realistic bug fails at the right check with a message a learner can act on; a
//! hostile program (hangs, floods, writes garbage) fails its checks without
//! hanging `lab verify`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn task_cli() -> std::path::PathBuf {
    root().join("tests/solutions/task-cli")
}

/// Remove a student's built program whatever happened.
struct DownCli(&'static str);

impl Drop for DownCli {
    fn drop(&mut self) {
        let _ = lab().args(["down", "task-cli", "--student", self.0]).output();
    }
}

fn failed_checks(report: &serde_json::Value) -> Vec<String> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "failed" || c["status"] == "error").map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_reference_solution_passes_every_check_without_a_container() {
    let _down = DownCli("good");
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "task-cli", "--student", "good", "--output", "json", "--solution"]).arg(task_cli()).arg("--report").arg(&xml);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 14, "{report:#}");
    assert_eq!(report["summary"]["failed"], 0);
    assert!(report["target"].as_str().unwrap().ends_with("/task"), "the report names the program: {}", report["target"]);
    // JUnit names every check.
    let text = std::fs::read_to_string(&xml).unwrap();
    for name in ["add-task", "list-tasks", "complete-task", "delete-task", "failed-write-keeps-data", "flag-beats-env", "corrupt-data-file"] {
        assert!(text.contains(&format!(r#"<testcase name="{name}""#)), "{name} missing from\n{text}");
    }
    // Nothing ran in Docker, and verify removed the program it built.
    assert_gone("lab-task-cli--good");
    assert!(!std::path::Path::new(&report["target"].as_str().unwrap()).exists());
}

/// (bug, the check that must fail, words its message must contain)
const BUGS: &[(&str, &str, &str)] = &[
    ("precedence", "flag-beats-env", "files[\"from-env.json\"] present; expected files[\"from-env.json\"] absent"),
    ("config-ignored", "config-file-sets-data-file", "files[\".tasks.json\"] present; expected files[\".tasks.json\"] absent"),
    ("panic-on-corrupt", "corrupt-data-file", "expected stderr not containing \"panic:\""),
    ("overwrite-corrupt", "corrupt-data-file", "got exit = 0; expected exit matching"),
    ("truncate-on-failed-write", "failed-write-keeps-data", "CHANGED (it held"),
];

#[test]
fn each_buggy_variant_fails_at_its_check() {
    // `lab up` builds once; each `lab verify` without --solution runs that program with --env.
    let _down = DownCli("bugs");
    let mut c = lab();
    c.args(["up", "task-cli", "--student", "bugs", "--solution"]).arg(task_cli());
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("nothing runs between checks"), "{}", stdout(&out));
    // `lab status` lists the built program (there is no container to list).
    let mut c = lab();
    c.args(["status", "task-cli", "--student", "bugs"]);
    let text = stdout(&run(c));
    assert!(text.contains("lab-task-cli--bugs (lab task-cli, student bugs, a command-line program"), "{text}");
    let mut c = lab();
    c.args(["status", "task-cli", "--student", "bugs", "--json"]);
    let st = json(&run(c));
    assert!(st[0]["program"].as_str().unwrap().ends_with("/lab-task-cli--bugs/task"), "{st:#}");
    for (bug, check_name, words) in BUGS {
        let mut c = lab();
        c.args(["verify", "task-cli", "--student", "bugs", "--output", "json", "--env", &format!("TASKCLI_BUG={bug}")]);
        let out = run(c);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{bug}: exit code\n{report:#}");
        let ch = check(&report, check_name);
        assert_eq!(ch["status"], "failed", "{bug}: {check_name} should fail\n{report:#}");
        let text = [&ch["summary"], &ch["got"], &ch["expected"]].map(|v| v.as_str().unwrap_or("").to_string()).join(" | ");
        assert!(text.contains(words), "{bug}: {check_name} message lacks {words:?}: {text}");
        assert!(!ch["hint"].as_str().unwrap_or("").is_empty(), "{bug}: no hint");
        // This bug explains every failure: nothing else broke.
        assert_eq!(failed_checks(&report), [check_name.to_string()], "{bug}");
    }
    // The program `lab up` built is kept between verifies, and `lab down` removes it.
    let out = run({
        let mut c = lab();
        c.args(["down", "task-cli", "--student", "bugs"]);
        c
    });
    assert!(stdout(&out).contains("removed the built program"), "{}", stdout(&out));
    let mut c = lab();
    c.args(["status", "task-cli", "--student", "bugs"]);
    let text = stdout(&run(c));
    assert!(text.contains("no lab instances are running"), "{text}");
    let out = run({
        let mut c = lab();
        c.args(["verify", "task-cli", "--student", "bugs"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no program of yours is built"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn chaos_says_plainly_that_there_is_nothing_to_break() {
    for args in [&["chaos", "task-cli", "kill", "1"][..], &["chaos", "task-cli"][..]] {
        let out = run({
            let mut c = lab();
            c.args(args);
            c
        });
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("chaos has nothing to break"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = run({
        let mut c = lab();
        c.args(["chaos", "task-cli", "status"]);
        c
    });
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("command-line lab"), "{}", stdout(&out));
}

/// A program that does everything wrong at once: garbage in its data file,
/// a flood on stdout, a hang (with a child left behind), garbage JSON.
const HOSTILE: &str = r#"#!/bin/sh
# Each check runs in its own folder, named after the check: misbehave differently in each.
case "$(basename "$PWD")" in
  add-task) printf 'not json at all \001\002 {{{' > .tasks.json; echo added ;;
  list-tasks) case "$*" in *--json*) head -c 20000000 /dev/urandom ;; esac ;;
  complete-task) sleep 613 & sleep 613 ;;
  delete-task) echo '{"id": [}' ;;
esac
exit 0
"#;

#[test]
fn a_hostile_program_fails_its_checks_without_hanging_verify() {
    let _down = DownCli("hostile");
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("task");
    std::fs::write(&prog, HOSTILE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let mut c = lab();
    let xml = dir.path().join("report.xml");
    c.args(["verify", "task-cli", "--student", "hostile", "--output", "json", "--solution"]).arg(&prog).arg("--report").arg(&xml);
    let out = run(c);
    let took = started.elapsed();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    // One hang costs one step's timeout (5 s), not more.
    assert!(took < Duration::from_secs(30), "verify took {took:?}");
    let said = |name: &str| {
        let ch = check(&report, name);
        assert_eq!(ch["status"], "failed", "{name}\n{report:#}");
        [&ch["summary"], &ch["got"]].map(|v| v.as_str().unwrap_or("").to_string()).join(" | ")
    };
    // Garbage in the data file.
    assert!(said("add-task").contains("not valid JSON"), "{}", said("add-task"));
    // A flood of random bytes: cut, and not JSON.
    let list = said("list-tasks");
    assert!(list.contains("got no json.0.title") && list.contains("stdout (cut at 262144 bytes)"), "{list}");
    // A hang, with a child holding the output open: killed at the step's timeout.
    assert!(said("complete-task").contains("did not finish within 5s (killed)"), "{}", said("complete-task"));
    // Garbage JSON on stdout.
    assert!(said("delete-task").contains("an answer without it"), "{}", said("delete-task"));
    // The JUnit report stays well-formed XML: no control characters from the flood.
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(!text.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r')), "control characters in the JUnit report");
    assert!(text.contains(r#"<testcase name="list-tasks""#), "{}", &text[..text.len().min(2000)]);
    // The required first stage failed: the rest is skipped, not run.
    assert_eq!(report["summary"]["skipped"], 10, "{report:#}");
    // Nothing the program started is left running.
    std::thread::sleep(Duration::from_millis(200));
    let left = std::process::Command::new("pgrep").args(["-f", "^sleep 613$"]).output().unwrap();
    assert!(left.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&left.stdout));
}

/// Each check alone (`--check`) gives the verdict it has in the whole run.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("task-cli", &task_cli(), "alone");
}
