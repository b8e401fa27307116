//! `up`, `status`, `down` on the real Docker engine: idempotence, students side
//! by side, recovery after `kill -9`, cleanup after failures and Ctrl-C, and
//! `--target` for a service the learner runs.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn status_json(student: &str) -> serde_json::Value {
    let mut c = lab();
    c.args(["status", "url-shortener", "--student", student, "--json"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    json(&out)
}

#[test]
fn up_twice_converges_and_down_removes_everything() {
    let _down = Down("url-shortener", Some("idem"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "idem", "--solution"]).arg(shortener());
    let first = run(c);
    assert_eq!(first.status.code(), Some(0));
    // Redis, lab's fault proxy in front of it, and the service.
    assert!(String::from_utf8_lossy(&first.stderr).contains("(3 created or replaced)"));
    let before = status_json("idem");

    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "idem", "--solution"]).arg(shortener());
    let second = run(c);
    assert_eq!(second.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&second.stderr).contains("(0 created or replaced)"), "second up must keep the containers");
    let after = status_json("idem");
    assert_eq!(before[0]["containers"].as_array().unwrap().len(), 3);
    let ports = |v: &serde_json::Value| v[0]["containers"].as_array().unwrap().iter().map(|c| c["host_port"].clone()).collect::<Vec<_>>();
    assert_eq!(ports(&before), ports(&after), "ports stay the same");

    // Every container carries the labels, and ports are on loopback only.
    for name in docker_names("container", "label=lab.instance=lab-url-shortener--idem") {
        let out =
            Command::new("docker").args(["inspect", "-f", "{{json .HostConfig.PortBindings}} {{index .Config.Labels \"lab.lab\"}} {{index .Config.Labels \"lab.service\"}}", &name]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"HostIp\":\"127.0.0.1\""), "{name}: {text}");
        assert!(text.contains(" url-shortener "), "{name}: {text}");
    }

    // A change to the service's environment replaces only the service.
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "idem", "--env", "EXTRA=1", "--solution"]).arg(shortener());
    let third = run(c);
    assert!(String::from_utf8_lossy(&third.stderr).contains("(1 created or replaced)"));

    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "idem"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("removed 3 containers, 2 networks"), "{}", stdout(&out));
    assert_gone("lab-url-shortener--idem");
}

#[test]
fn two_students_run_side_by_side() {
    let _a = Down("url-shortener", Some("alice"));
    let _b = Down("url-shortener", Some("bob"));
    for s in ["alice", "bob"] {
        let mut c = lab();
        c.args(["up", "url-shortener", "--student", s, "--solution"]).arg(shortener());
        assert_eq!(run(c).status.code(), Some(0));
    }
    let a = status_json("alice");
    let b = status_json("bob");
    let port = |v: &serde_json::Value, svc: &str| v[0]["containers"].as_array().unwrap().iter().find(|c| c["service"] == svc).unwrap()["host_port"].as_u64().unwrap();
    assert_ne!(port(&a, "app"), port(&b, "app"));
    assert_ne!(port(&a, "redis"), port(&b, "redis"));
    for s in ["alice", "bob"] {
        let mut c = lab();
        c.args(["verify", "url-shortener", "--student", s, "--output", "json"]);
        let out = run(c);
        assert_eq!(out.status.code(), Some(0), "{s}");
        // verify did not bring it up, so the instance keeps running.
        assert_eq!(docker_names("container", &format!("label=lab.instance=lab-url-shortener--{s}")).len(), 3);
    }
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "alice"]);
    run(c);
    assert_gone("lab-url-shortener--alice");
    assert_eq!(docker_names("container", "label=lab.instance=lab-url-shortener--bob").len(), 3, "bob's instance is untouched");
}

