//! `lab chaos` on the real Docker engine: each fault shows in the service's
//! behaviour, is listed by `status`, reverted by `heal`, and gone after `down`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn post(port: u16) -> (u16, Duration) {
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "X-Forwarded-For: 198.18.9.9", "-d", r#"{"url":"https://example.com/chaos"}"#])
        .arg(format!("http://127.0.0.1:{port}/api/links"))
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0), t.elapsed())
}

fn chaos(args: &[&str]) -> std::process::Output {
    let mut c = lab();
    c.args(["chaos", "url-shortener"]).args(args).args(["--student", "chaos"]);
    run(c)
}

fn state(name: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", "{{.State.Status}}", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn faults_bite_are_listed_and_heal() {
    let _down = Down("url-shortener", Some("chaos"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "chaos", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = lab();
    c.args(["status", "url-shortener", "--student", "chaos", "--json"]);
    let st = json(&run(c));
    let port = st[0]["containers"].as_array().unwrap().iter().find(|c| c["service"] == "app").unwrap()["host_port"].as_u64().unwrap() as u16;
    assert_eq!(post(port).0, 201);

    // Redis cut off from everything (the proxy included): 503, quickly.
    let out = chaos(&["partition", "redis"]);
    assert_eq!(out.status.code(), Some(0));
    let (code, took) = post(port);
    assert_eq!(code, 503, "the service cannot reach Redis");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let out = chaos(&["status"]);
    assert!(stdout(&out).contains("partition"), "{}", stdout(&out));
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));
    assert_eq!(post(port).0, 201, "healed");
    assert!(stdout(&chaos(&["status"])).contains("no faults in force"));

    // kill: the container is dead until heal brings it back, ready.
    let app = "lab-url-shortener--chaos-app-1";
    assert_eq!(chaos(&["kill", "1"]).status.code(), Some(0));
    assert_eq!(state(app), "exited");
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));
    assert_eq!(state(app), "running");
    assert_eq!(post(port).0, 201);

    // pause for a while: frozen, then thawed by lab itself.
    assert_eq!(chaos(&["pause", "app", "--for", "1s"]).status.code(), Some(0));
    assert_eq!(state(app), "running");

    // outage of Redis: 503 while it is down.
    assert_eq!(chaos(&["outage", "redis"]).status.code(), Some(0));
    assert_eq!(post(port).0, 503);
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));

    // Through lab's fault proxy, on any kernel: Redis answers 150 ms late, so the
    // service (300 ms Redis timeouts) still answers, but slowly...
    assert_eq!(chaos(&["latency", "redis", "--delay", "150ms", "--direction", "down"]).status.code(), Some(0));
    let (code, took) = post(port);
    assert_eq!(code, 201);
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));
    assert!(post(port).1 < Duration::from_millis(150));
    // ... and 600 ms late is past its timeouts: 503, not a hang.
    assert_eq!(chaos(&["latency", "redis", "--delay", "600ms"]).status.code(), Some(0));
    let (code, took) = post(port);
    assert_eq!(code, 503);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));
    // A black hole: Redis never answers; the service times out and says 503.
    assert_eq!(chaos(&["blackhole", "redis"]).status.code(), Some(0));
    let (code, took) = post(port);
    assert_eq!(code, 503);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(chaos(&["heal"]).status.code(), Some(0));
    assert_eq!(post(port).0, 201);
    // Blackhole and reset need a proxied link.
    assert_eq!(chaos(&["blackhole", "app"]).status.code(), Some(2));

    // netem on a container: either it works here, or lab says plainly that the kernel lacks it.
    let out = chaos(&["latency", "app", "--delay", "100ms"]);
    match out.status.code() {
        Some(0) => assert_eq!(chaos(&["heal"]).status.code(), Some(0)),
        Some(4) => assert!(String::from_utf8_lossy(&out.stderr).contains("sch_netem"), "{}", String::from_utf8_lossy(&out.stderr)),
        other => panic!("latency exited {other:?}"),
    }

    // Bad requests are usage errors.
    assert_eq!(chaos(&["kill", "9"]).status.code(), Some(2));
    // The shortener does not say how to find a leader: exit 2 at once, naming the fix.
    let t = Instant::now();
    let out = chaos(&["kill", "leader"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(t.elapsed() < Duration::from_secs(3), "no waiting for a leader: {:?}", t.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("service.leader"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state(app), "running", "nothing was killed");
    assert_eq!(chaos(&["melt", "app"]).status.code(), Some(2));

    // A fault left in force is removed with the instance.
    assert_eq!(chaos(&["bandwidth", "app", "--rate", "1mbit"]).status.code(), Some(0));
    assert_eq!(docker_names("volume", "label=lab.instance=lab-url-shortener--chaos").len(), 1, "the fault is recorded");
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "chaos"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--chaos");
}

/// `lab chaos ... --student crash` started in the background, stderr piped.
fn chaos_bg(args: &[&str]) -> std::process::Child {
    let mut c = lab();
    c.args(["chaos", "url-shortener"]).args(args).args(["--student", "crash"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

/// Read the child's stderr until a line contains `text` (or it ends).
fn wait_for_line(child: &mut std::process::Child, text: &str) -> bool {
    use std::io::BufRead;
    let err = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(err).lines();
    let found = lines.by_ref().map_while(Result::ok).any(|l| l.contains(text));
    // Keep draining, so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    found
}

fn crash_chaos(args: &[&str]) -> std::process::Output {
    let mut c = lab();
    c.args(["chaos", "url-shortener"]).args(args).args(["--student", "crash"]);
    run(c)
}

/// kill -9 in the middle of a fault, Ctrl-C during `chaos --for`, a fault
/// whose time ran out with no process left to revert it: each leaves nothing
/// in force that `status`, `heal` or the next command cannot see and revert.
#[test]
fn faults_survive_crashes_and_interrupts_as_records_that_heal() {
    let inst = "lab-url-shortener--crash";
    let _down = Down("url-shortener", Some("crash"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "crash", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    let app = format!("{inst}-app-1");
    let redis = format!("{inst}-redis-1");
    let helpers = || docker_names("container", &format!("label=lab.instance={inst}")).into_iter().filter(|n| n.contains("-netfx-")).collect::<Vec<_>>();
    let records = || docker_names("volume", &format!("label=lab.instance={inst}"));

    // kill -9 as soon as the partition's first network helper exists: the
    // fault is being applied, and its record must already be there.
    let mut child = chaos_bg(&["partition", "redis", "--for", "30s"]);
    let t = Instant::now();
    while helpers().is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!helpers().is_empty(), "the partition never started a network helper");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(records().len(), 1, "the fault was recorded before it was applied: {:?}", records());
    let out = crash_chaos(&["status"]);
    assert!(stdout(&out).contains("partition"), "status lists the half-applied fault:\n{}", stdout(&out));
    assert!(helpers().is_empty(), "the next command removed the dead process's helper: {:?}", helpers());
    let out = crash_chaos(&["heal"]);
    assert!(stdout(&out).contains("healed 1 fault"), "{}", stdout(&out));
    assert!(lab_chains(&redis).is_empty(), "chains left in redis: {:?}", lab_chains(&redis));
    assert!(records().is_empty(), "{:?}", records());

    // Ctrl-C during `chaos --for`: the fault is reverted and lab exits 130.
    let mut child = chaos_bg(&["pause", "app", "--for", "60s"]);
    assert!(wait_for_line(&mut child, "reverting in"), "chaos --for never said it was waiting");
    assert_eq!(state(&app), "paused");
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted chaos --for exits 130");
    assert_eq!(state(&app), "running", "and its fault is reverted");
    assert!(records().is_empty(), "{:?}", records());

    // A fault past its end whose process died: the next command reverts it and says so.
    let mut child = chaos_bg(&["kill", "app", "--for", "1s"]);
    assert!(wait_for_line(&mut child, "reverting in"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(state(&app), "exited");
    std::thread::sleep(Duration::from_millis(2100));
    let mut c = lab();
    c.args(["status", "url-shortener", "--student", "crash"]);
    let out = run(c);
    assert!(String::from_utf8_lossy(&out.stderr).contains("reverted fault kill-"), "status says what it reverted");
    assert_eq!(state(&app), "running");
    assert!(records().is_empty(), "{:?}", records());

    // verify on an instance with a fault in force heals it first, and says so.
    assert_eq!(crash_chaos(&["outage", "redis"]).status.code(), Some(0));
    // Ctrl-C during verify while one of its checks has Redis stopped: exit
    // 130, and the instance is left as it was found (raft's test does the
    // same with faults that verify's checks inject: tests/raft.rs).
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "crash"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let said = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let t = Instant::now();
    while !records().is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(records().is_empty(), "verify healed the outage first");
    let mut stopped = false;
    while !stopped && t.elapsed() < Duration::from_secs(120) {
        stopped = state(&redis) == "exited";
    }
    if !stopped {
        let _ = child.kill();
        panic!("a check of verify stops Redis; verify said:\n{}", said.join().unwrap());
    }
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let said = said.join().unwrap();
    assert!(said.contains("reverted fault outage-"), "verify said it healed the outage:\n{said}");
    assert!(records().is_empty(), "the interrupted verify reverted its faults: {:?}", records());
    for c in [&app, &redis] {
        assert_eq!(state(c), "running", "{c}");
        assert!(lab_chains(c).is_empty(), "{c}: {:?}", lab_chains(c));
    }
    assert!(helpers().is_empty());
}

/// Milliseconds for a Redis ECHO of `bytes` bytes from the service's
/// container through the fault proxy; None when no whole answer came within
/// 3 s (or the link was cut).
fn echo_through_proxy(app: &str, bytes: usize) -> Option<u64> {
    let script = format!(
        r#"v=$(head -c {bytes} /dev/zero | tr '\0' x); s=$(date +%s%N); exec 3<>/dev/tcp/proxy/6379 || exit 1; printf '*2\r\n$4\r\nECHO\r\n${bytes}\r\n%s\r\n' "$v" >&3; n=$(timeout 3 head -c $(( {bytes} + {len} + 5 )) <&3 | wc -c); [ "$n" -eq $(( {bytes} + {len} + 5 )) ] || exit 1; echo $(( ($(date +%s%N) - s) / 1000000 ))"#,
        len = bytes.to_string().len()
    );
    let out = Command::new("docker").args(["exec", app, "bash", "-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn ping_through_proxy(app: &str) -> Option<u64> {
    echo_through_proxy(app, 4)
}

/// Every other kind of fault (on Redis behind the proxy: link toxics, and a
/// stop), its lab process killed with -9 once the fault is in force: the record stays, `status` lists it, `heal` reverts it, and
/// what it did is gone.
#[test]
fn each_fault_kind_outlives_a_kill_9_of_its_process_as_a_record_that_heals() {
    let inst = "lab-url-shortener--kinds";
    let _down = Down("url-shortener", Some("kinds"));
    let mut c = lab();
    c.args(["up", "url-shortener", "--student", "kinds", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    let (app, redis) = (format!("{inst}-app-1"), format!("{inst}-redis-1"));
    let records = || docker_names("volume", &format!("label=lab.instance={inst}"));
    let kinds_chaos = |args: &[&str]| {
        let mut c = lab();
        c.args(["chaos", "url-shortener"]).args(args).args(["--student", "kinds"]);
        c
    };
    assert!(ping_through_proxy(&app).is_some_and(|ms| ms < 150), "Redis answers quickly before any fault");
    assert!(echo_through_proxy(&app, 100_000).is_some_and(|ms| ms < 500), "and at full speed");
    type InForce<'a> = &'a dyn Fn() -> bool;
    let slow: InForce = &|| ping_through_proxy(&app).is_some_and(|ms| ms >= 300);
    let silent: InForce = &|| ping_through_proxy(&app).is_none();
    // 100 kB at 1 mbit/s take 0.8 s; unshaped, a few ms.
    let shaped: InForce = &|| echo_through_proxy(&app, 100_000).is_none_or(|ms| ms >= 500);
    let stopped: InForce = &|| state(&redis) == "exited";
    let cases: [(&[&str], InForce); 5] = [
        (&["latency", "redis", "--delay", "300ms"], slow),
        (&["blackhole", "redis"], silent),
        (&["reset", "redis"], silent),
        (&["bandwidth", "redis", "--rate", "1mbit"], shaped),
        (&["outage", "redis"], stopped),
    ];
    for (args, in_force) in cases {
        let mut c = kinds_chaos(args);
        c.args(["--for", "60s"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        assert!(wait_for_line(&mut child, "reverting in"), "{args:?}: chaos --for never said it was waiting");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(in_force(), "{args:?}: the fault is in force after its process died");
        assert_eq!(records().len(), 1, "{args:?}: {:?}", records());
        let c = kinds_chaos(&["status"]);
        let out = run(c);
        let listed = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(listed.contains(&redis) && !listed.contains("no faults"), "{args:?}: status lists it:\n{listed}");
        let c = kinds_chaos(&["heal"]);
        let out = run(c);
        assert!(String::from_utf8_lossy(&out.stdout).contains("healed 1 fault"), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(records().is_empty(), "{args:?}: {:?}", records());
        let t = Instant::now();
        while state(&redis) != "running" && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!in_force(), "{args:?}: heal took it back");
        assert!(ping_through_proxy(&app).is_some_and(|ms| ms < 150), "{args:?}: Redis answers quickly again");
        assert!(echo_through_proxy(&app, 100_000).is_some_and(|ms| ms < 500), "{args:?}: and at full speed");
    }
    let mut c = lab();
    c.args(["verify", "url-shortener", "--student", "kinds"]);
    assert_eq!(run(c).status.code(), Some(0), "the next verify passes");
}

/// Whether node `from` of an instance opens a TCP connection to node `to`'s
/// HTTP port, directly (not through lab's fault proxy), within 2 s.
fn reaches(inst: &str, from: u32, to: u32) -> bool {
    Command::new("docker").args(["exec", &format!("{inst}-app-{from}"), "bash", "-c", &format!("timeout 2 bash -c 'exec 3<>/dev/tcp/app-{to}/8080' 2>/dev/null")]).output().unwrap().status.success()
}

/// The leader node 3 of the raft lab names in its /status ("" while it knows none).
fn leader_seen_by(inst: &str, n: u32) -> String {
    let port = Command::new("docker").args(["port", &format!("{inst}-app-{n}"), "8080"]).output().unwrap();
    let port = String::from_utf8_lossy(&port.stdout).lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or_default().trim().to_string();
    let out = Command::new("curl").args(["-s", "-m", "2", &format!("http://127.0.0.1:{port}/status")]).output().unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout).ok().and_then(|v| v["leader"].as_str().map(str::to_string)).unwrap_or_default()
}

/// Faults on the same node compose: a partition that meets a node another
/// fault killed applies (it used to fail with "cannot join network of a non
/// running container (HTTP 409)"); when lab starts the node again while the
/// partition is in force (the kill's `--for` ran out), the node is still cut
/// off from the other side, directly and through the fault proxy; heal
/// reconnects it and leaves nothing behind.
#[test]
fn a_partition_applies_to_a_stopped_node_and_holds_when_it_starts_again() {
    let student = "compose";
    let inst = format!("lab-raft--{student}");
    let _down = Down("raft", Some(student));
    let mut c = lab();
    c.args(["up", "raft", "--student", student, "--solution"]).arg(root().join("tests/solutions/raft-kv"));
    assert_eq!(run(c).status.code(), Some(0));
    let raft_chaos = |args: &[&str]| {
        let mut c = lab();
        c.args(["chaos", "raft"]).args(args).args(["--student", student]);
        c
    };
    let node = |n: u32| format!("{inst}-app-{n}");
    let t = Instant::now();
    while leader_seen_by(&inst, 3).is_empty() && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!leader_seen_by(&inst, 3).is_empty(), "node 3 follows a leader before any fault");
    assert!(reaches(&inst, 3, 1) && reaches(&inst, 1, 3));

    // Node 3 killed for 8 s: lab starts it again when that runs out, with the partition in force.
    let mut kill = raft_chaos(&["kill", "3", "--for", "8s"]);
    kill.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = kill.spawn().unwrap();
    assert!(wait_for_line(&mut child, "reverting in"), "kill --for never said it was waiting");
    assert_eq!(state(&node(3)), "exited");
    let out = run(raft_chaos(&["partition", "--split", "1,2|3"]));
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "a partition applies to a stopped node: {said}");
    assert!(said.contains("app-3 is not running"), "it says when node 3 is cut: {said}");
    assert!(!said.contains("HTTP 409"), "{said}");
    assert!(child.wait().unwrap().success(), "the kill was reverted");
    assert_eq!(state(&node(3)), "running");

    // Still cut off, both ways, directly...
    assert!(!lab_chains(&node(3)).is_empty(), "node 3 got its rules when it started");
    assert!(!reaches(&inst, 3, 1) && !reaches(&inst, 3, 2), "node 3 reaches the other side");
    assert!(!reaches(&inst, 1, 3), "the other side reaches node 3");
    assert!(reaches(&inst, 1, 2), "the majority side still talks");
    // ... and through the fault proxy (Raft's links): node 3 never hears of a leader.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        assert_eq!(leader_seen_by(&inst, 3), "", "node 3 found a leader through the partition");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!leader_seen_by(&inst, 1).is_empty(), "nodes 1 and 2 keep a leader");

    // Heal removes every rule, and node 3 rejoins.
    let out = run(raft_chaos(&["heal"]));
    assert!(stdout(&out).contains("healed 1 fault(s)"), "{}", stdout(&out));
    for n in 1..=3 {
        assert!(lab_chains(&node(n)).is_empty(), "app-{n}: {:?}", lab_chains(&node(n)));
    }
    assert!(reaches(&inst, 3, 1) && reaches(&inst, 1, 3));
    let t = Instant::now();
    while leader_seen_by(&inst, 3).is_empty() && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!leader_seen_by(&inst, 3).is_empty(), "node 3 follows the leader again after heal");
    assert!(docker_names("volume", &format!("label=lab.instance={inst}")).is_empty(), "no fault records left");
}
