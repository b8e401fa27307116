//! The command line without Docker: help, definitions, arguments, exit codes.

mod common;

use common::*;

#[test]
fn help_documents_exit_codes_and_examples() {
    let mut c = lab();
    c.arg("--help");
    let out = run(c);
    let text = stdout(&out);
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(text.contains("3    the backend could not be reached (Docker engine, Kubernetes API server)"));
    let mut c = lab();
    c.args(["verify", "--help"]);
    let text = stdout(&run(c));
    assert!(text.contains("lab verify url-shortener --solution ./my-shortener"), "{text}");
}

#[test]
fn list_show_and_validate_the_built_in_labs() {
    let mut c = lab();
    c.arg("list");
    let list = stdout(&run(c));
    // In roadmap order, each with its place in the roadmap.
    let at = |l: &str| list.find(l).unwrap_or_else(|| panic!("{l} missing:\n{list}"));
    assert!(at("task-cli") < at("url-shortener") && at("url-shortener") < at("grpc-auth") && at("raft ") < at("monitoring") && at("monitoring") < at("rate-limiter"), "{list}");
    let line = |l: &str| list.lines().find(|x| x.starts_with(l)).unwrap_or_else(|| panic!("{l} missing:\n{list}")).to_string();
    assert!(line("rate-limiter ").contains("System Design 1"), "{list}");
    assert!(line("monitoring ").contains("Module 11"), "{list}");
    let mut c = lab();
    c.args(["show", "url-shortener"]);
    let text = stdout(&run(c));
    assert!(text.contains("redis-down-503"), "{text}");
    assert!(text.contains("REDIS_ADDR"), "{text}");
    let mut c = lab();
    c.arg("validate");
    assert_eq!(run(c).status.code(), Some(0));
}

#[test]
fn a_broken_definition_exits_2_with_its_location_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("broken");
    std::fs::create_dir(&lab_dir).unwrap();
    let src =
        std::fs::read_to_string(root().join("labs/url-shortener/lab.yaml")).unwrap().replace("name: url-shortener", "name: broken").replace("action: { restart: app }", "action: { restart: ap }");
    std::fs::write(lab_dir.join("lab.yaml"), src).unwrap();
    let mut c = lab();
    c.arg("validate").arg(&lab_dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lab.yaml:"), "{err}");
    assert!(err.contains("`ap` is neither a dependency nor the service"), "{err}");
    assert!(err.contains("known: app, redis"), "{err}");

    // up refuses it before touching any backend, even an unreachable one.
    let mut c = lab();
    c.arg("--labs").arg(dir.path()).args(["up", "broken"]).env("DOCKER_HOST", "unix:///nonexistent.sock");
    assert_eq!(run(c).status.code(), Some(2));
}

