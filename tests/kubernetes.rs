//! The Kubernetes backend against a real API server and a real node:
//! `../shared/k8s/envtest.sh` (started by .ci/setup in node mode: kube-apiserver,
//! etcd, controller manager, scheduler, a kubelet on the local Docker engine
//! and kube-proxy, all on this machine). Its kubeconfig is taken from
//! LAB_TEST_KUBECONFIG, else /var/cache/lab-envtest/kubeconfig; these tests
//! fail, they are never skipped, when it is not running.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::*;

fn kubeconfig() -> PathBuf {
    test_kubeconfig()
}

/// kubectl of the test cluster (the one envtest.sh unpacked, matching the server).
fn kubectl() -> Command {
    let kc = kubeconfig();
    let bin = kc.parent().unwrap().join("bin/kubectl");
    let mut c = Command::new(if bin.is_file() { bin } else { PathBuf::from("kubectl") });
    c.env("KUBECONFIG", kc);
    c
}

fn kubectl_out(args: &[&str]) -> String {
    let out = kubectl().args(args).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn klab() -> Command {
    lab_on_cluster()
}

/// Removes an instance from the cluster whatever happened.
struct KDown(&'static str, &'static str);

impl Drop for KDown {
    fn drop(&mut self) {
        let _ = klab().args(["down", self.0, "--student", self.1]).output();
    }
}

/// Every object of a namespace lab makes, with its resourceVersion.
/// `lab chaos url-shortener ARGS --student STUDENT` on the cluster.
fn kchaos(student: &str, args: &[&str]) -> std::process::Output {
    let mut c = klab();
    c.args(["chaos", "url-shortener"]).args(args).args(["--student", student]);
    run(c)
}

fn versions(ns: &str) -> BTreeMap<String, String> {
    let jp = "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}";
    let mut text = kubectl_out(&["get", "service,pod,limitrange,resourcequota,networkpolicy,configmap", "-n", ns, "-o", jp]);
    text += &kubectl_out(&["get", "namespace", ns, "-o", "jsonpath=Namespace/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}"]);
    text.lines().filter(|l| !l.contains("kube-root-ca")).filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn namespace_exists(ns: &str) -> bool {
    kubectl().args(["get", "namespace", ns]).output().unwrap().status.success()
}

#[test]
fn every_lab_s_export_passes_server_side_dry_run() {
    kubeconfig();
    let labs = ["url-shortener", "grpc-auth", "chat", "orders", "raft", "monitoring"];
    for lab_name in labs {
        let ns = format!("lab-{lab_name}--export");
        let mut c = lab();
        c.args(["export", "k8s", lab_name, "--student", "export", "--binary"]).arg(env!("CARGO_BIN_EXE_lab"));
        let out = run(c);
        assert_eq!(out.status.code(), Some(0));
        let yaml = stdout(&out);
        assert!(yaml.contains(&format!("namespace: {ns}")), "{yaml}");
        // Namespaced objects are dry-run inside their namespace, which must exist for it.
        kubectl_out(&["create", "namespace", &ns]);
        let mut k = kubectl();
        k.args(["apply", "--server-side", "--dry-run=server", "-f", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = k.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let res = child.wait_with_output().unwrap();
        let _ = kubectl().args(["delete", "namespace", &ns, "--wait=false"]).output();
        let said = String::from_utf8_lossy(&res.stdout).to_string() + &String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{lab_name}: server-side dry run refused the export:\n{said}");
        let pods = yaml.matches("kind: Pod\n").count();
        assert_eq!(said.matches("serverside-applied (server dry run)").count(), yaml.matches("\nkind: ").count(), "{lab_name}: every object applied\n{said}");
        assert!(pods >= 2, "{lab_name}: {pods} pods");
    }
}

#[test]
fn url_shortener_on_the_cluster_up_again_changes_nothing_verify_passes_chaos_is_recorded_down_removes_it() {
    let _down = KDown("url-shortener", "kube");
    let ns = "lab-url-shortener--kube";
    let up = || {
        let mut c = klab();
        c.args(["up", "url-shortener", "--student", "kube", "--solution"]).arg(shortener());
        let t0 = Instant::now();
        let out = run(c);
        assert_eq!(out.status.code(), Some(0));
        (out, t0.elapsed())
    };
    let (_, first) = up();

    // Exactly the planned objects, in the instance's namespace.
    let v1 = versions(ns);
    let kinds: Vec<&str> = v1.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "LimitRange/lab-defaults",
            "Namespace/lab-url-shortener--kube",
            // Redis is behind the fault proxy: only the proxy may connect to it.
            "NetworkPolicy/lab-backstage-through-the-proxy-only",
            "NetworkPolicy/lab-same-instance-only",
            "Pod/app-1",
            "Pod/proxy-1",
            "Pod/redis-1",
            "ResourceQuota/lab-quota",
            "Service/app",
            "Service/app-1",
            "Service/proxy",
            "Service/redis"
        ],
        "{v1:?}"
    );
    let labels = kubectl_out(&["get", "namespace", ns, "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains("\"lab.instance\":\"lab-url-shortener--kube\"") && labels.contains("\"app.kubernetes.io/managed-by\":\"lab\""), "{labels}");
    let managers = kubectl_out(&["get", "pod", "app-1", "-n", ns, "-o", "jsonpath={.metadata.managedFields[*].manager}"]);
    assert!(managers.split_whitespace().any(|m| m == "lab"), "applied with field manager lab: {managers}");

    // A second up with nothing changed changes nothing.
    let (out, second) = up();
    assert!(String::from_utf8_lossy(&out.stderr).contains("(0 created or replaced)"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(versions(ns), v1, "resourceVersions changed on a second up");
    eprintln!("up: first {first:?}, second {second:?}");

    // The checks pass on the cluster, through port-forwards.
    let mut c = klab();
    c.args(["verify", "url-shortener", "--student", "kube", "--output", "json"]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert_eq!(report["summary"]["passed"], 10, "{report:#}");

    // A fault is a labelled ConfigMap in the namespace, found by status and healed.
    let out = kchaos("kube", &["kill", "app"]);
    assert_eq!(out.status.code(), Some(0));
    let cms = kubectl_out(&["get", "configmap", "-n", ns, "-l", "lab.fault", "-o", "name"]);
    assert_eq!(cms.lines().count(), 1, "{cms}");
    let status = kchaos("kube", &["status"]);
    assert!(stdout(&status).contains("kill"), "{}", stdout(&status));
    // Killed means down: its port answers nothing through the forward until healed.
    let heal = kchaos("kube", &["heal"]);
    assert_eq!(heal.status.code(), Some(0));
    assert_eq!(kubectl_out(&["get", "configmap", "-n", ns, "-l", "lab.fault", "-o", "name"]).trim(), "");

    // Write-ahead: the record is created (not yet applied) before the fault
    // acts; lab killed with -9 right then leaves a record that status lists
    // and heal reverts.
    // A marker in the watched set: its line says the watch is established,
    // so that the record's first version is seen, not a later one.
    kubectl_out(&["create", "configmap", "watch-ready", "-n", ns]);
    kubectl_out(&["label", "configmap", "watch-ready", "-n", ns, "lab.fault=marker"]);
    let mut watch =
        kubectl().args(["get", "configmap", "-n", ns, "-l", "lab.fault", "--watch", "-o", "jsonpath={.metadata.name} {.data.record}{\"\\n\"}"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let marker = lines.next().unwrap().unwrap();
    assert!(marker.starts_with("watch-ready"), "{marker}");
    let mut chaos =
        klab().args(["chaos", "url-shortener", "kill", "app", "--for", "60s", "--student", "kube"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let first = lines.map_while(Result::ok).find(|l| l.starts_with("fault-")).unwrap_or_default();
    let first = first.split_once(' ').map(|(_, r)| r.to_string()).unwrap_or_default();
    chaos.kill().unwrap();
    chaos.wait().unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    kubectl_out(&["delete", "configmap", "watch-ready", "-n", ns]);
    let rec: serde_json::Value = serde_json::from_str(first.trim()).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!((rec["kind"].as_str(), rec["applied"].as_bool()), (Some("kill"), Some(false)), "the record comes first: {rec}");
    let status = kchaos("kube", &["status"]);
    assert!(stdout(&status).contains("kill"), "{}", stdout(&status));
    let heal = kchaos("kube", &["heal"]);
    assert!(stdout(&heal).contains("healed 1 fault"), "{}", stdout(&heal));
    assert_eq!(kubectl_out(&["get", "configmap", "-n", ns, "-l", "lab.fault", "-o", "name"]).trim(), "");
    let pid = kubectl_out(&["exec", "-n", ns, "app-1", "--", "cat", "/lab/run/pid"]);
    assert!(!pid.trim().is_empty(), "the program runs again after heal");

    // Down deletes the namespace and waits until it is gone.
    let out = run({
        let mut c = klab();
        c.args(["down", "url-shortener", "--student", "kube"]);
        c
    });
    assert_eq!(out.status.code(), Some(0));
    assert!(!namespace_exists(ns), "namespace {ns} still there");
}

#[test]
fn partitions_go_through_the_fault_proxy_and_faults_it_cannot_carry_say_so_with_exit_2() {
    let _down = KDown("url-shortener", "knet");
    let mut c = klab();
    c.args(["up", "url-shortener", "--student", "knet", "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    // The test node's pod addresses answer from the host (up's port-forwards end with it).
    let app_ip = kubectl_out(&["get", "pod", "app-1", "-n", "lab-url-shortener--knet", "-o", "jsonpath={.status.podIP}"]).trim().to_string();
    let calls = std::cell::Cell::new(0);
    let shorten = || {
        calls.set(calls.get() + 1);
        Command::new("curl")
            .args(["-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json", "-d", r#"{"url":"https://example.com/k"}"#])
            // A client of its own each time: the rate limit is not what is tested here.
            .args(["-H", &format!("X-Forwarded-For: 10.77.0.{}", calls.get())])
            .arg(format!("http://{app_ip}:8080/api/links"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap()
    };
    assert!(shorten().starts_with('2'), "the service answers before the partition");
    // Cutting the service from Redis: the link through lab's proxy becomes a black hole.
    let mut c = klab();
    c.args(["chaos", "url-shortener", "partition", "app", "--to", "redis", "--student", "knet"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut through lab's fault proxy (links redis)"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!shorten().starts_with('2'), "a request that needs Redis does not succeed while it is cut off");
    let mut c = klab();
    c.args(["chaos", "url-shortener", "heal", "--student", "knet"]);
    assert_eq!(run(c).status.code(), Some(0));
    let t0 = Instant::now();
    while !shorten().starts_with('2') {
        assert!(t0.elapsed().as_secs() < 20, "the service recovers once healed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A fault that needs the pod's own network (tc) says so plainly.
    let mut c = klab();
    c.args(["chaos", "url-shortener", "bandwidth", "app", "--rate", "1mbit", "--student", "knet"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not available on this backend") && err.contains("fault proxy"), "{err}");
    // A link fault through lab's proxy works on the cluster.
    let mut c = klab();
    c.args(["chaos", "url-shortener", "latency", "redis", "--delay", "300ms", "--student", "knet"]);
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = klab();
    c.args(["chaos", "url-shortener", "heal", "--student", "knet"]);
    assert_eq!(run(c).status.code(), Some(0));
    assert_eq!(kubectl_out(&["get", "configmap", "-n", "lab-url-shortener--knet", "-l", "lab.fault", "-o", "name"]).trim(), "");

    cluster_engines(&shorten);
}

/// `--chaos-engine`: the cluster's own means, or a plain exit 2 where it has none.
fn cluster_engines(shorten: &dyn Fn() -> String) {
    let ns = "lab-url-shortener--knet";
    let chaos = |args: &[&str]| {
        let mut c = klab();
        c.args(["chaos", "url-shortener"]).args(args).args(["--student", "knet"]);
        run(c)
    };
    let faults = || kubectl_out(&["get", "configmap", "-n", ns, "-l", "lab.fault", "-o", "name"]).trim().to_string();
    let fault_objects = |kinds: &str| kubectl_out(&["get", kinds, "-n", ns, "-l", "lab.fault-id", "-o", "name"]).trim().to_string();

    // This node runs no network plugin: the policies are stored, not enforced.
    // lab finds out by trying the cut connection, takes everything back, exit 2.
    let out = chaos(&["partition", "app", "--to", "redis", "--chaos-engine", "network-policy"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stores NetworkPolicies but does not enforce them") && err.contains("still opened a connection to lab-url-shortener--knet-redis-1"), "{err}");
    assert_eq!(fault_objects("networkpolicy"), "", "the policies were taken back");
    assert_eq!(faults(), "", "and the record");
    assert!(shorten().starts_with('2'), "the proxy's cut was taken back too");
    // NetworkPolicy cannot slow a link.
    let out = chaos(&["latency", "app", "--delay", "100ms", "--chaos-engine", "network-policy"]);
    assert_eq!(out.status.code(), Some(2));

    // No Chaos Mesh on this cluster: said plainly.
    let out = chaos(&["kill", "app", "--chaos-engine", "chaos-mesh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not serve chaos-mesh.org/v1alpha1 PodChaos: Chaos Mesh is not installed"), "{err}");

    // Chaos Mesh's kinds served (stand-in definitions this test installs: the
    // API server is real, but no Chaos Mesh controller runs here, so nothing
    // acts on the objects): lab makes and records them, heal deletes them.
    let crd = |kind: &str, plural: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.chaos-mesh.org}}\nspec:\n  group: chaos-mesh.org\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}, singular: {plural}, listKind: {kind}List}}\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n---\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crds.yaml");
    std::fs::write(&file, crd("NetworkChaos", "networkchaos") + &crd("PodChaos", "podchaos")).unwrap();
    kubectl_out(&["apply", "-f", file.to_str().unwrap()]);
    kubectl_out(&["wait", "--for", "condition=established", "crd/networkchaos.chaos-mesh.org", "crd/podchaos.chaos-mesh.org"]);
    struct Uninstall(PathBuf);
    impl Drop for Uninstall {
        fn drop(&mut self) {
            let _ = kubectl().args(["delete", "-f"]).arg(&self.0).output();
        }
    }
    let _uninstall = Uninstall(file.clone());
    let out = chaos(&["partition", "app", "--to", "redis", "--chaos-engine", "chaos-mesh"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let made = kubectl_out(&[
        "get",
        "networkchaos",
        "-n",
        ns,
        "-l",
        "lab.fault-id",
        "-o",
        "jsonpath={range .items[*]}{.spec.action} {.spec.direction} {.spec.selector.expressionSelectors[0].values[0]} {.spec.target.selector.expressionSelectors[0].values[0]}{\"\\n\"}{end}",
    ]);
    assert_eq!(made.trim(), "partition both lab-url-shortener--knet-app-1 lab-url-shortener--knet-redis-1", "{made}");
    let out = chaos(&["kill", "redis", "--chaos-engine", "chaos-mesh"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(kubectl_out(&["get", "podchaos", "-n", ns, "-o", "jsonpath={.items[*].spec.action}"]).trim(), "pod-failure");
    assert_eq!(faults().lines().count(), 2, "both recorded: {}", faults());
    let out = chaos(&["pause", "app", "--chaos-engine", "chaos-mesh"]);
    assert_eq!(out.status.code(), Some(2), "Chaos Mesh cannot freeze a pod");
    let out = chaos(&["heal"]);
    assert!(stdout(&out).contains("healed 2 fault"), "{}", stdout(&out));
    assert_eq!(fault_objects("networkchaos,podchaos"), "");
    assert_eq!(faults(), "");
}

/// `--image REF` on the cluster: an image the learner's CI pushed to a
/// registry, read (how it starts) from the registry, pulled by the node.
#[test]
fn a_learner_image_from_a_registry_runs_as_the_service_on_the_cluster() {
    let reg = registry();
    let local = learner_image("lab-test/shortener:kube");
    let pushed = format!("{reg}/learner/shortener:kube");
    let docker = |args: &[&str]| {
        let o = Command::new("docker").args(args).output().unwrap();
        assert!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    docker(&["tag", &local, &pushed]);
    docker(&["push", &pushed]);
    // Only the registry has it now: lab must read it there, the node pull it.
    docker(&["rmi", &pushed]);
    let _down = KDown("url-shortener", "kimg");
    let mut c = klab();
    c.args(["verify", "url-shortener", "--student", "kimg", "--output", "json", "--keep", "--image", &pushed]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    let ns = "lab-url-shortener--kimg";
    assert_eq!(kubectl_out(&["get", "pod", "app-1", "-n", ns, "-o", "jsonpath={.spec.containers[0].image}"]), pushed);
    let user = kubectl_out(&["get", "pod", "app-1", "-n", ns, "-o", "jsonpath={.spec.containers[0].securityContext.runAsNonRoot}"]);
    assert_eq!(user, "true", "the learner's image runs as a non-root user");
    let mut c = klab();
    c.args(["down", "url-shortener", "--student", "kimg"]);
    assert_eq!(run(c).status.code(), Some(0));
    let _ = Command::new("docker").args(["rmi", &pushed]).output();
}

#[test]
fn an_unreachable_cluster_exits_3_and_says_how_to_choose_one() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: x}\n",
    )
    .unwrap();
    let mut c = lab();
    c.env("KUBECONFIG", &kc).args(["status", "--backend", "kubernetes"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the Kubernetes API server") && err.contains("KUBECONFIG"), "{err}");
    let mut c = lab();
    c.env("KUBECONFIG", &kc).args(["status", "--backend", "kubernetes", "--context", "nope"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// `lab verify raft` on the cluster, removed afterwards: (exit code, report).
fn verify_raft(student: &str, bug: Option<&str>) -> (Option<i32>, serde_json::Value) {
    let _down = KDown("raft", Box::leak(student.to_string().into_boxed_str()));
    let mut c = klab();
    c.args(["verify", "raft", "--student", student, "--output", "json", "--solution"]).arg(root().join("tests/solutions/raft-kv"));
    if let Some(b) = bug {
        c.args(["--env", &format!("RAFT_BUG={b}")]);
    }
    let t0 = Instant::now();
    let out = run(c);
    eprintln!("verify raft ({}) on the cluster: {:?}", bug.unwrap_or("reference"), t0.elapsed());
    (out.status.code(), json(&out))
}

fn failed_checks(report: &serde_json::Value) -> Vec<String> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "failed").map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn raft_on_the_cluster_passes_under_the_nemesis_and_its_bugs_fail_where_they_do_on_docker() {
    // The reference solution: leader elected, kill/partition (through the
    // proxy)/pause survived, the history linearizable, data kept over a full restart.
    let (code, report) = verify_raft("kgood", None);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(report["history"]["ops"].as_array().unwrap().len() > 100, "a real workload ran");
    let struck: Vec<&str> = report["history"]["nemesis"].as_array().unwrap().iter().filter_map(|n| n["fault"].as_str()).collect();
    assert!(struck.contains(&"partition") && struck.contains(&"kill"), "the nemesis struck: {struck:?}");
    // The same bugs as tests/raft.rs, caught by the same checks.
    for (bug, checks) in RAFT_BUGS {
        let (code, report) = verify_raft(&format!("k{bug}"), Some(bug));
        assert_eq!(code, Some(1), "{bug}: {report:#}");
        let failed = failed_checks(&report);
        assert!(checks.iter().any(|c| failed.iter().any(|f| f == c)), "{bug}: expected one of {checks:?} to fail, failed: {failed:?}\n{report:#}");
    }
}

#[test]
fn each_url_shortener_bug_fails_on_the_cluster_at_the_same_check_as_on_docker() {
    each_variant_fails_at_its_check_with(&SHORTENER_VARIANTS, SHORTENER_BUGS, lab_on_cluster, assert_namespace_gone);
}

/// The test registry (.ci/setup starts Debian's docker-registry there).
fn registry() -> String {
    std::env::var("LAB_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

fn registry_tags(reg: &str, repo: &str) -> String {
    let out = Command::new("curl").args(["-fsS", "-m", "5"]).arg(format!("http://{reg}/v2/{repo}/tags/list")).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn with_a_registry_the_nodes_pull_the_images_and_the_program_arrives_as_an_image() {
    let reg = registry();
    let mut c = lab();
    c.args(["images", "push", "redis"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2), "no registry given");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--registry"));
    let mut c = lab();
    c.args(["images", "push", "redis", "base", "--registry", &reg]);
    assert_eq!(run(c).status.code(), Some(0));
    assert!(registry_tags(&reg, "lab-debian/redis").contains("\"7.0\""), "{}", registry_tags(&reg, "lab-debian/redis"));
    // The node's engine has to pull it from the registry.
    let _ = Command::new("docker").args(["rmi", &format!("{reg}/lab-debian/redis:7.0")]).output();

    let _down = KDown("url-shortener", "kreg");
    let ns = "lab-url-shortener--kreg";
    let mut c = klab();
    c.args(["up", "url-shortener", "--student", "kreg", "--registry", &reg, "--solution"]).arg(shortener());
    assert_eq!(run(c).status.code(), Some(0));
    let image_of = |pod: &str| kubectl_out(&["get", "pod", pod, "-n", ns, "-o", "jsonpath={.spec.containers[0].image}"]);
    assert_eq!(image_of("redis-1"), format!("{reg}/lab-debian/redis:7.0"));
    let app = image_of("app-1");
    assert!(app.starts_with(&format!("{reg}/lab-program/")), "{app}");
    let tag = app.rsplit(':').next().unwrap();
    let repo = app.trim_start_matches(&format!("{reg}/")).rsplit_once(':').unwrap().0.to_string();
    assert!(registry_tags(&reg, &repo).contains(tag), "the program's image is in the registry");
    let uploaded = kubectl_out(&["get", "pod", "app-1", "-n", ns, "-o", "jsonpath={.metadata.annotations.lab\\.uploaded}"]);
    assert_eq!(uploaded, "", "nothing uploaded into the pod");
    let mut c = klab();
    c.args(["verify", "url-shortener", "--student", "kreg", "--registry", &reg, "--output", "json"]);
    let out = run(c);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
}

/// A third-party store (tests/stores/textkv) from a folder of its built
/// program and a file it reads next to itself, driven by tests/labs/textkv
/// alone: the folder is shipped whole into each pod, the program starts with
/// the lab's arguments in its data folder, is ready when its port answers,
/// the leader is found through its Prometheus metric, and its raw-text
/// history is judged under the nemesis.
#[test]
fn a_third_party_store_from_a_folder_passes_on_the_cluster_from_its_lab_yaml_alone() {
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = klab().arg("--labs").arg(root().join("tests/labs")).args(["down", "textkv", "--student", "kstore"]).output();
        }
    }
    let _down = Down;
    let dist = textkv_dist();
    let mut c = klab();
    c.arg("--labs").arg(root().join("tests/labs")).args(["verify", "textkv", "--student", "kstore", "--keep", "--output", "json", "--solution"]).arg(dist);
    let t0 = Instant::now();
    let out = run(c);
    eprintln!("verify textkv on the cluster: {:?}", t0.elapsed());
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", failures(&report));
    assert!(report["history"]["ops"].as_array().unwrap().len() > 50, "a real workload ran");
    // Its textkv.conf came along: the node read it from its own folder in the pod.
    let conf = kubectl_out(&["-n", "lab-textkv--kstore", "exec", "kv-1", "--", "cat", "/lab/bin/textkv.conf"]);
    assert!(conf.contains("election-timeout"), "{conf}");
}

/// The labs not covered above, each: (lab, the variable that picks a bug,
/// its reference solution, its bugs on Docker, the bug run on the cluster
/// too). The bug is one whose check breaks something on the cluster (a
/// stopped Postgres, a restarted Redis, a link cut through the proxy, the
/// alert reaching lab's webhook sink), so the chaos means as well as the
/// checks are shown to give Docker's verdict.
const OTHER_LABS: &[(&str, &str, &str, &[(&str, &str, &str)], &str)] = &[
    ("grpc-auth", "AUTH_BUG", "tests/solutions/grpc-auth", GRPC_AUTH_BUGS, "db-internal"),
    ("chat", "CHAT_BUG", "tests/solutions/chat", CHAT_BUGS, "dead-publisher"),
    ("orders", "ORDERS_BUG", "tests/solutions/orders", ORDERS_BUGS, "no-confirm"),
    ("monitoring", "MONITORING_BUG", "tests/solutions/monitoring", MONITORING_BUGS, "errors-as-200"),
    // Three instances and one limit; Redis black-holed through the proxy.
    ("rate-limiter", "RATELIMIT_BUG", "tests/solutions/rate-limiter", RATE_LIMITER_BUGS, "single-conn"),
    // lab's own upstream runs in a pod of its own.
    ("circuit-breaker", "BREAKER_BUG", "tests/solutions/circuit-breaker", CIRCUIT_BREAKER_BUGS, "half-open-all"),
    ("timeouts", "TIMEOUTS_BUG", "tests/solutions/timeouts", TIMEOUTS_BUGS, "background-ctx"),
    ("gin-api", "GINAPI_BUG", "tests/solutions/gin-api", GIN_API_BUGS, "no-deadline"),
];

#[test]
fn every_other_lab_passes_on_the_cluster_and_a_bug_fails_at_its_docker_check() {
    for &(name, var, solution, bugs, bug) in OTHER_LABS {
        // The reference solution: every check passes, as on Docker.
        let student = "kref";
        let mut c = klab();
        c.args(["verify", name, "--student", student, "--output", "json", "--solution"]).arg(root().join(solution));
        let t0 = Instant::now();
        let out = run(c);
        eprintln!("verify {name} (reference) on the cluster: {:?}", t0.elapsed());
        let _ = klab().args(["down", name, "--student", student]).output();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {report:#}{}", failures(&report));
        assert_eq!(report["summary"]["failed"], 0, "{name}: {report:#}{}", failures(&report));
        assert!(report["summary"]["passed"].as_u64().unwrap() > 5, "{name}: {report:#}");
        assert_namespace_gone(&format!("lab-{name}--{student}"));
        // The bug: the check Docker names fails with Docker's words.
        let picked: &'static [(&str, &str, &str)] = Box::leak(bugs.iter().filter(|(b, ..)| *b == bug).cloned().collect::<Vec<_>>().into_boxed_slice());
        assert!(!picked.is_empty(), "{bug} is one of {name}'s Docker bugs");
        let v: &'static Variants =
            Box::leak(Box::new(Variants { lab: name, var, solution, prefix: "kbug", at_once: 1, stagger: std::time::Duration::ZERO, passing: &[], within: None, also: nothing_more }));
        each_variant_fails_at_its_check_with(v, picked, lab_on_cluster, assert_namespace_gone);
    }
}

/// `lab class` on the cluster: a namespace per student, each verdict kept as
/// a ConfigMap in it and read back by `class status`, `class down` removes
/// the namespaces.
#[test]
fn a_class_on_the_cluster_keeps_each_verdict_in_the_students_namespace() {
    let _down = [KDown("url-shortener", "k1"), KDown("url-shortener", "k2")];
    let dir = tempfile::tempdir().unwrap();
    common::shortener_with_bug(&dir.path().join("broken"), "redirect-301");
    let roster = dir.path().join("class.yaml");
    std::fs::write(&roster, format!("- id: k2\n  name: Broken\n  solution: broken\n- id: k1\n  name: Good\n  solution: {}\n", shortener().display())).unwrap();
    // The class's own limits: url-shortener runs 3 pods, and the quota allows 3.
    let limits = dir.path().join("limits.yaml");
    std::fs::write(&limits, "container:\n  limit: {memory: 256Mi}\nquota:\n  pods: 3\n").unwrap();
    let mut c = klab();
    c.args(["class", "up", "url-shortener", "--limits"]).arg(&limits).arg("--roster").arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    let mut c = klab();
    c.args(["class", "verify", "url-shortener", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not: k2"), "{}", stdout(&out));
    // `class verify` was given no --limits: each namespace kept the class's.
    for s in ["k1", "k2"] {
        let ns = format!("lab-url-shortener--{s}");
        assert_eq!(kubectl_out(&["get", "resourcequota", "lab-quota", "-n", &ns, "-o", "jsonpath={.spec.hard.pods}/{.status.hard.pods}/{.status.used.pods}"]), "3/3/3");
        assert_eq!(kubectl_out(&["get", "limitrange", "lab-defaults", "-n", &ns, "-o", "jsonpath={.spec.limits[0].default.memory}"]), "256Mi");
    }
    // The quota holds against anyone, the cluster's admin too: a fourth pod is refused.
    let extra = kubectl().args(["run", "extra", "-n", "lab-url-shortener--k1", "--image=envtest/pause:3.4", "--image-pull-policy=Never"]).output().unwrap();
    let said = String::from_utf8_lossy(&extra.stderr);
    assert!(!extra.status.success() && said.contains("exceeded quota: lab-quota"), "a pod beyond the quota: {said}");
    // The verdict is an object of the student's namespace.
    let data = kubectl_out(&["get", "configmap", "lab-verdict", "-n", "lab-url-shortener--k2", "-o", "jsonpath={.data.verdict}"]);
    let v: serde_json::Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
    assert_eq!(v["first_failed"], "redirect", "{v:#}");
    let mut c = klab();
    c.args(["class", "status", "url-shortener", "--json", "--roster"]).arg(&roster);
    let status = json(&run(c));
    let rows = status["students"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| (r["student"].as_str().unwrap(), r["verdict"]["failed"].as_u64().unwrap())).collect::<Vec<_>>(), [("k1", 0), ("k2", 1)], "{status:#}");
    // Each student's credentials reach their own namespace and nothing else:
    // the API server's RBAC decides, with a token that expires.
    let creds = dir.path().join("creds");
    let mut c = klab();
    c.args(["class", "credentials", "url-shortener", "--expires", "10m", "--out"]).arg(&creds).arg("--roster").arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    let as_k1 = |args: &[&str]| {
        let out = kubectl().env("KUBECONFIG", creds.join("k1.kubeconfig")).args(args).output().expect("kubectl runs");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, text) = as_k1(&["get", "pods", "-o", "name"]);
    assert!(ok && text.contains("pod/"), "k1 lists the pods of their own namespace: {text}");
    let pod = text.lines().find(|l| l.starts_with("pod/")).unwrap().to_string();
    let (ok, text) = as_k1(&["logs", &pod, "--tail", "3"]);
    assert!(ok, "k1 reads their pods' logs: {text}");
    for (args, what) in [
        (vec!["get", "pods", "-n", "lab-url-shortener--k2"], "another student's pods"),
        (vec!["get", "services", "-n", "lab-url-shortener--k2"], "another student's services"),
        (vec!["get", "configmaps"], "lab's fault records and verdicts in their own namespace"),
        (vec!["get", "secrets"], "secrets"),
        (vec!["delete", &pod, "--wait=false"], "deleting a pod lab made"),
        (vec!["exec", &pod, "--", "true"], "exec"),
        (vec!["get", "namespaces"], "the cluster's namespaces"),
    ] {
        let (ok, text) = as_k1(&args);
        assert!(!ok && text.contains("Forbidden"), "k1 must be refused {what} ({args:?}): {text}");
    }
    let (_, own) = as_k1(&["auth", "can-i", "create", "pods", "--subresource=portforward"]);
    let (_, other) = as_k1(&["auth", "can-i", "create", "pods", "--subresource=portforward", "-n", "lab-url-shortener--k2"]);
    assert_eq!((own.trim(), other.trim()), ("yes", "no"), "port-forward: into their own namespace only");
    // The token expires when asked: 10 minutes from now.
    let kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(creds.join("k1.kubeconfig")).unwrap()).unwrap();
    let token = kc["users"][0]["user"]["token"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let left = claims["exp"].as_i64().unwrap() - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((540..=600).contains(&left), "the token expires in {left} s: {claims}");
    // Each student's board token, in their own .env, differs from the other's.
    let board_token = |s: &str| {
        let env = std::fs::read_to_string(creds.join(format!("{s}.env"))).unwrap();
        assert!(env.contains(&format!("LAB_INSTANCE=lab-url-shortener--{s}\n")) && !env.contains("LAB_PROXY_TOKEN"), "{env}");
        env.lines().find_map(|l| l.strip_prefix("LAB_BOARD_TOKEN=")).unwrap_or_else(|| panic!("no LAB_BOARD_TOKEN in {env}")).to_string()
    };
    let (t1, t2) = (board_token("k1"), board_token("k2"));
    assert!(t1.len() == 32 && t2.len() == 32 && t1 != t2, "{t1} {t2}");
    let mut c = klab();
    c.args(["class", "down", "url-shortener", "--yes", "--roster"]).arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    for s in ["k1", "k2"] {
        assert!(!namespace_exists(&format!("lab-url-shortener--{s}")), "namespace of {s} left");
    }
}
