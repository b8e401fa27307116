//! The monitoring lab end to end on the real Docker engine: Prometheus and
//! Alertmanager around the learner's service. The reference solution passes
//! every check; each realistic instrumentation bug fails at the right check
//! with a message naming the metric, what Prometheus returned and what was
//! expected; the alert travels its whole path (pending, firing, Alertmanager,
//! lab's webhook, resolved), shown here also from Prometheus' and the
//! webhook's own records.

mod common;

use std::process::Command;

use common::*;

fn solution() -> std::path::PathBuf {
    root().join("tests/solutions/monitoring")
}

#[test]
fn the_reference_solution_passes_every_check() {
    let _down = Down("monitoring", Some("good"));
    let mut c = lab();
    c.args(["verify", "monitoring", "--student", "good", "--output", "json", "--solution"]).arg(solution());
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 11, "{report:#}");
    assert_eq!(report["summary"]["failed"], 0);
    assert_gone("lab-monitoring--good");
}

/// A published port of a container (`docker port`).
fn host_port(container: &str, port: u16) -> String {
    let out = Command::new("docker").args(["port", container, &format!("{port}/tcp")]).output().expect("docker runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or_else(|| panic!("no port {port} on {container}: {text}")).trim().to_string()
}

fn curl_json(url: &str) -> serde_json::Value {
    let out = Command::new("curl").args(["-sS", "--max-time", "5", "-g", url]).output().expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_alert_travels_its_whole_path() {
    let _down = Down("monitoring", Some("alert"));
    let mut c = lab();
    c.args(["verify", "monitoring", "--student", "alert", "--output", "json", "--keep", "--solution"]).arg(solution());
    let out = run(c);
    let report = json(&out);
    let ch = check(&report, "error-alert");
    assert_eq!(ch["status"], "passed", "{report:#}");

    // Prometheus' own record: the alert was pending, then firing (ALERTS keeps both states).
    let prom = host_port("lab-monitoring--alert-prometheus-1", 9090);
    let q = |expr: &str| {
        curl_json(&format!(
            "http://127.0.0.1:{prom}/api/v1/query?query={}",
            expr.replace(' ', "%20").replace('"', "%22").replace('{', "%7B").replace('}', "%7D").replace('[', "%5B").replace(']', "%5D")
        ))
    };
    for state in ["pending", "firing"] {
        let v = q(&format!(r#"count_over_time(ALERTS{{alertname="HighErrorRate",alertstate="{state}"}}[10m])"#));
        let n: f64 = v.pointer("/data/result/0/value/1").and_then(|x| x.as_str()).and_then(|s| s.parse().ok()).unwrap_or(0.0);
        assert!(n >= 1.0, "HighErrorRate was never {state} in Prometheus: {v}");
    }
    // Alertmanager's delivery as lab's webhook sink recorded it: firing, then resolved.
    let sink = host_port("lab-monitoring--alert-webhook-1", 9095);
    let page = curl_json(&format!("http://127.0.0.1:{sink}/received?since=1"));
    let mut seen = Vec::new();
    for n in page["notifications"].as_array().unwrap() {
        assert_eq!(n["body"]["receiver"], "lab", "{n}");
        for a in n["body"]["alerts"].as_array().unwrap() {
            if a["labels"]["alertname"] == "HighErrorRate" {
                seen.push(a["status"].as_str().unwrap().to_string());
            }
        }
    }
    let first_firing = seen.iter().position(|s| s == "firing").unwrap_or_else(|| panic!("no firing notification: {page:#}"));
    assert!(seen[first_firing..].iter().any(|s| s == "resolved"), "no resolved notification after the firing one: {seen:?}");
}

static VARIANTS: Variants = Variants {
    lab: "monitoring",
    var: "MONITORING_BUG",
    solution: "tests/solutions/monitoring",
    prefix: "mbug",
    at_once: 2,
    stagger: std::time::Duration::ZERO,
    passing: &[],
    // A service that hangs or floods /metrics fails in bounded time: it never hangs lab.
    within: Some(std::time::Duration::from_secs(240)),
    also: nothing_more,
};

#[test]
fn each_buggy_variant_fails_at_its_check() {
    each_variant_fails_at_its_check(&VARIANTS, MONITORING_BUGS);
}

/// The learner's service run on the host (`--target`): Prometheus, in a
/// container, scrapes it through the Docker host's gateway.
#[test]
fn a_service_on_the_host_is_scraped_through_the_gateway() {
    let _down = Down("monitoring", Some("host"));
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("src/lab.local");
    std::fs::create_dir_all(&pkg).unwrap();
    std::os::unix::fs::symlink(solution(), pkg.join("monitoring")).unwrap();
    let go = std::env::var("LAB_GO").unwrap_or_else(|_| "/usr/lib/go-1.23/bin/go".into());
    let bin = dir.path().join("monitoring");
    let out = Command::new(&go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg("lab.local/monitoring")
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:/usr/share/gocode", dir.path().display()))
        .env("GOCACHE", std::env::temp_dir().join("lab-test-monitoring-gocache"))
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go runs");
    assert!(out.status.success(), "go build: {}", String::from_utf8_lossy(&out.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _svc = Kill(Command::new(&bin).env("PORT", port.to_string()).stderr(std::process::Stdio::null()).spawn().expect("the service starts"));
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut c = lab();
    c.args(["verify", "monitoring", "--student", "host", "--output", "json", "--target", &url]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");
    assert_eq!(check(&report, "target-down-when-service-stops")["status"], "skipped", "lab cannot stop a service it does not run");
    assert_gone("lab-monitoring--host");
}

/// Each check alone (`--check`) gives the verdict it has in the whole run.
#[test]
fn each_check_alone_gives_the_verdict_of_the_whole_run() {
    common::each_check_alone_gives_the_verdict_of_the_whole_run("monitoring", &solution(), "alone");
}