#[test]
fn an_unknown_lab_and_bad_arguments_exit_2() {
    let mut c = lab();
    c.args(["show", "nope"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    // Every built-in lab is named (the list grows as labs are added).
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let known = err.split("known labs: ").nth(1).unwrap_or_default();
    for name in std::fs::read_dir(root().join("labs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()) {
        assert!(known.contains(&name), "{name} missing from {err}");
    }
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "Not Valid"]);
    assert_eq!(run(c).status.code(), Some(2));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--target", "ftp://x", "--solution", "."]);
    assert_eq!(run(c).status.code(), Some(2), "--target and --solution conflict");
    let mut c = lab();
    c.args(["up", "url-shortener", "--env", "NOEQUALS"]).env("DOCKER_HOST", "unix:///nonexistent.sock");
    assert_eq!(run(c).status.code(), Some(2));
}

#[test]
fn an_unreachable_engine_exits_3() {
    let mut c = lab();
    c.args(["status"]).env("DOCKER_HOST", "unix:///nonexistent.sock");
    let out = run(c);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the Docker engine"));
}

#[test]
fn export_compose_is_a_valid_compose_file() {
    let mut c = lab();
    c.args(["export", "compose", "url-shortener"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let redis = &doc["services"]["redis"];
    assert_eq!(redis["image"], "lab-debian/redis:7.0");
    assert!(redis["ports"][0].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(redis["labels"]["lab.instance"], "lab-url-shortener");
    // docker-compose itself accepts it, where installed.
    if std::path::Path::new("/usr/bin/docker-compose").exists() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("docker-compose.yml");
        std::fs::write(&f, &text).unwrap();
        let st = std::process::Command::new("docker-compose").arg("-f").arg(&f).arg("config").arg("-q").status().unwrap();
        assert!(st.success());
    }
}

#[test]
fn check_linearizability_tells_valid_invalid_and_unreadable_apart() {
    let dir = tempfile::tempdir().unwrap();
    let edn = dir.path().join("lost.edn");
    std::fs::write(&edn, "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n{:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value nil}\n").unwrap();
    let mut c = lab();
    c.args(["check", "linearizability"]).arg(&edn);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not linearizable"), "{}", stdout(&out));

    let log = dir.path().join("ok.log");
    std::fs::write(&log, "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\nINFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\t1\n")
        .unwrap();
    let mut c = lab();
    c.args(["check", "linearizability", "--output", "json"]).arg(&log);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["verdict"], "linearizable");

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "garbage\n").unwrap();
    let mut c = lab();
    c.args(["check", "linearizability"]).arg(&bad);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

/// `repeat` with `retry_for`: each repetition is retried on its own until it
/// passes, and one that never passes fails naming the repetition and the
/// attempts. Against a local HTTP server through `--target` (no Docker).
#[test]
fn a_repeated_request_is_retried_on_its_own() {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let always_503 = Arc::new(AtomicBool::new(false));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    {
        let always_503 = always_503.clone();
        let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                // /healthz is ready; each item is refused (503) at its first attempt.
                let status = if line.starts_with("GET") {
                    "200 OK"
                } else {
                    let mut a = attempts.lock().unwrap();
                    let n = a.entry(path).or_insert(0);
                    *n += 1;
                    if *n > 1 && !always_503.load(Ordering::SeqCst) {
                        "202 Accepted"
                    } else {
                        "503 Service Unavailable"
                    }
                };
                let _ = r.get_mut().write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("retrying");
    std::fs::create_dir(&lab_dir).unwrap();
    std::fs::write(
        lab_dir.join("lab.yaml"),
        r#"name: retrying
title: repeat with retry_for
summary: each repetition is retried on its own
service:
  name: app
  port: 8080
  ready: { path: /healthz }
stages:
  - stage: batch
    checks:
      - name: accepted
        expect: every item is accepted, each within 1 s
        hint: accept items
        steps:
          - request: { method: POST, path: "/items/{{ i }}" }
            repeat: 3
            retry_for: 1s
            expect: { status: 202 }
"#,
    )
    .unwrap();

    let mut c = lab();
    c.args(["verify", "--output", "json", "--target", &url]).arg(&lab_dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "each item is accepted at its second attempt");
    assert_eq!(json(&out)["summary"]["passed"], 1);

    always_503.store(true, Ordering::SeqCst);
    let mut c = lab();
    c.args(["verify", "--output", "json", "--target", &url]).arg(&lab_dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let summary = report["checks"][0]["summary"].as_str().unwrap_or("").to_string();
    assert!(summary.starts_with("request 1 of 3, polled for 1.0 s: got status 503 Service Unavailable on every poll for "), "{summary}");
}

/// build.rs links the binary statically on Linux with glibc when the C
/// library's archives are there (and LAB_DYNAMIC, LAB_PIE, LAB_LIBGCC_S are unset): no
/// program interpreter (PT_INTERP) in its program headers, and no dynamic
/// section. Then it starts without the dynamic loader and runs inside any
/// image, as the fault proxy does.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
fn the_binary_is_static_where_the_c_library_archive_is_installed() {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let archive = |name: &str| {
        let out = std::process::Command::new(&cc).arg(format!("-print-file-name={name}")).output().expect("running the C compiler");
        let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        path.is_absolute() && path.is_file()
    };
    let opted_out = ["LAB_DYNAMIC", "LAB_PIE", "LAB_LIBGCC_S"].iter().any(|v| std::env::var_os(v).is_some());
    let expect_static = !opted_out && ["libc.a", "libm.a", "librt.a", "libpthread.a", "libdl.a", "libutil.a", "libgcc_eh.a"].iter().all(|a| archive(a));
    let elf = std::fs::read(env!("CARGO_BIN_EXE_lab")).expect("reading the lab binary");
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let kinds: Vec<u32> = (0..phnum).map(|i| u32::from_le_bytes(elf[phoff + i * phentsize..][..4].try_into().unwrap())).collect();
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    let dynamic = kinds.contains(&PT_INTERP) || kinds.contains(&PT_DYNAMIC);
    assert_eq!(dynamic, !expect_static, "program header kinds {kinds:?}; expected a {} binary", if expect_static { "static" } else { "dynamic" });
    // It runs: a command that touches the file system and formats output.
    let mut c = lab();
    c.arg("list");
    assert!(stdout(&run(c)).contains("raft"));
}

/// `down` takes the names `up` takes: a student that climbs out of lab's
/// cache is refused before anything is removed.
#[test]
fn down_refuses_names_that_are_not_names() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(cache.join("bin")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), "x").unwrap();
    let mut c = lab();
    c.env("LAB_CACHE_DIR", &cache).args(["down", "task-cli", "--student", "z/../../../victim"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--student z/../../../victim"));
    let mut c = lab();
    c.env("LAB_CACHE_DIR", &cache).args(["down", "../victim"]);
    assert_eq!(run(c).status.code(), Some(2));
    assert!(victim.join("keep").is_file(), "nothing outside lab's cache was touched");
}

/// `lab validate` on a lab folder holding `text`: its exit code and what it printed on stderr.
fn validate_lab(name: &str, text: &[u8]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join(name);
    std::fs::create_dir(&lab_dir).unwrap();
    std::fs::write(lab_dir.join("lab.yaml"), text).unwrap();
    let mut c = lab();
    c.arg("validate").arg(&lab_dir);
    let out = run(c);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn validate_locates_undefined_step_variables_duplicate_keys_alias_bombs_and_bytes_that_are_not_utf8() {
    const HEAD: &str = "title: A demo\nservice:\n  port: 8080\n  ready: { path: /healthz }\nstages:\n  - stage: basics\n    checks:\n      - name: up\n        expect: it answers\n        steps:\n";

    // An undefined variable in a check's request path and in an expectation: `lab verify` would fail mid-run.
    let text = format!("name: undef\n{HEAD}          - request: {{ path: \"/kv/{{{{ nosuch }}}}\" }}\n            expect: {{ json: {{ /v: {{ equals: \"{{{{ leaderr }}}}\" }} }} }}\n");
    let (code, err) = validate_lab("undef", text.as_bytes());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("undef/lab.yaml:12:30: undefined variable `nosuch` in template \"/kv/{{ nosuch }}\" (step 1 of check `up`)"), "{err}");
    assert!(err.contains("undef/lab.yaml:13:45: undefined variable `leaderr` in template \"{{ leaderr }}\" (step 1 of check `up`)"), "{err}");
    assert!(err.contains("did you mean `leader`?"), "{err}");

    // A key given twice: at the second one, not at the start of the file or of its mapping.
    let text = format!("name: dupkey\n{HEAD}          - request: {{ path: / }}\n").replace("  ready:", "  port: 9090\n  ready:");
    let (code, err) = validate_lab("dupkey", text.as_bytes());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("dupkey/lab.yaml:5:3: key `port` is given twice in `service`: first at line 4, column 3"), "{err}");

    // A billion laughs: at the alias that passes the limit.
    let mut text = format!("name: bomb\n{HEAD}          - request:\n              path: /\n              json:\n                a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for (name, of) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e"), ("g", "f"), ("h", "g")] {
        text.push_str(&format!("                {name}: &{name} [{}]\n", vec![format!("*{of}"); 9].join(",")));
    }
    let (code, err) = validate_lab("bomb", text.as_bytes());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bomb/lab.yaml:20:24: the alias `*e` expands too far"), "{err}");

    // A byte that is not UTF-8: its line, column and offset.
    let mut bytes = format!("name: latin1\n{HEAD}          - request: {{ path: / }}\n").replace("A demo", "A caf\u{e9} demo").into_bytes();
    let at = bytes.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xE9]);
    let (code, err) = validate_lab("latin1", &bytes);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("latin1/lab.yaml:2:13: the file is not UTF-8: 0xE9 at byte offset 25 is not part of a UTF-8 character"), "{err}");
}

