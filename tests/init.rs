//! `lab init`: every lab's starter builds offline with lab's own build path,
//! starts, and fails its first `lab verify` at the first check that needs the
//! learner's code, with the TODO's words (never a build or start-up failure);
//! its CI workflow and dev container say what they must; a folder that is
//! not empty is refused without --force.

mod common;

use std::path::Path;

use common::*;

/// Each lab and the first check a fresh starter fails: the checks before it
/// (the readiness route the starter answers) pass.
const FIRST_TODO: &[(&str, &str)] = &[
    ("chat", "connect"),
    ("circuit-breaker", "passes-through"),
    ("gin-api", "create-account"),
    ("grpc-auth", "signup"),
    ("memlimit", "docs-and-transform"),
    ("monitoring", "target-up"),
    ("orders", "topology"),
    ("raft", "leader-elected"),
    ("raft-redirect", "leader-elected"),
    ("rate-limiter", "limit-per-client"),
    ("task-cli", "add-task"),
    ("timeouts", "fetch-ok"),
    ("url-shortener", "create-link"),
];

fn init(lab_name: &str, dir: &Path) {
    let mut c = lab();
    c.args(["init", lab_name]).arg(dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "lab init {lab_name} failed");
}

#[test]
fn every_lab_has_a_starter() {
    let labs: Vec<String> = std::fs::read_dir(root().join("labs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for l in &labs {
        assert!(FIRST_TODO.iter().any(|(n, _)| n == l), "the lab {l} is not in FIRST_TODO: add it with the first check its starter fails");
    }
    assert_eq!(labs.len(), FIRST_TODO.len(), "FIRST_TODO names a lab that is gone");
}

/// Each starter, built and verified as a learner's first `lab verify` would be.
#[test]
fn each_starter_builds_and_fails_at_its_first_check_with_the_todo() {
    let mut wrong = Vec::new();
    for (lab_name, first) in FIRST_TODO {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(lab_name);
        init(lab_name, &dir);
        let student = "starter";
        let _down = Down(lab_name, Some(student));
        let mut c = lab();
        c.args(["verify", lab_name, "--student", student, "--output", "json", "--solution"]).arg(&dir);
        let out = run(c);
        let report = json(&out);
        if out.status.code() != Some(1) {
            wrong.push(format!("{lab_name}: exit {:?}, expected 1 (a check failed)\n{}", out.status.code(), failures(&report)));
            continue;
        }
        let checks = report["checks"].as_array().unwrap();
        let Some(at) = checks.iter().position(|c| c["status"] != "passed") else {
            wrong.push(format!("{lab_name}: every check passed"));
            continue;
        };
        let c = &checks[at];
        let name = c["name"].as_str().unwrap();
        let text = c.to_string();
        if name != *first || c["status"] != "failed" {
            wrong.push(format!("{lab_name}: the first check not passed is {name} ({}), expected {first} to fail\n{}", c["status"], failures(&report)));
        } else if !text.contains(&format!("TODO({first})")) {
            wrong.push(format!("{lab_name}: {first} failed without the TODO's words `TODO({first})`\n{}", failures(&report)));
        }
        assert_gone(&format!("lab-{lab_name}--{student}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn the_starter_holds_a_module_a_makefile_a_dev_container_and_a_workflow_running_lab_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    init("url-shortener", &dir);

    let go_mod = std::fs::read_to_string(dir.join("go.mod")).unwrap();
    assert!(go_mod.starts_with("module url-shortener\n"), "{go_mod}");
    assert!(go_mod.lines().any(|l| l.starts_with("go 1.")), "go.mod names the toolchain's version: {go_mod}");
    assert!(go_mod.contains("github.com/gomodule/redigo v1.8.3"), "{go_mod}");

    let main = std::fs::read_to_string(dir.join("main.go")).unwrap();
    // Every route of the contract, each with the TODO of its check, and the environment read.
    for want in [r#""POST /api/links""#, r#""GET /{code}""#, "TODO(create-link)", "TODO(redirect)", r#"env("REDIS_ADDR""#, r#"":" + port"#] {
        assert!(main.contains(want), "main.go lacks {want}:\n{main}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("LAB.md")).unwrap(), std::fs::read_to_string(root().join("labs/url-shortener/README.md")).unwrap());

    let make = std::fs::read_to_string(dir.join("Makefile")).unwrap();
    for (target, command) in [("verify:", "\tlab verify $(LAB) --solution ."), ("up:", "\tlab up $(LAB) --solution ."), ("down:", "\tlab down $(LAB)")] {
        assert!(make.lines().any(|l| l == target), "Makefile lacks {target}:\n{make}");
        assert!(make.lines().any(|l| l == command), "Makefile lacks the recipe {command:?}:\n{make}");
    }
    assert!(make.contains("LAB := url-shortener"), "{make}");

    let dc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(".devcontainer/devcontainer.json")).unwrap()).expect("devcontainer.json is JSON");
    assert!(dc["image"].as_str().unwrap().contains("go"), "{dc:#}");
    assert!(dc["features"].as_object().unwrap().keys().any(|k| k.contains("docker-in-docker")), "{dc:#}");
    let post = dc["postCreateCommand"].as_str().unwrap();
    assert!(post.contains("cargo install") && post.contains(" lab") && post.contains("golang-github-gomodule-redigo-dev"), "{post}");

    let wf: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join(".github/workflows/lab.yml")).unwrap()).expect("the workflow is YAML");
    let on = &wf["on"];
    assert!(on.get("push").is_some() && on.get("pull_request").is_some(), "runs on push and pull requests: {on:?}");
    let steps = wf["jobs"]["verify"]["steps"].as_sequence().expect("a job `verify` with steps");
    let runs: Vec<String> = steps.iter().filter_map(|s| s["run"].as_str().map(str::to_string)).collect();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.iter().any(|u| u.starts_with("actions/checkout@")), "{uses:?}");
    assert!(uses.iter().any(|u| u.starts_with("actions/setup-go@")), "{uses:?}");
    let install = runs.iter().position(|r| r.contains("cargo install") && r.contains("lab")).expect("a step installs lab");
    let verify = runs.iter().position(|r| r.contains("lab verify url-shortener --solution . --output junit --report lab.xml")).expect("a step runs lab verify with the JUnit report");
    assert!(install < verify, "lab is installed before it runs");
    assert!(runs[verify].contains("--report lab.html"), "{}", runs[verify]);
    assert!(runs.iter().any(|r| r.contains("apt-get install") && r.contains("golang-github-gomodule-redigo-dev")), "the Go libraries are installed: {runs:?}");
    let upload = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@"))).expect("a step publishes the reports");
    assert_eq!(upload["if"].as_str(), Some("always()"), "the reports are published when the checks fail too");
    let paths = upload["with"]["path"].as_str().unwrap();
    assert!(paths.contains("lab.xml") && paths.contains("lab.html"), "{paths}");
}

#[test]
fn a_folder_that_is_not_empty_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let mut c = lab();
    c.args(["init", "timeouts"]).arg(tmp.path());
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not empty") && err.contains("notes.txt") && err.contains("--force"), "{err}");
    assert!(!tmp.path().join("main.go").exists(), "nothing written");

    let mut c = lab();
    c.args(["init", "timeouts", "--force"]).arg(tmp.path());
    assert_eq!(run(c).status.code(), Some(0));
    assert!(tmp.path().join("main.go").is_file());
    assert_eq!(std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(), "mine", "other files are kept");

    let mut c = lab();
    c.args(["init", "no-such-lab"]).arg(tmp.path().join("x"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(2), "an unknown lab is a usage error");
}

/// The gRPC starter's `make proto` generates the contract's package, which a
/// learner's service registers and lab's build path builds (offline, GOPATH
/// mode with Debian's libraries): the check then fails for the method the
/// learner has not written, not for a build error.
#[test]
fn the_grpc_starter_generates_its_package_and_builds_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("auth");
    init("grpc-auth", &dir);
    let make = std::process::Command::new("make").arg("proto").current_dir(&dir).output().expect("make runs");
    assert!(make.status.success(), "make proto: {}{}", String::from_utf8_lossy(&make.stdout), String::from_utf8_lossy(&make.stderr));
    assert!(dir.join("authpb/auth_grpc.pb.go").is_file());
    // The learner's first step: register a server that embeds the generated Unimplemented one.
    let main = std::fs::read_to_string(dir.join("main.go")).unwrap();
    let main = main
        .replace("\"google.golang.org/grpc/status\"\n)", "\"google.golang.org/grpc/status\"\n\n\t\"grpc-auth/authpb\"\n)\n\ntype server struct{ authpb.UnimplementedAuthServer }\n")
        .replace("\t// TODO: register your service here: authpb.RegisterAuthServer(srv, &server{...}).", "\tauthpb.RegisterAuthServer(srv, &server{})");
    assert!(main.contains("authpb.RegisterAuthServer(srv, &server{})"), "the starter's registration comment changed:\n{main}");
    std::fs::write(dir.join("main.go"), main).unwrap();
    let _down = Down("grpc-auth", Some("proto"));
    let mut c = lab();
    c.args(["verify", "grpc-auth", "--student", "proto", "--check", "signup", "--output", "json", "--solution"]).arg(&dir);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{}", failures(&report));
    let signup = check(&report, "signup");
    assert_eq!(signup["status"], "failed", "{}", failures(&report));
    assert!(signup.to_string().contains("UNIMPLEMENTED"), "{}", failures(&report));
    assert!(!signup.to_string().contains("TODO(signup)"), "the generated server answers now, not the starter's TODO");
}