/// Removes a container whatever happened.
struct RemoveContainer(String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn a_host_port_taken_meanwhile_is_replaced_by_another() {
    // In CI two `lab up`s once picked the same free port; the second to start
    // its container failed. Here another container takes the app's port while
    // the app is stopped, and `up` must pick the app a new port.
    let _down = Down("url-shortener", Some("portgone"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "portgone", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    let app_port = |v: &serde_json::Value| v[0]["containers"].as_array().unwrap().iter().find(|c| c["service"] == "app").unwrap()["host_port"].as_u64().unwrap();
    let before = app_port(&status_json("portgone"));
    let out = Command::new("docker").args(["stop", "-t", "1", "lab-url-shortener--portgone-app-1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let squatter = RemoveContainer("lab-test-port-squatter".into());
    let out = Command::new("docker").args(["run", "-d", "--name", &squatter.0, "-p", &format!("127.0.0.1:{before}:6379"), "lab-debian/redis:7.0", "redis-server", "--save", ""]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "portgone", "--solution"]).arg(shortener());
    let again = run(c);
    assert_eq!(again.status.code(), Some(0), "up picks another port");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains(&format!("lab-url-shortener--portgone-app-1: host port 127.0.0.1:{before} was taken meanwhile; picking another")), "{err}");
    let after = app_port(&status_json("portgone"));
    assert_ne!(after, before);
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "portgone", "--output", "json"]);
    assert_eq!(run(c).status.code(), Some(0), "the service answers on its new port");
    drop(squatter);
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "portgone"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--portgone");
}

#[test]
fn kill_9_at_each_point_of_up_then_up_verify_and_down_recover() {
    let _down = Down("url-shortener", Some("crash"));
    let label = "label=lab.instance=lab-url-shortener--crash";
    let running = || {
        let o = Command::new("docker").args(["ps", "-q", "--filter", label, "--filter", "status=running"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    // Each kill lands on what the ones before left: a network alone, some
    // containers created, all created, some started.
    let points: [(&str, &dyn Fn() -> bool); 4] = [
        ("the network exists", &|| !docker_names("network", label).is_empty()),
        ("a container exists", &|| !docker_names("container", label).is_empty()),
        ("every container exists", &|| docker_names("container", label).len() >= 3),
        ("a container runs", &|| running() >= 1),
    ];
    for (point, reached) in points {
        // Start from nothing for the early points, from the crash's leftovers for the later ones.
        if point == "the network exists" {
            let mut c = lab();
            c.args(["down", "url-shortener", "--student", "crash"]);
            run(c);
        }
        let mut child = lab().args(["up", "url-shortener", "--student", "crash", "--solution"]).arg(shortener()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while !reached() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(5));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = child.wait();
        assert!(reached(), "killed when {point}");
        // `status` tells what is there, and says it is not all well.
        let mut c = lab();
        c.args(["status", "url-shortener", "--student", "crash", "--json"]);
        let out = run(c);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("lab-url-shortener--crash"), "{point}: status shows the instance: {text}");
    }
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "crash", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0), "up converges after the crashes");
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "crash", "--output", "json"]);
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "crash"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--crash");
}

#[test]
fn ctrl_c_during_verify_removes_what_it_started() {
    let _down = Down("url-shortener", Some("sigint"));
    let mut child = lab().args(["verify", "url-shortener", "--student", "sigint", "--solution"]).arg(shortener()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let label = "label=lab.instance=lab-url-shortener--sigint";
    let start = Instant::now();
    while docker_names("container", label).len() < 3 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    // Either the interrupt landed (130) or verify had already finished (0).
    assert!(matches!(status.code(), Some(130) | Some(0)), "{status:?}");
    assert_gone("lab-url-shortener--sigint");
}

#[test]
fn a_service_that_never_starts_fails_up_with_its_log_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("crasher");
    std::fs::write(&bin, "#!/bin/sh\necho 'panic: cannot parse REDIS_ADDR' >&2\nexit 2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _down = Down("url-shortener", Some("crasher"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "crasher", "--ready-timeout", "3s", "--solution"]).arg(&bin);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "the learner's service failed: exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited with code 2 after"), "an exit is reported as one, at once: {err}");
    assert!(err.contains("panic: cannot parse REDIS_ADDR"), "the service's log is shown: {err}");
    assert_gone("lab-url-shortener--crasher");
}

#[test]
fn target_mode_checks_a_service_the_learner_runs() {
    let _down = Down("url-shortener", Some("target"));
    // Reserve a port for the learner's service on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "target", "--target", &url]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let env: Vec<(String, String)> =
        text.lines().filter_map(|l| l.trim().strip_prefix("export ")).filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string())).collect();
    assert!(env.iter().any(|(k, v)| k == "REDIS_ADDR" && v.starts_with("127.0.0.1:")), "{text}");

    // Build the reference solution and run it on the host as a learner would.
    let dir = tempfile::tempdir().unwrap();
    let mut b = lab();
    b.args(["export", "compose", "url-shortener"]); // cheap: proves export works for a target instance too
    assert_eq!(run(b).status.code(), Some(0));
    let built = build_solution(dir.path());
    let mut svc = Command::new(&built).envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).env("PORT", port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "target", "--output", "json"]);
    let out = run(c);
    let _ = svc.kill();
    let _ = svc.wait();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(check(&report, "survives-restart")["status"], "skipped");
    assert!(check(&report, "survives-restart")["reason"].as_str().unwrap().contains("--target"));
    assert_eq!(check(&report, "redis-down-503")["status"], "passed");
}

