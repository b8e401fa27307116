//! Helpers for tests that drive the real `lab` binary against the real Docker engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference solution of the URL shortener.
pub fn shortener() -> PathBuf {
    root().join("tests/solutions/url-shortener")
}

/// A copy of the shortener's reference whose bug is built in (as a student's
/// own mistake would be: no environment variable picks it).
pub fn shortener_with_bug(dir: &Path, bug: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(shortener()).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        let text = text.replace(r#"os.Getenv("SHORTENER_BUG")"#, &format!("{bug:?}"));
        std::fs::write(dir.join(e.file_name()), text).unwrap();
    }
}

/// A `lab` command with the debian image set.
pub fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
    c.env("LAB_IMAGES", "debian").env("NO_COLOR", "1").current_dir(root());
    c
}

/// The kubeconfig of the test cluster (.ci/setup starts it): LAB_TEST_KUBECONFIG,
/// else envtest.sh's.
pub fn test_kubeconfig() -> PathBuf {
    let p = std::env::var_os("LAB_TEST_KUBECONFIG").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/lab-envtest/kubeconfig"));
    assert!(p.is_file(), "no kubeconfig at {}: start the test cluster with `K8S_ENVTEST_NODE=1 ../shared/k8s/envtest.sh start` (.ci/setup does)", p.display());
    p
}

/// A `lab` command on the test cluster, debian images.
pub fn lab_on_cluster() -> Command {
    let mut c = lab();
    c.env("KUBECONFIG", test_kubeconfig()).env("LAB_BACKEND", "kubernetes");
    c
}

/// Nothing of an instance is left on the test cluster: its namespace is gone.
/// (The node's engine removes a deleted pod's containers a little later; they
/// carry the pod's labels, so Docker's view is not the one to ask.)
pub fn assert_namespace_gone(instance: &str) {
    let kc = test_kubeconfig();
    let kubectl = kc.parent().unwrap().join("bin/kubectl");
    let out = Command::new(if kubectl.is_file() { kubectl } else { "kubectl".into() }).env("KUBECONFIG", &kc).args(["get", "namespace", instance]).output().expect("kubectl runs");
    assert!(!out.status.success(), "namespace {instance} left behind");
}

/// The URL shortener's bugs: (bug, the check that must fail, words of its message).
pub const SHORTENER_BUGS: &[(&str, &str, &str)] = &[
    ("no-rate-limit", "rate-limit-per-client", "expected status 429 Too Many Requests"),
    ("global-rate-limit", "rate-limit-per-client", "got status 429 Too Many Requests; expected status 201 Created"),
    ("no-retry-after", "rate-limit-per-client", "no header Retry-After"),
    ("memory", "survives-restart", "got status 404 Not Found; expected status 302 Found"),
    ("redis-500", "redis-down-503", "got status 500 Internal Server Error; expected status 503 Service Unavailable"),
    ("redis-hang", "redis-down-503", "the service hung"),
    ("redirect-301", "redirect", "got status 301 Moved Permanently; expected status 302 Found"),
    ("accept-any-url", "reject-invalid-url", "expected status 400 Bad Request"),
];

