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
    let app = "lab-url-shortener-chaos-app-1";
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
    assert_eq!(chaos(&["melt", "app"]).status.code(), Some(2));

    // A fault left in force is removed with the instance.
    assert_eq!(chaos(&["bandwidth", "app", "--rate", "1mbit"]).status.code(), Some(0));
    assert_eq!(docker_names("volume", "label=lab.instance=lab-url-shortener-chaos").len(), 1, "the fault is recorded");
    let mut c = lab();
    c.args(["down", "url-shortener", "--student", "chaos"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener-chaos");
}