#[test]
fn validate_refuses_leader_targets_without_service_leader_and_malformed_leader_probes() {
    let raft = std::fs::read_to_string(root().join("labs/raft/lab.yaml")).unwrap();
    let leader = "  leader:\n    path: /status\n    pointer: /leader\n    id_env: NODE_ID\n";
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    // No service.leader: the scenario that kills the leader is refused where it is written, naming the fix.
    let text = raft.replace("name: raft", "name: noleader").replacen(leader, "", 1);
    let (code, err) = validate_lab("noleader", text.as_bytes());
    assert_eq!(code, Some(2), "{err}");
    let at = format!("noleader/lab.yaml:{}:", line_of(&text, "kill-leader:"));
    assert!(err.lines().any(|l| l.contains(&at) && l.contains("the target `leader` needs `service.leader`")), "{err}");
    assert!(err.contains("pointer: /leader") && err.contains("is: Leader") && err.contains("metric"), "the hint gives the forms of service.leader: {err}");

    // A store with plain-text answers: a regex over the body, each node saying whether it leads.
    let text = raft.replace("name: raft", "name: textleader").replacen(leader, "  leader: { path: /status, regex: \"state: (\\\\w+)\", is: Leader, id_env: NODE_ID }\n", 1);
    let (code, err) = validate_lab("textleader", text.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    // Two ways to read it, and a read value that is not a JSON pointer.
    let text =
        raft.replace("name: raft", "name: twoways").replacen(leader, "  leader: { path: /status, regex: \"x\", header: X-Leader, is: Leader }\n", 1).replacen("value: /value", "value: value", 1);
    let (code, err) = validate_lab("twoways", text.as_bytes());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("twoways/lab.yaml:{}:", line_of(&text, "  leader: {"))) && err.contains("2 ways to read the leader (regex, header)"), "{err}");
    assert!(err.contains(&format!("twoways/lab.yaml:{}:", line_of(&text, "value: value"))) && err.contains("write /value; for a body that is the value itself write {body: text}"), "{err}");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = run({
        let mut c = lab();
        c.arg("--version");
        c
    });
    let v = stdout(&out);
    assert!(v.starts_with(&format!("lab {} (commit ", env!("CARGO_PKG_VERSION"))), "{v}");
    if let Ok(g) = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(root()).output() {
        let head = String::from_utf8_lossy(&g.stdout).trim().to_string();
        if g.status.success() && !head.is_empty() {
            assert!(v.contains(&head), "{v} does not name HEAD {head}");
        }
    }
}

#[test]
fn completions_for_each_shell_know_the_commands() {
    for (shell, marker) in [("bash", "_lab()"), ("zsh", "#compdef lab"), ("fish", "complete -c lab")] {
        let out = run({
            let mut c = lab();
            c.args(["completions", shell]);
            c
        });
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: no {marker}");
        for sub in ["init", "verify", "completions"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
        if shell == "bash" {
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), &text).unwrap();
            let syntax = std::process::Command::new("bash").arg("-n").arg(tmp.path()).output().unwrap();
            assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));
        }
    }
    let out = run({
        let mut c = lab();
        c.args(["completions", "tcsh"]);
        c
    });
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn the_manual_page_is_roff_and_can_be_written_per_command() {
    let out = run({
        let mut c = lab();
        c.arg("man");
        c
    });
    let page = stdout(&out);
    assert!(page.contains(".TH lab 1"), "{page}");
    assert!(page.contains("verify") && page.contains("init"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = lab();
        c.args(["man", "--out"]).arg(dir.path());
        c
    });
    assert_eq!(out.status.code(), Some(0));
    for f in ["lab.1", "lab-verify.1", "lab-init.1"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains(".TH"), "{f}");
    }
}
