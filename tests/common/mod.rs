//! Helpers for tests that drive the real `lab` binary against the real Docker engine.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference solution of the URL shortener.
pub fn shortener() -> PathBuf {
    root().join("tests/solutions/url-shortener")
}

/// A `lab` command with the debian image set.
pub fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
    c.env("LAB_IMAGES", "debian").env("NO_COLOR", "1").current_dir(root());
    c
}

/// Run and return the output, printing it for the test log.
pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("lab runs");
    eprintln!("--- {:?} exited {:?}\n{}\n{}", c.get_args().collect::<Vec<_>>(), out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Names of containers (all states) or networks carrying a label filter.
pub fn docker_names(kind: &str, label: &str) -> Vec<String> {
    let args: Vec<&str> = match kind {
        "container" => vec!["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
        "network" => vec!["network", "ls", "--filter", label, "--format", "{{.Name}}"],
        "volume" => vec!["volume", "ls", "--filter", label, "--format", "{{.Name}}"],
        _ => unreachable!(),
    };
    let out = Command::new("docker").args(&args).output().expect("docker runs");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Assert that nothing of an instance is left.
pub fn assert_gone(instance: &str) {
    let label = format!("label=lab.instance={instance}");
    for kind in ["container", "network", "volume"] {
        let left = docker_names(kind, &label);
        assert!(left.is_empty(), "{kind}s of {instance} left behind: {left:?}");
    }
}

/// Remove an instance whatever happened (for test cleanup).
pub struct Down(pub &'static str, pub Option<&'static str>);

impl Drop for Down {
    fn drop(&mut self) {
        let mut c = lab();
        c.args(["down", self.0]);
        if let Some(s) = self.1 {
            c.args(["--student", s]);
        }
        let _ = c.output();
    }
}

/// Parse a JSON report from stdout.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

/// The outcome of a named check in a JSON report.
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name} in {report}"))
}
