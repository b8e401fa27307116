//! Runs last (test binaries run in name order): nothing lab made may be left.

mod common;

#[test]
fn no_lab_container_network_or_volume_is_left_behind() {
    for kind in ["container", "network", "volume"] {
        let left = common::docker_names(kind, "label=lab.instance");
        assert!(left.is_empty(), "{kind}s left behind by the tests: {left:?}");
    }
}