/// `--image REF`: the learner's own image runs as the service (its
/// entrypoint, the lab's environment and port), and passes as the folder does.
#[test]
fn a_learner_image_runs_as_the_service() {
    let image = learner_image("lab-test/shortener:lifecycle");
    let _down = Down("url-shortener", Some("img"));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "img", "--output", "json", "--keep", "--image", &image]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 10);
    let st = json(&run({
        let mut c = lab();
        c.args(["status", "url-shortener", "--student", "img", "--json"]);
        c
    }));
    let app = st[0]["containers"].as_array().unwrap().iter().find(|c| c["service"] == "app").unwrap().clone();
    assert_eq!(app["image"], image.as_str(), "{app:#}");
    // Chaos and a second verify find the image again from the instance.
    let mut c = lab();
    c.args(["chaos", "url-shortener", "kill", "app", "--student", "img"]);
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "img", "--output", "json"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));

    // An image that is nowhere: lab could not run (exit 4), and says how to get it.
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "img2", "--image", "lab-test/absent:v0"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image lab-test/absent:v0 is not on this machine"));
    assert_gone("lab-url-shortener--img2");
    // One way to give the service at a time.
    let mut c = lab();
    c.args(["up", "url-shortener", "--image", &image, "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(2));
}

/// Three `up`s of one instance at once: one runs, the others wait for it and
/// find the instance up; one network, a passing verify, nothing left after down.
#[test]
fn concurrent_ups_of_one_instance_wait_for_each_other() {
    let _down = Down("url-shortener", Some("dup"));
    let children: Vec<_> = (0..3)
        .map(|_| {
            let mut c = lab();
            c.args(["up", "url-shortener", "--student", "dup", "--solution"]).arg(shortener());
            c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(outs.iter().any(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for another lab command on lab-url-shortener--dup")), "a second up said whom it waited for");
    // One of each: the instance's network and Redis's backstage behind the proxy.
    let mut nets = docker_names("network", "label=lab.instance=lab-url-shortener--dup");
    nets.sort();
    assert_eq!(nets, ["lab-url-shortener--dup", "lab-url-shortener--dup_backstage"]);
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "dup", "--output", "json"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "dup"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--dup");
}

/// A service that exits at once is reported as such, with its own words,
/// as soon as it exits (not as "connection refused" at the ready timeout).
#[test]
fn a_service_that_exits_is_reported_with_its_exit_code_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let app = script_solution(dir.path(), "#!/bin/sh\necho 'boom: REDIS_ADDR is not what I expected' >&2\nexit 3\n");
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "exits", "--output", "json", "--solution"]).arg(&app);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "the learner's service failed");
    let report = json(&out);
    let starts = check(&report, "service-starts");
    assert_eq!(starts["status"], "failed");
    let summary = starts["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("exited with code 3 after"), "{report:#}");
    assert!(starts["got"].as_str().unwrap_or_default().contains("boom: REDIS_ADDR"), "{report:#}");
    // The report names the instance and the solution, lists every check of
    // the lab as skipped for it, and says how long it took.
    assert_eq!(report["instance"], "lab-url-shortener--exits", "{report:#}");
    assert!(report["target"].as_str().unwrap_or_default().ends_with("/app"), "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 11, "service-starts and the lab's 10 checks: {report:#}");
    assert!(checks[1..].iter().all(|c| c["status"] == "skipped"), "{report:#}");
    assert!(report["summary"]["duration"].as_f64().unwrap_or(0.0) > 0.0, "{report:#}");
    // And the terminal says so in words.
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "exits", "--solution"]).arg(&app);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lab verify url-shortener: 11 checks against ") && text.contains("(lab-url-shortener--exits)"), "{text}");
    assert!(text.contains("FAILED: 11 checks, 0 passed, 1 failed, 10 skipped, 0 errors in ") && !text.contains(" in 0 ms"), "{text}");
    assert_gone("lab-url-shortener--exits");
}

/// Every container has memory, pids and CPU limits; a service the kernel
/// kills for memory is reported as such.
#[test]
fn containers_have_limits_and_an_oom_kill_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let app = script_solution(dir.path(), "#!/bin/sh\necho 'loading the whole catalogue into memory'\nhead -c 900000000 /dev/zero | tail -n 1 > /dev/null\nexit 1\n");
    let _down = Down("url-shortener", Some("oom"));
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "oom", "--output", "json", "--solution"]).arg(&app);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let summary = check(&report, "service-starts")["summary"].as_str().unwrap_or_default().to_string();
    assert!(summary.contains("OOMKilled"), "{report:#}");
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "oom", "--keep-on-failure", "--solution"]).arg(&app);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OOMKilled"));
    for (name, mem) in [("lab-url-shortener--oom-app-1", 512u64 << 20), ("lab-url-shortener--oom-redis-1", 1 << 30)] {
        let o = Command::new("docker").args(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}", name]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("{mem} 1024 1000000000"), "{name}");
    }
}

