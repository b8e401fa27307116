//! The URL-shortener lab end to end on the real Docker engine: the reference
//! solution passes every check; each realistic bug fails at the right check
//! with a message a learner can act on.

mod common;

use common::*;

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("url-shortener", Some("good"));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "good", "--output", "json", "--solution"]).arg(shortener());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 10);
    assert_eq!(report["summary"]["failed"], 0);
    // verify brought the instance up, so it took it down again.
    assert_gone("lab-url-shortener--good");
}

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&SHORTENER_VARIANTS, SHORTENER_BUGS);
}

#[test]
fn junit_report_names_every_check() {
    let _down = Down("url-shortener", Some("junit"));
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "junit", "--env", "SHORTENER_BUG=redirect-301", "--solution"]).arg(shortener()).arg("--report").arg(&xml);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains(r#"<testcase name="redirect""#), "{text}");
    assert!(text.contains("<failure message=\"the request got status 301 Moved Permanently; expected status 302 Found\""), "{text}");
    // Later stages depend on links and are skipped, not failed.
    assert!(text.contains(r#"<testcase name="survives-restart""#) && text.contains("<skipped"), "{text}");
    let term = stdout(&out);
    assert!(term.contains("✗ redirect"), "{term}");
    assert!(term.contains("hint:"), "{term}");
}

/// The reference solution with Go 1.22 routing (method and wildcard patterns,
/// `r.PathValue`), in a copy of its folder, optionally with a go.mod.
fn pattern_routed(go_mod: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(shortener()).unwrap().flatten() {
        std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
    }
    let p = d.path().join("handlers.go");
    let text = std::fs::read_to_string(&p).unwrap();
    let routed = text
        .replace("mux.HandleFunc(\"/healthz\", a.healthz)", "mux.HandleFunc(\"GET /healthz\", a.healthz)")
        .replace("mux.HandleFunc(\"/api/links\", a.createLink)", "mux.HandleFunc(\"POST /api/links\", a.createLink)")
        .replace("mux.HandleFunc(\"/\", a.redirect)", "mux.HandleFunc(\"GET /{code}\", a.redirect)")
        .replace("code := strings.TrimPrefix(r.URL.Path, \"/\")", "code := r.PathValue(\"code\")");
    assert_eq!(routed.matches("mux.HandleFunc(\"GET /").count() + routed.matches("mux.HandleFunc(\"POST /").count(), 3, "the routes were rewritten");
    assert!(routed.contains("r.PathValue(\"code\")"));
    std::fs::write(&p, routed).unwrap();
    if let Some(m) = go_mod {
        std::fs::write(d.path().join("go.mod"), m).unwrap();
    }
    d
}

/// A learner following a current Go tutorial routes with `GET /healthz` and
/// `/{code}`: built without a go.mod (GOPATH mode, whose defaults are those
/// of Go 1.20) every route would answer 404; lab builds it with the
/// toolchain's defaults, and it passes. With a go.mod that requires redigo
/// (which no module proxy here can fetch) it builds against Debian's copy
/// with the go.mod's Go version, and passes too.
#[test]
fn a_go_1_22_pattern_router_passes_with_or_without_a_go_mod() {
    for (student, go_mod) in [("mux", None), ("muxmod", Some("module example.com/shortener\n\ngo 1.22\n\nrequire github.com/gomodule/redigo v1.9.2\n"))] {
        let src = pattern_routed(go_mod);
        let _down = Down("url-shortener", Some(student));
        let mut c = lab();
        c.args(["verify", "url-shortener", "--student", student, "--output", "json", "--solution"]).arg(src.path());
        let out = run(c);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(0), "{student}: {report:#}");
        assert_eq!(report["summary"]["passed"], 10, "{student}");
        assert!(!src.path().join("zz_lab_go_defaults.go").exists(), "the learner's folder is left as it was");
    }
}

/// A go.mod whose requires neither the module cache nor Debian's libraries
/// hold is refused before `go build` (the learner's to fix: exit 1), naming
/// the module and where lab looks.
#[test]
fn a_go_mod_requiring_a_module_this_machine_lacks_says_which() {
    let src = pattern_routed(Some("module example.com/shortener\n\ngo 1.22\n\nrequire (\n\tgithub.com/gomodule/redigo v1.9.2\n\tgithub.com/nowhere/nothing v0.1.0\n)\n"));
    let _down = Down("url-shortener", Some("nomod"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "nomod", "--solution"]).arg(src.path());
    let out = run(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("github.com/nowhere/nothing v0.1.0") && !err.contains("redigo v1.9.2"), "{err}");
    assert!(err.contains("/usr/share/gocode"), "{err}");
}

/// `--check NAME` runs one check (with the required stages before it) and
/// gives the verdict it has in the whole run: on one instance, the whole run
/// first, then each check alone, in the README's order.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("url-shortener", &shortener(), "alone");
    let _down = Down("url-shortener", Some("alone"));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "alone", "--check", "no-such-check", "--solution"]).arg(shortener());
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--check no-such-check: url-shortener has no such check; its checks: "), "{}", String::from_utf8_lossy(&out.stderr));
}
