//! The rate-limiter lab end to end on the real Docker engine: three instances
//! of the reference solution sharing one Redis pass every check; each
//! realistic bug fails at the check a mentor would name; a hostile fake
//! service (hanging, flooding, answering garbage, limiting nothing) fails its
//! checks without hanging `lab verify`; each check alone gives the verdict of
//! the whole run.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn limiter() -> std::path::PathBuf {
    root().join("tests/solutions/rate-limiter")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("rate-limiter", Some("good"));
    let mut c = lab();
    c.args(["verify", "rate-limiter", "--student", "good", "--output", "json", "--solution"]).arg(limiter());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");
    // The burst admitted exactly the limit, over all three instances.
    let race = check(&report, "atomic-at-the-limit");
    assert_eq!(race["status"], "passed");
    assert_gone("lab-rate-limiter--good");
}

/// (bug, the check that must fail, words its message must contain).
const BUGS: &[(&str, &str, &str)] = &[
    // Each instance admits 10: requests 11 to 16, spread over three, pass.
    ("per-instance", "one-limit-across-instances", "request 1 of 6 got status 200 OK; expected status 429"),
    // Whatever the buckets' alignment: either the second five land in a new
    // bucket (the paced requests pass) or the bucket ends before the last
    // six requests (the sixth passes).
    ("fixed-window", "window-slides", "got status 200 OK; expected status 429 Too Many Requests"),
    ("non-atomic", "atomic-at-the-limit", "class.2xx"),
    ("no-ttl", "keys-expire", "without_ttl"),
    ("global-key", "clients-independent", "got status 429 Too Many Requests; expected status 200 OK"),
    ("no-retry-after", "limit-per-client", "no header Retry-After"),
    ("no-redis-timeout", "redis-down-fails-open", "the service hung"),
    ("fail-closed", "redis-down-fails-open", "got status 503 Service Unavailable; expected status 200 OK"),
    // Its one connection timed out while Redis was black-holed: it admits everything ever after.
    ("single-conn", "limits-again-after-redis", "expected status 429 Too Many Requests"),
];

static VARIANTS: Variants = Variants {
    lab: "rate-limiter",
    var: "RATELIMIT_BUG",
    solution: "tests/solutions/rate-limiter",
    prefix: "bug",
    at_once: 3,
    stagger: Duration::ZERO,
    passing: &["healthz", "requires-api-key"],
    within: Some(Duration::from_secs(120)),
    also: nothing_more,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, BUGS);
}

/// A fake service: /healthz answers 200; the API, by mode, hangs, floods,
/// answers bytes that are not HTTP, or admits everything (no limit at all).
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
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"ok\": \"");
                        let chunk = vec![b'x'; 65536];
                        let until = Instant::now() + Duration::from_secs(20);
                        while Instant::now() < until && s.write_all(&chunk).is_ok() {}
                    }
                    2 => {
                        let _ = s.write_all(b"\x00\x01RESP\xff\xfe garbage\r\n\r\n");
                    }
                    _ => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ratelimit-limit: 10\r\nx-ratelimit-remaining: 9\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"ok\": true}");
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("rate-limiter", Some("hostile"));
    let mode = Arc::new(AtomicUsize::new(0));
    let port = hostile_service(mode.clone());
    let url = format!("http://127.0.0.1:{port}");
    let mut c = lab();
    c.args(["up", "rate-limiter", "--student", "hostile", "--target", &url]);
    assert_eq!(run(c).status.code(), Some(0));
    for (m, name, words) in [(0, "hang", "the service hung"), (1, "flood", ""), (2, "garbage", ""), (3, "no limit", "X-RateLimit-Remaining")] {
        mode.store(m, Ordering::SeqCst);
        let began = Instant::now();
        let mut c = lab();
        c.args(["verify", "rate-limiter", "--student", "hostile", "--output", "json", "--target", &url]);
        let out = run(c);
        let took = began.elapsed();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {report:#}");
        assert!(took < Duration::from_secs(60), "{name}: verify took {took:?}");
        assert_eq!(check(&report, "healthz")["status"], "passed", "{name}");
        let first = check(&report, "limit-per-client");
        assert_eq!(first["status"], "failed", "{name}: {report:#}");
        let text = format!("{} | {}", first["summary"].as_str().unwrap_or(""), first["got"].as_str().unwrap_or(""));
        assert!(text.contains(words), "{name}: limit-per-client's message lacks {words:?}: {text}");
        // The limit stage is required: what follows is skipped, not run against a broken service.
        assert_eq!(check(&report, "atomic-at-the-limit")["status"], "skipped", "{name}");
    }
}

/// Each check uses clients of its own: alone it gives the whole run's verdict.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("rate-limiter", &limiter(), "alone");
    assert_eq!(took.len(), 10);
}