#[test]
fn the_learner_s_service_runs_as_nobody_on_a_read_only_root_with_tmp_kept_over_a_restart() {
    let _down = Down("url-shortener", Some("priv"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "priv", "--solution"]).arg(shortener());
    assert!(run(c).status.success());
    let app = "lab-url-shortener--priv-app-1";
    let sh = |script: &str| {
        let o = Command::new("docker").args(["exec", app, "sh", "-c", script]).output().unwrap();
        (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string())
    };
    assert_eq!(sh("id -u; id -g"), (true, "65534\n65534".into()), "the service is nobody");
    assert_eq!(sh("grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/1/status | tr -s '\t' ' '"), (true, "CapPrm: 0000000000000000\nCapEff: 0000000000000000\nNoNewPrivs: 1".into()));
    let (wrote, said) = sh("echo x > /etc/owned");
    assert!(!wrote && said.contains("Read-only file system"), "{said}");
    assert!(sh("echo kept > /tmp/data").0, "/tmp is its writable data folder");
    let o = Command::new("docker").args(["restart", "-t", "1", app]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(sh("cat /tmp/data"), (true, "kept".into()), "its data outlives a restart");
    // Redis sits behind lab's fault proxy (`proxy: true`): the service reaches
    // it through the proxy, never around it, by name or by address.
    assert_eq!(sh("getent hosts redis || echo unknown"), (true, "unknown".into()));
    let o = Command::new("docker").args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "lab-url-shortener--priv-redis-1"]).output().unwrap();
    let redis_ip = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!redis_ip.is_empty() && !redis_ip.contains(' '), "redis is on one network: {redis_ip}");
    let (reached, said) = sh(&format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{redis_ip}/6379' && echo reached"));
    assert!(!reached && !said.contains("reached"), "the service reached redis around the proxy: {said}");
    assert_eq!(sh("timeout 2 bash -c 'exec 3<>/dev/tcp/proxy/6379' && echo reached"), (true, "reached".into()), "and reaches it through the proxy");
    // The dependencies keep their own users (their entrypoints drop privileges themselves).
    let o = Command::new("docker").args(["inspect", "-f", "{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}", "lab-url-shortener--priv-redis-1"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "|false");
}

/// A "solution" that is a shell script (the base image has /bin/sh): a service that misbehaves at start.
fn script_solution(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let app = dir.join("app");
    std::fs::write(&app, body).unwrap();
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    app
}
