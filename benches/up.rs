//! `lab up url-shortener` to ready, against docker-compose on the file from
//! `lab export compose` and against bare `docker run`, with the same images,
//! the same binary and the same readiness (Redis PING and GET /healthz == 200),
//! in one run on one machine; then `lab verify` with the lab already up.
//!
//! Run: `cargo bench --bench up` (after `bash .ci/setup`). BENCH_RUNS sets the
//! repetitions (default 5). Prints medians and ratios.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAB: &str = env!("CARGO_BIN_EXE_lab");

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn lab() -> Command {
    let mut c = Command::new(LAB);
    c.env("LAB_IMAGES", "debian").env("NO_COLOR", "1").stderr(Stdio::null());
    c
}

fn redis_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

fn http_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.0 200") || buf[..n].starts_with(b"HTTP/1.1 200"))
}

/// Poll both until ready, as fast as lab's own probe starts polling (20 ms).
fn wait_both(redis: u16, app: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !redis_ready(redis) {
        assert!(Instant::now() < deadline, "redis not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    while !http_ready(app) {
        assert!(Instant::now() < deadline, "app not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn build_binary(dir: &Path, solution: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let src = dir.join(format!("gopath-{solution}/src/lab.local"));
    std::fs::create_dir_all(&src).unwrap();
    std::os::unix::fs::symlink(root.join("tests/solutions").join(solution), src.join("app")).unwrap();
    let go = ["/usr/lib/go-1.23/bin/go", "/usr/lib/go/bin/go"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("go");
    let out = dir.join(format!("bin-{solution}/app"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    sh(Command::new(go)
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg("lab.local/app")
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .env("GOPATH", format!("{}:/usr/share/gocode", dir.join(format!("gopath-{solution}")).display())));
    out
}

/// Whether node `port` names a leader that names itself.
fn leader_of(ports: &[u16]) -> bool {
    for p in ports {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", *p)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n").is_err() {
            continue;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        let Some(body) = buf.split("\r\n\r\n").nth(1) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            continue;
        };
        if v["state"] == "Leader" && v["leader"] == v["id"] {
            return true;
        }
    }
    false
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let bin = build_binary(tmp.path(), "url-shortener");
    let raft_bin = build_binary(tmp.path(), "raft-kv");
    let redis_img = "lab-debian/redis:7.0";
    let base_img = "lab-debian/base:bookworm";
    sh(lab().args(["images", "bake", "redis", "base"]));

    // --- lab up
    let (mut lab_cold, mut lab_warm) = (vec![], vec![]);
    for _ in 0..runs {
        let _ = lab().args(["down", "url-shortener", "--student", "bench"]).output();
        let t = Instant::now();
        sh(lab().args(["up", "url-shortener", "--student", "bench", "-q", "--solution"]).arg(&bin));
        lab_cold.push(t.elapsed());
        let t = Instant::now();
        sh(lab().args(["up", "url-shortener", "--student", "bench", "-q", "--solution"]).arg(&bin));
        lab_warm.push(t.elapsed());
    }
    // lab verify with the lab up.
    let mut verify = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        sh(lab().args(["verify", "url-shortener", "--student", "bench", "--output", "json"]));
        verify.push(t.elapsed());
    }
    // lab chaos kill: from the command to the container dead and the fault recorded
    // (the command returns after both).
    // The peer, interleaved: `docker kill` of the same container, just as freshly
    // started and ready (lab's heal waits for GET /healthz; so does this loop).
    let app = "lab-url-shortener-bench-app-1";
    let st: serde_json::Value = serde_json::from_str(&sh(lab().args(["status", "url-shortener", "--student", "bench", "--json"]))).unwrap();
    let app_port = st[0]["containers"].as_array().unwrap().iter().find(|c| c["service"] == "app").and_then(|c| c["host_port"].as_u64()).unwrap() as u16;
    let mut kill = vec![];
    let mut docker_kill = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        sh(lab().args(["chaos", "url-shortener", "kill", "app", "--student", "bench"]));
        kill.push(t.elapsed());
        let state = sh(Command::new("docker").args(["inspect", "-f", "{{.State.Status}}", app]));
        assert_eq!(state.trim(), "exited");
        sh(lab().args(["chaos", "url-shortener", "heal", "--student", "bench"]));

        let t = Instant::now();
        sh(Command::new("docker").args(["kill", app]));
        docker_kill.push(t.elapsed());
        sh(Command::new("docker").args(["start", app]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_ready(app_port) {
            assert!(Instant::now() < deadline, "app not ready after docker start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    sh(lab().args(["down", "url-shortener", "--student", "bench"]));

    // 3-node raft up to an elected leader.
    let mut raft = vec![];
    for _ in 0..runs {
        let _ = lab().args(["down", "raft", "--student", "bench"]).output();
        let t = Instant::now();
        sh(lab().args(["up", "raft", "--student", "bench", "-q", "--solution"]).arg(&raft_bin));
        let st: serde_json::Value = serde_json::from_str(&sh(lab().args(["status", "raft", "--student", "bench", "--json"]))).unwrap();
        let ports: Vec<u16> = st[0]["containers"].as_array().unwrap().iter().filter_map(|c| c["host_port"].as_u64()).map(|p| p as u16).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !leader_of(&ports) {
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(20));
        }
        raft.push(t.elapsed());
    }
    sh(lab().args(["down", "raft", "--student", "bench"]));

    // --- docker-compose on the exported file
    let compose_file = tmp.path().join("docker-compose.yml");
    let text = sh(lab().args(["export", "compose", "url-shortener", "--student", "benchc", "--binary"]).arg(&bin));
    std::fs::write(&compose_file, &text).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let port_of = |svc: &str| -> u16 { doc["services"][svc]["ports"][0].as_str().unwrap().split(':').nth(1).unwrap().parse().unwrap() };
    let (cr, ca) = (port_of("redis"), port_of("app-1"));
    let compose = |args: &[&str]| {
        let mut c = Command::new("docker-compose");
        c.arg("-f").arg(&compose_file).arg("-p").arg("labbench").args(args);
        c
    };
    let (mut dc_cold, mut dc_warm) = (vec![], vec![]);
    for _ in 0..runs {
        let _ = compose(&["down", "-v", "--remove-orphans"]).output();
        let t = Instant::now();
        sh(&mut compose(&["up", "-d", "--quiet-pull"]));
        wait_both(cr, ca);
        dc_cold.push(t.elapsed());
        let t = Instant::now();
        sh(&mut compose(&["up", "-d"]));
        wait_both(cr, ca);
        dc_warm.push(t.elapsed());
    }
    sh(&mut compose(&["down", "-v", "--remove-orphans"]));

    // --- bare docker run, same images and settings
    let mut bare = vec![];
    for _ in 0..runs {
        let (rp, ap) = (free_port(), free_port());
        let net = "labbench-bare";
        let _ = Command::new("docker").args(["rm", "-f", "labbench-redis", "labbench-app"]).output();
        let _ = Command::new("docker").args(["network", "rm", net]).output();
        let t = Instant::now();
        sh(Command::new("docker").args(["network", "create", net]));
        sh(Command::new("docker").args([
            "run",
            "-d",
            "--name",
            "labbench-redis",
            "--network",
            net,
            "--network-alias",
            "redis",
            "-p",
            &format!("127.0.0.1:{rp}:6379"),
            redis_img,
            "redis-server",
            "--protected-mode",
            "no",
            "--dir",
            "/tmp",
            "--save",
            "",
            "--appendonly",
            "yes",
        ]));
        sh(Command::new("docker").args([
            "run",
            "-d",
            "--name",
            "labbench-app",
            "--network",
            net,
            "-p",
            &format!("127.0.0.1:{ap}:8080"),
            "-e",
            "PORT=8080",
            "-e",
            "REDIS_ADDR=redis:6379",
            "-e",
            &format!("BASE_URL=http://127.0.0.1:{ap}"),
            "-e",
            "RATE_LIMIT=20",
            "-v",
            &format!("{}:/lab/bin:ro", bin.parent().unwrap().display()),
            base_img,
            "/lab/bin/app",
        ]));
        wait_both(rp, ap);
        bare.push(t.elapsed());
        sh(Command::new("docker").args(["rm", "-f", "labbench-redis", "labbench-app"]));
        sh(Command::new("docker").args(["network", "rm", net]));
    }

    let (lc, lw, dc, dw, b, v) = (median(lab_cold), median(lab_warm), median(dc_cold), median(dc_warm), median(bare), median(verify));
    let (k, dk, r) = (median(kill), median(docker_kill), median(raft));
    println!("url-shortener up to ready (Redis PONG + GET /healthz 200), median of {runs}, same machine, same run:");
    println!("  lab up, cold              {:>8}", ms(lc));
    println!("  docker-compose up, cold   {:>8}   lab/compose = {:.2}", ms(dc), lc.as_secs_f64() / dc.as_secs_f64());
    println!("  bare docker run, cold     {:>8}   lab/docker run = {:.2}", ms(b), lc.as_secs_f64() / b.as_secs_f64());
    println!("  lab up, warm (no change)  {:>8}", ms(lw));
    println!("  docker-compose up, warm   {:>8}   lab/compose = {:.2}", ms(dw), lw.as_secs_f64() / dw.as_secs_f64());
    println!("lab verify url-shortener with the lab up (10 checks), median of {runs}: {}", ms(v));
    println!("lab chaos url-shortener kill app, command to container dead and fault recorded, median of {runs}: {}", ms(k));
    println!("  docker kill of the same container (CLI to container dead), interleaved: {}   lab/docker kill = {:.2}", ms(dk), k.as_secs_f64() / dk.as_secs_f64());
    println!("lab up raft (3 nodes) to an elected leader, median of {runs}: {}", ms(r));
}
