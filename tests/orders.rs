//! The orders lab end to end on the real Docker engine (RabbitMQ and Redis from
//! the debian image set): the reference solution passes every check; each
//! realistic bug fails at the right check with a message a learner can act on;
//! a hostile fake service (hanging, flooding, answering garbage) fails its
//! checks without hanging or crashing `lab verify`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn orders() -> std::path::PathBuf {
    root().join("tests/solutions/orders")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("orders", Some("good"));
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let mut c = lab();
    c.args(["verify", "orders", "--student", "good", "--output", "json", "--solution"]).arg(orders()).arg("--report").arg(&xml);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 14);
    assert_eq!(report["summary"]["failed"], 0);
    // The JUnit report names every check.
    let text = std::fs::read_to_string(&xml).unwrap();
    for name in [
        "healthz",
        "topology",
        "submit-order",
        "unknown-order",
        "reject-invalid-order",
        "duplicate-order",
        "poison-to-dlq",
        "worker-killed-mid-batch",
        "killed-while-redis-stalls",
        "survives-rabbitmq-restart",
        "queued-orders-survive-restart",
        "no-202-without-confirm",
        "resubmit-after-503",
        "burst-drain",
    ] {
        assert!(text.contains(&format!(r#"<testcase name="{name}""#)), "{name} missing from\n{text}");
    }
    assert_gone("lab-orders--good");
}

static VARIANTS: Variants = Variants {
    lab: "orders",
    var: "ORDERS_BUG",
    solution: "tests/solutions/orders",
    prefix: "bug",
    at_once: 3,
    // Staggered: three RabbitMQs booting at once on two cores is slow.
    stagger: Duration::from_secs(15),
    // The checks before the bug's first failing check passed: the bug is what broke.
    passing: &["healthz", "topology", "submit-order", "unknown-order", "reject-invalid-order"],
    within: None,
    also: nothing_more,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, ORDERS_BUGS);
}

/// A fake orders service: /healthz answers 200; everything else, depending on
/// the mode, hangs, floods, or answers bytes that are not HTTP.
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
                    // Hang: keep the connection open, answer nothing.
                    0 => std::thread::sleep(Duration::from_secs(60)),
                    // Flood: a JSON-looking body that never ends.
                    1 => {
                        let _ = s.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n\r\n{\"id\": \"");
                        let chunk = vec![b'x'; 65536];
                        let until = Instant::now() + Duration::from_secs(20);
                        while Instant::now() < until && s.write_all(&chunk).is_ok() {}
                    }
                    // Garbage: not HTTP at all.
                    _ => {
                        let _ = s.write_all(b"\x00\x01AMQP\xff\xfe garbage\r\n\r\n");
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_hostile_service_fails_its_checks_without_hanging_verify() {
    let _down = Down("orders", Some("hostile"));
    let mode = Arc::new(AtomicUsize::new(0));
    let port = hostile_service(mode.clone());
    let url = format!("http://127.0.0.1:{port}");
    // Dependencies only; the fake plays the service.
    let mut c = lab();
    c.args(["up", "orders", "--student", "hostile", "--target", &url]);
    assert_eq!(run(c).status.code(), Some(0));
    for (m, name, words) in [(0, "hang", "the service hung"), (1, "flood", "JSON"), (2, "garbage", "")] {
        mode.store(m, Ordering::SeqCst);
        let began = Instant::now();
        let mut c = lab();
        c.args(["verify", "orders", "--student", "hostile", "--output", "json", "--target", &url]);
        let out = run(c);
        let took = began.elapsed();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {report:#}");
        assert!(took < Duration::from_secs(90), "{name}: verify took {took:?}");
        assert_eq!(check(&report, "healthz")["status"], "passed", "{name}");
        // Nobody consumes from the queue (or declared it).
        assert_eq!(check(&report, "topology")["status"], "failed", "{name}: {report:#}");
        let submit = check(&report, "submit-order");
        assert_eq!(submit["status"], "failed", "{name}: {report:#}");
        let text = format!("{} | {}", submit["summary"].as_str().unwrap_or(""), submit["got"].as_str().unwrap_or(""));
        assert!(text.contains(words), "{name}: submit-order message lacks {words:?}: {text}");
        // The orders stage is required: the later stages are skipped, not run against a broken service.
        assert_eq!(check(&report, "burst-drain")["status"], "skipped", "{name}");
    }
}

/// Every check gives the same verdict alone (`--check`) as after the others,
/// and measures the same: a check that inherited what earlier ones left (a
/// queue still draining, a broker still recovering) would measure the
/// service's restart and drain slower in the whole run than alone.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    let took = common::each_check_alone_gives_the_verdict_of_the_whole_run("orders", &orders(), "alone");
    let figure = |c: &serde_json::Value, step: u64, what: &str| -> f64 {
        c["measured"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["step"] == step && m["what"] == what)
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("step {step} measured no {what}: {c:#}"))
    };
    let mut shown = Vec::new();
    for (name, whole, alone) in &took {
        shown.push(format!("{name}: {:.2} s in the whole run, {:.2} s alone", whole["duration"].as_f64().unwrap_or_default(), alone["duration"].as_f64().unwrap_or_default()));
    }
    // How long the service took to do what a polled step waits for after a
    // broker restart, a reset link or a poison message: the same within 20 %,
    // or within 1 s for short ones (a polled step asks every 200 ms, and the
    // tests of this file run side by side on two cores). A check that
    // inherited earlier checks' orders waited 13 s or more longer.
    // (worker-killed-mid-batch's poll is not among them: it starts when the
    // restarted service is ready, so it measures how long the start took.)
    for (name, step) in [("survives-rabbitmq-restart", 4), ("survives-rabbitmq-restart", 5), ("resubmit-after-503", 5), ("poison-to-dlq", 3)] {
        let (_, whole, alone) = took.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("no check {name}"));
        let (w, a) = (figure(whole, step, "passed after"), figure(alone, step, "passed after"));
        shown.push(format!("{name} step {step} passed after {w:.2} s in the whole run, {a:.2} s alone"));
        assert!((w - a).abs() <= (0.2 * w.max(a)).max(1.0), "{name} step {step}: {w} s in the whole run, {a} s alone\n{}", shown.join("\n"));
    }
    // The drain rate: 500 orders take the reference about 0.2 s, so one run's
    // rate varies by a third on a quiet machine and more under the other
    // tests' load. A check that inherits a queue of slow orders measures some
    // 40 a second instead of thousands: the whole run's rate must be at least
    // half the slowest of three runs alone (the figures are printed).
    let (_, whole, alone) = took.iter().find(|(n, _, _)| n == "burst-drain").expect("burst-drain");
    let w = figure(whole, 2, "/drain/rate");
    let mut rates = vec![figure(alone, 2, "/drain/rate")];
    let _down = Down("orders", Some("alone"));
    for _ in 0..2 {
        let mut c = lab();
        c.args(["verify", "orders", "--student", "alone", "--output", "json", "--keep", "--check", "burst-drain", "--solution"]).arg(orders());
        let out = run(c);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(0), "{report:#}");
        rates.push(figure(check(&report, "burst-drain"), 2, "/drain/rate"));
    }
    let lo = rates.iter().copied().fold(f64::MAX, f64::min);
    shown.push(format!("burst-drain rate {w} orders/s in the whole run, {rates:?} alone"));
    eprintln!("{}", shown.join("\n"));
    assert!(w >= 0.5 * lo, "{}", shown.join("\n"));
}
