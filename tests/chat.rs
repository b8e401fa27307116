//! The chat lab end to end on the real Docker engine: three instances of the
//! reference solution and one Redis pass every check; each realistic bug fails
//! at the right check with a message a learner can act on.

mod common;

use common::*;

fn chat() -> std::path::PathBuf {
    root().join("tests/solutions/chat")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("chat", Some("good"));
    let mut c = lab();
    c.args(["verify", "chat", "--student", "good", "--output", "json", "--solution"]).arg(chat());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 13);
    assert_eq!(report["summary"]["failed"], 0);
    assert_gone("lab-chat--good");
}

static VARIANTS: Variants =
    Variants { lab: "chat", var: "CHAT_BUG", solution: "tests/solutions/chat", prefix: "bug", at_once: 2, stagger: std::time::Duration::ZERO, passing: &[], within: None, also: earlier_checks_passed };

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, CHAT_BUGS);
}

#[test]
fn junit_report_names_every_check() {
    let _down = Down("chat", Some("junit"));
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "chat", "--student", "junit", "--env", "CHAT_BUG=no-origin-check", "--solution"]).arg(chat()).arg("--report").arg(&xml);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&xml).unwrap();
    for name in [
        "healthz",
        "connect",
        "fanout-across-instances",
        "exactly-once",
        "order-per-sender",
        "bad-origin-refused",
        "allowed-origin-normalised",
        "bad-frames-ignored",
        "oversized-frame-closes",
        "ping-drops-silent-client",
        "redis-restart-resubscribe",
        "slow-client-does-not-stall",
        "instance-killed",
    ] {
        assert!(text.contains(&format!(r#"<testcase name="{name}""#)), "{name} missing:\n{text}");
    }
    assert!(text.contains("<failure message=\"the probe got accepted = true; expected accepted = false\""), "{text}");
    let term = stdout(&out);
    assert!(term.contains("✗ bad-origin-refused"), "{term}");
}

#[test]
fn chaos_kills_an_instance_and_the_others_keep_talking() {
    let _down = Down("chat", Some("chaos"));
    let mut c = lab();
    c.args(["up", "chat", "--student", "chaos", "--solution"]).arg(chat());
    assert!(run(c).status.success());
    let mut c = lab();
    c.args(["chaos", "chat", "--student", "chaos", "kill-node"]);
    let out = run(c);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(running("lab-chat--chaos"), vec!["lab-chat--chaos-app-1", "lab-chat--chaos-app-2", "lab-chat--chaos-redis-1"]);
    // verify does not run its checks against what lab broke: it reverts the
    // kill first, says so, restarts the nodes, and the checks pass.
    let mut c = lab();
    c.args(["verify", "chat", "--student", "chaos", "--output", "json"]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("reverted fault kill-") && said.contains("lab-chat--chaos-app-3"), "{said}");
    assert!(running("lab-chat--chaos").contains(&"lab-chat--chaos-app-3".to_string()));
    let mut c = lab();
    c.args(["chaos", "chat", "--student", "chaos", "status"]);
    assert!(stdout(&run(c)).contains("no faults in force"));
}

/// Names of an instance's running containers, sorted.
fn running(instance: &str) -> Vec<String> {
    let out =
        std::process::Command::new("docker").args(["ps", "--filter", &format!("label=lab.instance={instance}"), "--filter", "label=lab.role", "--format", "{{.Names}}"]).output().expect("docker runs");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    v.sort();
    v
}

/// Each check alone (`--check`) gives the verdict it has in the whole run.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("chat", &chat(), "alone");
}