/// The rate-limiter lab's bugs: (bug, the check that must fail, words its message must contain).
pub const RATE_LIMITER_BUGS: &[(&str, &str, &str)] = &[
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

/// The circuit-breaker lab's bugs: (bug, the check that must fail, words its message must contain).
pub const CIRCUIT_BREAKER_BUGS: &[(&str, &str, &str)] = &[
    ("no-breaker", "opens-after-failures", r#"JSON /state = "closed"; expected JSON /state = "open""#),
    ("never-half-open", "half-open-lets-one-through", "class.2xx = 0"),
    ("half-open-all", "half-open-lets-one-through", "class.2xx = 5"),
    ("slow-is-failure", "slow-success-is-success", "got status 503 Service Unavailable; expected status 200 OK"),
    ("no-timeout", "timeout-is-failure", "the service hung"),
];

/// The timeouts lab's bugs: (bug, the check that must fail, words its message must contain).
pub const TIMEOUTS_BUGS: &[(&str, &str, &str)] = &[
    ("default-client", "upstream-hangs", "the service hung"),
    ("header-timeout-only", "upstream-trickles", "the service hung"),
    ("background-ctx", "client-gone-cancels-call", "/cancelled = 0"),
    ("new-transport", "connections-reused", "/connections = "),
    ("default-transport", "connections-reused", "/connections = "),
    ("leak", "goroutines-return", "/goroutines"),
];

/// The gin-api lab's bugs: (bug, the check that must fail, words its message must contain).
pub const GIN_API_BUGS: &[(&str, &str, &str)] = &[
    // 14 transfers of 7 fit in 100: a check outside the transaction lets more through.
    ("no-tx", "concurrent-transfers", "status.201 = "),
    ("lost-update", "concurrent-transfers", "status.201 = "),
    ("no-deadline", "postgres-blackhole-503", "the service hung"),
    ("concat-sql", "quotes-in-names", "got status 500 Internal Server Error; expected status 201 Created"),
    ("offset-page", "pagination-stable", "JSON /items/0/id = "),
];

/// How the URL shortener's bugs run (on Docker and on the test cluster).
pub static SHORTENER_VARIANTS: Variants = Variants {
    lab: "url-shortener",
    var: "SHORTENER_BUG",
    solution: "tests/solutions/url-shortener",
    prefix: "bug",
    // Two at a time, each in its own student instance: this also shows instances side by side.
    at_once: 2,
    stagger: std::time::Duration::ZERO,
    passing: &["create-link"],
    within: None,
    also: nothing_more,
};

/// The Raft lab's bugs: (bug, checks of which at least one must fail).
pub const RAFT_BUGS: &[(&str, &[&str])] = &[
    ("stale-reads", &["linearizable"]),
    // Answered before any follower could have the entry, whatever the timing
    // of elections: the check that slows the leader's links catches it. The
    // cas it applies in the handler may already fail compare-and-set (its
    // log entry can land after the cas changed the map).
    ("ack-before-commit", &["ack-after-commit", "compare-and-set"]),
    ("lose-data-on-restart", &["survives-full-restart"]),
    ("no-forward", &["follower-accepts-writes"]),
];

/// The chat lab's bugs: (bug, the check that must fail, words its message must contain).
pub const CHAT_BUGS: &[(&str, &str, &str)] = &[
    ("local-only", "fanout-across-instances", "got none of the 20 messages of c2 (node 2)"),
    ("no-origin-check", "bad-origin-refused", "was accepted (101 Switching Protocols)"),
    // How far the stall gets depends on buffers; that messages went missing next to a client that never reads does not.
    ("blocking-hub", "slow-client-does-not-stall", "got missing = "),
    ("double-delivery", "exactly-once", "twice"),
    ("no-ping", "ping-drops-silent-client", "was still connected after 9000 ms; it had been sent 0 ping(s)"),
    ("no-resubscribe", "redis-restart-resubscribe", "got none of the 15 messages that reached Redis: node 1's subscription does not work"),
    ("origin-not-normalised", "allowed-origin-normalised", "the handshake with Origin: https://chat.lab.test was refused with HTTP 403"),
    ("pong-wait-ignored", "ping-drops-silent-client", "expected closed_after_ms: a whole number ≥ 5000"),
    ("dead-publisher", "redis-restart-resubscribe", "5 of the 5 messages c1 sent to node 1 never reached Redis"),
];

/// The gRPC auth lab's bugs: (bug, the check that must fail, words its message must contain).
pub const GRPC_AUTH_BUGS: &[(&str, &str, &str)] = &[
    ("no-expiry", "token-expires", "claims.exp present"),
    ("plaintext-passwords", "passwords-hashed", "password_hash = \"hunter2 hunter2"),
    ("wrong-codes", "wrong-password", "code = \"PERMISSION_DENIED\""),
    ("hardcoded-secret", "login-returns-jwt", "the signature does not match the instance's JWT_SECRET"),
    ("accept-any-email", "malformed-input", "code = \"OK\""),
    ("db-internal", "postgres-down-unavailable", "code = \"INTERNAL\""),
    ("db-hang", "honours-deadline", "does not honour the deadline"),
];

/// The orders lab's bugs: (bug, the check that must fail, words its message must contain).
pub const ORDERS_BUGS: &[(&str, &str, &str)] = &[
    // Orders in flight when the worker dies were already acknowledged: lost.
    // (Also lost at worker-killed-mid-batch when the kill finds orders not yet
    // applied; a fast worker may have applied every one by then.)
    ("auto-ack", "killed-while-redis-stalls", "expected JSON /orders = 20"),
    // The poison order spins in the queue and never reaches the DLQ.
    ("infinite-requeue", "poison-to-dlq", "expected received = 1"),
    // Resubmitted and redelivered orders are applied again.
    // (3 applications, or more when a slow confirm made lab send one again.)
    ("no-idempotency", "duplicate-order", "; expected JSON /orders = 1"),
    ("no-idempotency", "worker-killed-mid-batch", "expected JSON /orders = 60"),
    // Acknowledged when taken, before the effect was recorded: the orders the
    // worker held while Redis stalled died with it.
    ("ack-on-receipt", "killed-while-redis-stalls", "expected JSON /orders = 20"),
    // Transient messages: the orders RabbitMQ still held are gone after its restart.
    ("transient", "queued-orders-survive-restart", "expected JSON /orders = 10"),
    // 202 without the broker's confirm: with the link to RabbitMQ cut, the order is "accepted" anyway.
    ("no-confirm", "no-202-without-confirm", "got status 202 Accepted; expected status 503"),
    // The id made known before RabbitMQ had the order: refused with 503, then
    // "accepted" again without being published, never applied.
    ("known-first", "resubmit-after-503", r#"got JSON /status = "queued" on every poll"#),
    // x-retries = "3": a string where every consumer reads a number.
    ("retries-as-string", "poison-to-dlq", r#"x-retries = "3" (a string)"#),
];

/// The monitoring lab's bugs: (bug, the check that must fail, words its message must contain).
pub const MONITORING_BUGS: &[(&str, &str, &str)] = &[
    ("counter-as-gauge", "requests-total-is-counter", r#"got http_requests_total.type = "gauge""#),
    ("no-method-label", "requests-total-labels", r#"got http_requests_total{code="200",method="GET"} absent"#),
    ("milliseconds", "request-duration-buckets", r#"; expected request_duration_seconds_bucket{le="0.1"} = "#),
    ("gauge-never-decremented", "active-users-follows-sessions", "; expected active_users_count = "),
    ("errors-as-200", "error-alert", r#"got HighErrorRate = "inactive""#),
    ("metrics-hang", "target-up", "context deadline exceeded"),
    ("metrics-flood", "target-up", "body size limit exceeded"),
];

/// Run and return the output, printing it for the test log.
pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("lab runs");
    eprintln!("--- {:?} exited {:?}\n{}\n{}", c.get_args().collect::<Vec<_>>(), out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Names of containers (all states) or networks carrying a label filter.
pub fn docker_names(kind: &str, label: &str) -> Vec<String> {
    let args: Vec<&str> = match kind {
        "container" => vec!["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
        "network" => vec!["network", "ls", "--filter", label, "--format", "{{.Name}}"],
        "volume" => vec!["volume", "ls", "--filter", label, "--format", "{{.Name}}"],
        _ => unreachable!(),
    };
    let out = Command::new("docker").args(&args).output().expect("docker runs");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Assert that nothing of an instance is left.
pub fn assert_gone(instance: &str) {
    let label = format!("label=lab.instance={instance}");
    for kind in ["container", "network", "volume"] {
        let left = docker_names(kind, &label);
        assert!(left.is_empty(), "{kind}s of {instance} left behind: {left:?}");
    }
}

/// Remove an instance whatever happened (for test cleanup).
pub struct Down(pub &'static str, pub Option<&'static str>);

impl Drop for Down {
    fn drop(&mut self) {
        let mut c = lab();
        c.args(["down", self.0]);
        if let Some(s) = self.1 {
            c.args(["--student", s]);
        }
        let _ = c.output();
    }
}

/// Parse a JSON report from stdout.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

/// The checks of a JSON report that did not pass, one line each with what
/// they said: put last in an assertion's message, so that a truncated CI log
/// still shows them.
pub fn failures(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in report["checks"].as_array().into_iter().flatten() {
        if c["status"] != "passed" && c["status"] != "skipped" {
            let said: String = ["summary", "got", "expected", "message"]
                .iter()
                .filter_map(|k| c.get(*k).and_then(|v| v.as_str()).map(|v| format!("{k}: {v}")))
                .collect::<Vec<_>>()
                .join(" | ")
                .chars()
                .take(800)
                .collect();
            out.push_str(&format!("\nNOT PASSED {} ({}): {said}", c["name"], c["status"]));
        }
    }
    out
}

/// The outcome of a named check in a JSON report.
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// How a lab's buggy variants are run by [`each_variant_fails_at_its_check`].
pub struct Variants {
    pub lab: &'static str,
    /// The variable that picks the bug in the reference solution (`CHAT_BUG`).
    pub var: &'static str,
    /// The reference solution, from the repository root.
    pub solution: &'static str,
    /// Students are named `<prefix><k>`.
    pub prefix: &'static str,
    /// How many run at once (each in its own student instance).
    pub at_once: usize,
    /// The k-th of a batch starts k times this late (brokers booting at once are slow).
    pub stagger: std::time::Duration,
    /// Checks that must pass under every bug: the bug is what broke, not something before it.
    pub passing: &'static [&'static str],
    /// A bound on each `lab verify`: a service that hangs or floods fails in bounded time.
    pub within: Option<std::time::Duration>,
    /// What else to assert of a failed check: (bug, check, report, the check's outcome).
    pub also: fn(&str, &str, &serde_json::Value, &serde_json::Value),
}

/// Nothing more to assert.
pub fn nothing_more(_: &str, _: &str, _: &serde_json::Value, _: &serde_json::Value) {}

/// Each bug of `bugs` (bug, the check that must fail, words its message must
/// contain; a bug may be listed with several checks) run through `lab verify
/// --env VAR=bug`: exit 1, each named check failed with the words and a hint,
/// the `passing` checks passed, and nothing of the instance left behind.
pub fn each_variant_fails_at_its_check(v: &'static Variants, bugs: &'static [(&'static str, &'static str, &'static str)]) {
    each_variant_fails_at_its_check_with(v, bugs, lab, assert_gone)
}

/// The same, with `lab` commands from `lab` (e.g. [`lab_on_cluster`]) and
/// `gone` asserting that nothing of an instance is left.
pub fn each_variant_fails_at_its_check_with(v: &'static Variants, bugs: &'static [(&'static str, &'static str, &'static str)], lab: fn() -> Command, gone: fn(&str)) {
    let mut names: Vec<&'static str> = bugs.iter().map(|(b, ..)| *b).collect();
    names.dedup();
    for batch in names.chunks(v.at_once) {
        let handles: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(k, &bug)| {
                std::thread::spawn(move || {
                    std::thread::sleep(v.stagger * k as u32);
                    let student = format!("{}{k}", v.prefix);
                    let started = std::time::Instant::now();
                    let mut c = lab();
                    c.args(["verify", v.lab, "--student", &student, "--output", "json", "--env", &format!("{}={bug}", v.var), "--solution"]).arg(root().join(v.solution));
                    let out = run(c);
                    if let Some(bound) = v.within {
                        assert!(started.elapsed() < bound, "{bug}: lab verify took {:?}", started.elapsed());
                    }
                    let _ = lab().args(["down", v.lab, "--student", &student]).output();
                    let report = json(&out);
                    assert_eq!(out.status.code(), Some(1), "{bug}: exit code\n{report:#}");
                    for (_, check_name, words) in bugs.iter().filter(|(b, ..)| *b == bug) {
                        let ch = check(&report, check_name);
                        assert_eq!(ch["status"], "failed", "{bug}: {check_name} should fail\n{report:#}");
                        let field = |k: &str| ch[k].as_str().unwrap_or_default().to_string();
                        let text = format!("{} | {} | {}", field("summary"), field("got"), field("expected"));
                        assert!(text.contains(words), "{bug}: {check_name} message lacks {words:?}: {text}");
                        assert!(!field("hint").is_empty(), "{bug}: no hint");
                        (v.also)(bug, check_name, &report, ch);
                    }
                    for early in v.passing {
                        assert_eq!(check(&report, early)["status"], "passed", "{bug}: {early}\n{report:#}");
                    }
                    gone(&format!("lab-{}--{student}", v.lab));
                })
            })
            .collect();
        for h in handles {
            h.join().expect("variant thread");
        }
    }
}

/// For [`Variants::also`]: every check before the failed one passed.
pub fn earlier_checks_passed(bug: &str, check_name: &str, report: &serde_json::Value, _: &serde_json::Value) {
    for c in report["checks"].as_array().unwrap() {
        if c["name"] == check_name {
            break;
        }
        assert_eq!(c["status"], "passed", "{bug}: {} before {check_name}\n{report:#}", c["name"]);
    }
}

/// iptables chains lab made in a container's network namespace.
pub fn lab_chains(container: &str) -> Vec<String> {
    let pid = Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", container]).output().unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let out = Command::new("nsenter").args(["-t", &pid, "-n", "iptables", "-S"]).output().unwrap();
    assert!(out.status.success(), "nsenter iptables: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("-N LAB-")).map(str::to_string).collect()
}

/// A container's state (running, exited, paused...).
pub fn container_state(name: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", "{{.State.Status}}", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Send SIGINT (Ctrl-C) to a child.
pub fn interrupt(child: &std::process::Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
}

/// Build the shortener's reference solution with Go (GOPATH mode, Debian's libraries).
pub fn build_solution(dir: &std::path::Path) -> std::path::PathBuf {
    let gopath = dir.join("gopath/src/lab.local");
    std::fs::create_dir_all(&gopath).unwrap();
    std::os::unix::fs::symlink(shortener(), gopath.join("shortener")).unwrap();
    let go = ["/usr/lib/go-1.23/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("go");
    let out = dir.join("shortener");
    let status = std::process::Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg("lab.local/shortener")
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:/usr/share/gocode", dir.join("gopath").display()))
        .env("CGO_ENABLED", "0")
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// An image of the shortener as a learner's CI would make it: the base image,
/// the program, its entrypoint (nothing pulled). Tagged `tag`; made once.
pub fn learner_image(tag: &str) -> String {
    let has = |t: &str| Command::new("docker").args(["image", "inspect", t]).output().unwrap().status.success();
    if has(tag) {
        return tag.to_string();
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = build_solution(dir.path());
    let out = Command::new("docker").args(["create", "lab-debian/base:bookworm"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ok = |args: &[&str]| {
        let o = Command::new("docker").args(args).output().unwrap();
        assert!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    ok(&["cp", bin.to_str().unwrap(), &format!("{cid}:/usr/local/bin/shortener")]);
    ok(&["commit", "--change", "ENTRYPOINT [\"/usr/local/bin/shortener\"]", &cid, tag]);
    ok(&["rm", &cid]);
    tag.to_string()
}

/// The raft timing textkv reads from textkv.conf next to its executable
/// (without the file it keeps raft's slower defaults).
pub const TEXTKV_CONF: &str =
    "# textkv.conf: raft timing for three nodes on one network\nheartbeat-timeout = 500ms\nelection-timeout = 500ms\nleader-lease-timeout = 250ms\ncommit-timeout = 20ms\nrequest-timeout = 2s\n";

/// The third-party store of tests/stores/textkv, built once per test binary
/// (Go, GOPATH mode, Debian's libraries) into `<tmp>/third-party/textkv-dist/`
/// holding `textkv` and the `textkv.conf` it reads from its own folder: a
/// folder of a built program, as `--solution` takes one.
pub fn textkv_dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("third-party");
        let gopath = work.join("gopath");
        let src = gopath.join("src/lab.local");
        std::fs::create_dir_all(&src).unwrap();
        let link = src.join("textkv");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root().join("tests/stores/textkv"), &link).unwrap();
        let dist = work.join("textkv-dist");
        let _ = std::fs::remove_dir_all(&dist);
        std::fs::create_dir_all(&dist).unwrap();
        let go = ["/usr/lib/go-1.23/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("go");
        let t = Instant::now();
        let out = Command::new(go)
            .args(["build", "-trimpath", "-o"])
            .arg(dist.join("textkv"))
            .arg("lab.local/textkv")
            .current_dir(&gopath)
            .env("GO111MODULE", "off")
            .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .output()
            .expect("go runs");
        assert!(out.status.success(), "go build of tests/stores/textkv failed:\n{}", String::from_utf8_lossy(&out.stderr));
        eprintln!("built textkv in {:?}", t.elapsed());
        std::fs::write(dist.join("textkv.conf"), TEXTKV_CONF).unwrap();
        dist
    })
}

/// `lab verify` of a lab's reference solution on one instance kept up: the
/// whole run first, then each of its checks alone (`--check`, in the README's
/// order, with the required stages before it): each gives the verdict it had
/// in the whole run, so no check owes its verdict to what an earlier one left.
/// Returns each check's outcome: (name, in the whole run, alone).
pub fn each_check_alone_gives_the_verdict_of_the_whole_run(lab_name: &'static str, solution: &Path, student: &'static str) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let _down = Down(lab_name, Some(student));
    let verify = |extra: &[&str]| {
        let mut c = lab();
        c.args(["verify", lab_name, "--student", student, "--output", "json", "--keep", "--solution"]).arg(solution).args(extra);
        let out = run(c);
        let report = json(&out);
        (out.status.code(), report)
    };
    let (code, whole) = verify(&[]);
    assert_eq!(code, Some(0), "{whole:#}");
    let checks: Vec<(String, String)> = whole["checks"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string())).collect();
    assert!(checks.len() > 3, "{whole:#}");
    let mut took = Vec::new();
    for (name, status) in &checks {
        let (code, alone) = verify(&["--check", name]);
        let ran: Vec<&str> = alone["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(ran.last(), Some(&name.as_str()), "{name} alone ran {ran:?}: {alone:#}");
        assert_eq!(check(&alone, name)["status"].as_str(), Some(status.as_str()), "{name} alone: {alone:#}");
        assert_eq!(code, Some(0), "{name} alone: {alone:#}");
        took.push((name.clone(), check(&whole, name).clone(), check(&alone, name).clone()));
    }
    took
}

/// How a fake service of [`hostile_run`] answers everything but `GET /healthz`.
#[derive(Clone, Copy)]
pub enum Hostile {
    /// Keeps the connection open and answers nothing.
    Hang,
    /// Sends these bytes (a status line, headers and the start of a JSON
    /// body) and then a body that never ends.
    Flood(&'static [u8]),
    /// Bytes that are not HTTP at all.
    Garbage,
    /// This whole answer, every time.
    Answer(&'static [u8]),
}

/// A fake service on all interfaces: `/healthz` answers 200; the rest as
/// `mode` says at the time of the request.
pub fn hostile_service(mode: std::sync::Arc<std::sync::Mutex<Hostile>>) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mode = *mode.lock().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"GET /healthz") {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
                    return;
                }
                match mode {
                    Hostile::Hang => std::thread::sleep(std::time::Duration::from_secs(60)),
                    Hostile::Flood(head) => {
                        let _ = s.write_all(head);
                        let chunk = vec![b'x'; 65536];
                        let until = Instant::now() + std::time::Duration::from_secs(20);
                        while Instant::now() < until && s.write_all(&chunk).is_ok() {}
                    }
                    Hostile::Garbage => {
                        let _ = s.write_all(b"\x00\x01NOT-HTTP\xff\xfe garbage\r\n\r\n");
                    }
                    Hostile::Answer(a) => {
                        let _ = s.write_all(a);
                    }
                }
            });
        }
    });
    port
}

/// `lab up --target` a fake service, then `lab verify` it once per mode
/// (mode, its name, words the first check's message must contain): exit 1
/// within `bound`, `healthz` passed, `first` failed with the words, and
/// `later` (in a stage after a required one) skipped, never run against a
/// broken service.
pub fn hostile_run(lab_name: &str, student: &str, modes: &[(Hostile, &str, &str)], first: &str, later: &str, bound: std::time::Duration) {
    let mode = std::sync::Arc::new(std::sync::Mutex::new(Hostile::Hang));
    let port = hostile_service(mode.clone());
    let url = format!("http://127.0.0.1:{port}");
    let mut c = lab();
    c.args(["up", lab_name, "--student", student, "--target", &url]);
    assert_eq!(run(c).status.code(), Some(0));
    for &(m, name, words) in modes {
        *mode.lock().unwrap() = m;
        let began = Instant::now();
        let mut c = lab();
        c.args(["verify", lab_name, "--student", student, "--output", "json", "--target", &url]);
        let out = run(c);
        let took = began.elapsed();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {report:#}");
        assert!(took < bound, "{name}: verify took {took:?}");
        assert_eq!(check(&report, "healthz")["status"], "passed", "{name}");
        let ch = check(&report, first);
        assert_eq!(ch["status"], "failed", "{name}: {report:#}");
        let text = format!("{} | {}", ch["summary"].as_str().unwrap_or(""), ch["got"].as_str().unwrap_or(""));
        assert!(text.contains(words), "{name}: {first}'s message lacks {words:?}: {text}");
        assert_eq!(check(&report, later)["status"], "skipped", "{name}");
    }
}
