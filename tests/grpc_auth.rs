//! The gRPC auth lab end to end on the real Docker engine: the reference
//! solution passes every check; each realistic bug fails at the right check
//! with a message a learner can act on; the instance's JWT secret survives
//! between `lab up` and `lab verify`; and a hostile service (hanging, sending
//! garbage, flooding) fails its checks without hanging `lab verify`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn auth_solution() -> PathBuf {
    root().join("tests/solutions/grpc-auth")
}

const CHECKS: usize = 11;

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("grpc-auth", Some("good"));
    let mut c = lab();
    c.args(["verify", "grpc-auth", "--student", "good", "--output", "json", "--solution"]).arg(auth_solution());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], CHECKS);
    assert_eq!(report["summary"]["failed"], 0);
    assert_gone("lab-grpc-auth--good");
}

/// The report says what was sent.
fn says_what_was_sent(bug: &str, _: &str, _: &serde_json::Value, ch: &serde_json::Value) {
    assert!(!ch["sent"].as_str().unwrap_or("").is_empty() || ch.to_string().contains("auth.v1.Auth/"), "{bug}: the report does not say what was sent: {ch}");
}

static VARIANTS: Variants =
    Variants { lab: "grpc-auth", var: "AUTH_BUG", solution: "tests/solutions/grpc-auth", prefix: "bug", at_once: 2, stagger: Duration::ZERO, passing: &[], within: None, also: says_what_was_sent };

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, GRPC_AUTH_BUGS);
}

fn secret_label(container: &str) -> String {
    let out = std::process::Command::new("docker").args(["inspect", "--format", "{{ index .Config.Labels \"lab.secret\" }}", container]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn container_id(container: &str) -> String {
    let out = std::process::Command::new("docker").args(["inspect", "--format", "{{ .Id }}", container]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `lab up` makes a secret, keeps it in a label, a second `up` keeps it (and
/// the service), and a later `lab verify` checks tokens with it; a JUnit
/// report names every check.
#[test]
fn the_secret_survives_from_up_to_verify_and_junit_names_every_check() {
    let _down = Down("grpc-auth", Some("keep"));
    let mut c = lab();
    c.args(["up", "grpc-auth", "--student", "keep", "--solution"]).arg(auth_solution());
    assert_eq!(run(c).status.code(), Some(0));
    let app = "lab-grpc-auth--keep-app-1";
    let secret = secret_label(app);
    assert_eq!(secret.len(), 64, "a 256-bit hex secret: {secret:?}");
    assert_eq!(secret_label("lab-grpc-auth--keep-postgres-1"), secret);
    let id = container_id(app);

    let mut c = lab();
    c.args(["up", "grpc-auth", "--student", "keep", "--solution"]).arg(auth_solution());
    assert_eq!(run(c).status.code(), Some(0));
    assert_eq!(secret_label(app), secret, "a second up keeps the secret");
    assert_eq!(container_id(app), id, "and the service's container");

    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "grpc-auth", "--student", "keep"]).arg("--report").arg(&xml);
    let t = Instant::now();
    let out = run(c);
    eprintln!("lab verify grpc-auth with the service up: {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = std::fs::read_to_string(&xml).unwrap();
    for name in [
        "signup",
        "login-returns-jwt",
        "token-expires",
        "whoami",
        "wrong-password",
        "duplicate-signup",
        "malformed-input",
        "passwords-hashed",
        "honours-deadline",
        "postgres-down-unavailable",
        "postgres-recovers",
    ] {
        assert!(text.contains(&format!(r#"<testcase name="{name}""#)), "{name} missing from\n{text}");
    }
    // The secret is the instance's own: the service signs with it (the check
    // above verified tokens with it), and it is not shown in the terminal output.
    assert!(!stdout(&out).contains(&secret));
}

/// How the hostile fake service misbehaves.
const HANG: u8 = 0;
const GARBAGE: u8 = 1;
const FLOOD: u8 = 2;
const SLAM: u8 = 3;

/// A fake service on 127.0.0.1 that hangs, answers garbage, floods a gRPC
/// reply that never ends, or closes every connection at once.
fn hostile_service(mode: Arc<AtomicU8>) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let mut held = Vec::new();
            loop {
                let (mut sock, _) = l.accept().await.unwrap();
                match mode.load(Ordering::SeqCst) {
                    HANG => held.push(sock),
                    GARBAGE => {
                        tokio::spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            for _ in 0..64 {
                                if sock.write_all(&[0x00, 0x00, 0x12, 0x04, 0xff, 0x7f, 0x13, 0x37]).await.is_err() {
                                    break;
                                }
                            }
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        });
                    }
                    FLOOD => {
                        tokio::spawn(async move {
                            let Ok(mut conn) = h2::server::handshake(sock).await else { return };
                            while let Some(Ok((_req, mut respond))) = conn.accept().await {
                                tokio::spawn(async move {
                                    let resp = http::Response::builder().status(200).header("content-type", "application/grpc").body(()).unwrap();
                                    let Ok(mut s) = respond.send_response(resp, false) else { return };
                                    let mut head = vec![0u8];
                                    head.extend_from_slice(&(200_000_000u32).to_be_bytes());
                                    let _ = s.send_data(head.into(), false);
                                    for _ in 0..100_000 {
                                        s.reserve_capacity(64 * 1024);
                                        if s.send_data(vec![b'x'; 64 * 1024].into(), false).is_err() {
                                            break;
                                        }
                                        tokio::task::yield_now().await;
                                    }
                                });
                            }
                        });
                    }
                    _ => drop(sock),
                }
            }
        });
    });
    port
}

#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("grpc-auth", Some("hostile"));
    let mode = Arc::new(AtomicU8::new(HANG));
    let port = hostile_service(mode.clone());
    let url = format!("http://127.0.0.1:{port}");
    let mut c = lab();
    c.args(["up", "grpc-auth", "--student", "hostile", "--target", &url]);
    assert_eq!(run(c).status.code(), Some(0));
    for (m, name) in [(HANG, "hang"), (GARBAGE, "garbage"), (FLOOD, "flood"), (SLAM, "slam")] {
        mode.store(m, Ordering::SeqCst);
        let mut c = lab();
        c.args(["verify", "grpc-auth", "--student", "hostile", "--output", "json"]);
        let t = Instant::now();
        let out = run(c);
        let took = t.elapsed();
        eprintln!("hostile service ({name}): lab verify took {took:?}");
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {report:#}");
        assert!(took < Duration::from_secs(60), "{name}: verify took {took:?}");
        // The first required stage fails check by check; later stages are skipped.
        for ch in ["signup", "login-returns-jwt", "wrong-password", "malformed-input"] {
            let r = check(&report, ch);
            assert_eq!(r["status"], "failed", "{name}: {ch}: {r:#}");
        }
        assert_eq!(check(&report, "postgres-recovers")["status"], "skipped", "{name}");
        let got = check(&report, "signup")["got"].as_str().unwrap_or("").to_string();
        let words = match m {
            HANG => "does not honour the deadline",
            FLOOD => "larger than",
            _ => "",
        };
        assert!(got.contains(words), "{name}: {got}");
    }
}

/// Each check alone (`--check`) gives the verdict it has in the whole run.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("grpc-auth", &auth_solution(), "alone");
}
