//! Runs last (test binaries run in name order): nothing lab made may be left.

mod common;

#[test]
fn no_lab_container_network_or_volume_is_left_behind() {
    for kind in ["container", "network", "volume"] {
        let left = common::docker_names(kind, "label=lab.instance");
        assert!(left.is_empty(), "{kind}s left behind by the tests: {left:?}");
    }
}

#[test]
fn no_lab_namespace_is_left_on_the_test_cluster() {
    // tests/kubernetes.rs needs the cluster; it fails when it is not there.
    let kc = std::env::var_os("LAB_TEST_KUBECONFIG").map(std::path::PathBuf::from).unwrap_or_else(|| "/var/cache/lab-envtest/kubeconfig".into());
    let kubectl = kc.parent().unwrap().join("bin/kubectl");
    let out = std::process::Command::new(if kubectl.is_file() { kubectl } else { "kubectl".into() })
        .env("KUBECONFIG", &kc)
        .args(["get", "namespaces", "-l", "lab.instance", "-o", "name"])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "kubectl: {}", String::from_utf8_lossy(&out.stderr));
    let left = String::from_utf8_lossy(&out.stdout);
    assert!(left.trim().is_empty(), "namespaces left behind by the tests: {left}");
}
