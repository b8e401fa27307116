//! The gin-api lab end to end on the real Docker engine (PostgreSQL from the
//! debian image set, reached through lab's fault proxy): the reference
//! solution passes every check; each realistic bug fails at the check a mentor
//! would name; a hostile fake service fails its checks without hanging `lab
//! verify`; each check alone gives the verdict of the whole run.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn api() -> std::path::PathBuf {
    root().join("tests/solutions/gin-api")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("gin-api", Some("good"));
    let mut c = lab();
    c.args(["verify", "gin-api", "--student", "good", "--output", "json", "--solution"]).arg(api());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");
    assert_gone("lab-gin-api--good");
}

/// (bug, the check that must fail, words its message must contain).
const BUGS: &[(&str, &str, &str)] = &[
    // 14 transfers of 7 fit in 100: a check outside the transaction lets more through.
    ("no-tx", "concurrent-transfers", "status.201 = "),
    ("lost-update", "concurrent-transfers", "status.201 = "),
    ("no-deadline", "postgres-blackhole-503", "the service hung"),
    ("concat-sql", "quotes-in-names", "got status 500 Internal Server Error; expected status 201 Created"),
    ("offset-page", "pagination-stable", "JSON /items/0/id = "),
];

static VARIANTS: Variants = Variants {
    lab: "gin-api",
    var: "GINAPI_BUG",
    solution: "tests/solutions/gin-api",
    prefix: "bug",
    at_once: 2,
    // Two PostgreSQLs starting at once on two cores take their time.
    stagger: Duration::from_secs(5),
    passing: &["healthz", "create-account", "field-errors"],
    within: Some(Duration::from_secs(150)),
    also: earlier_checks_passed,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, BUGS);
}

/// A fake service: /healthz answers 200; everything else, by mode, hangs,
/// floods, or answers bytes that are not HTTP.
fn hostile_service(mode: Arc<AtomicUsize>) -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mode = mode.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if head.starts_with("GET /healthz") {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
                    return;
                }
                match mode {
                    0 => std::thread::sleep(Duration::from_secs(60)),
                    1 => {
                        let _ = s.write_all(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"id\": 1, \"owner\": \"");
                        let chunk = vec![b'x'; 65536];
                        let until = Instant::now() + Duration::from_secs(20);
                        while Instant::now() < until && s.write_all(&chunk).is_ok() {}
                    }
                    _ => {
                        let _ = s.write_all(b"\x00\x01PGSQL\xff\xfe garbage\r\n\r\n");
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("gin-api", Some("hostile"));
    let mode = Arc::new(AtomicUsize::new(0));
    let port = hostile_service(mode.clone());
    let url = format!("http://127.0.0.1:{port}");
    let mut c = lab();
    c.args(["up", "gin-api", "--student", "hostile", "--target", &url]);
    assert_eq!(run(c).status.code(), Some(0));
    for (m, name, words) in [(0, "hang", "the service hung"), (1, "flood", ""), (2, "garbage", "")] {
        mode.store(m, Ordering::SeqCst);
        let began = Instant::now();
        let mut c = lab();
        c.args(["verify", "gin-api", "--student", "hostile", "--output", "json", "--target", &url]);
        let out = run(c);
        let took = began.elapsed();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {report:#}");
        assert!(took < Duration::from_secs(90), "{name}: verify took {took:?}");
        assert_eq!(check(&report, "healthz")["status"], "passed", "{name}");
        let first = check(&report, "create-account");
        assert_eq!(first["status"], "failed", "{name}: {report:#}");
        let text = format!("{} | {}", first["summary"].as_str().unwrap_or(""), first["got"].as_str().unwrap_or(""));
        assert!(text.contains(words), "{name}: create-account's message lacks {words:?}: {text}");
        assert_eq!(check(&report, "deposit-and-transfer")["status"], "skipped", "{name}");
    }
}

#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("gin-api", &api(), "alone");
    assert_eq!(took.len(), 10);
}
