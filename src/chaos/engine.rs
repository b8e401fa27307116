//! Cluster fault engines (`lab chaos --chaos-engine`): faults made by a
//! Kubernetes cluster's own means instead of lab's.
//!
//! - `lab` (the default): lab's own mechanisms: iptables and tc in the
//!   containers on Docker, lab's fault proxy on every backend.
//! - `network-policy`: a partition as NetworkPolicies (one egress policy per
//!   cut pod). NetworkPolicy is only enforced by some network plugins, and a
//!   cluster without one stores the policies and ignores them: after applying,
//!   lab tries a cut connection from inside the pod, and if it still opens,
//!   takes the policies back and says so (exit 2).
//! - `chaos-mesh`: Chaos Mesh's NetworkChaos and PodChaos objects, when the
//!   cluster serves them (discovered); the objects are the fault, and deleting
//!   them heals it.
//!
//! Links through lab's fault proxy (`proxy: true`, the service's peers) are
//! cut in the proxy as well: a cluster engine cuts pod-to-pod traffic, and
//! traffic through the proxy would go around it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::link::Rule;
use super::partition;
use super::proxy::Toxics;
use super::{Chaos, ChaosError, Fault};
use crate::backend::{BackendError, FaultRecord};
use crate::plan::ContainerSpec;

/// Which means make a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Lab,
    NetworkPolicy,
    ChaosMesh,
}

use crate::backend::kubernetes::objects::CONTAINER_LABEL;
const CHAOS_MESH: &str = "chaos-mesh.org/v1alpha1";

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "lab" => Some(Engine::Lab),
            "network-policy" => Some(Engine::NetworkPolicy),
            "chaos-mesh" => Some(Engine::ChaosMesh),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Lab => "lab",
            Engine::NetworkPolicy => "network-policy",
            Engine::ChaosMesh => "chaos-mesh",
        }
    }
}

fn unsupported(what: String, why: &str, hint: &str) -> ChaosError {
    BackendError::Unsupported { what, why: why.into(), hint: hint.into() }.into()
}

/// An object's name: lab-<fault id>-<n>, within Kubernetes' 63 characters.
fn object_name(id: &str, n: usize) -> String {
    let mut s = format!("lab-{id}-{n}");
    s.truncate(63);
    s
}

/// Egress each pod must lose: a two-way cut takes the link away at both
/// ends, a one-way cut only the owner's new connections (NetworkPolicy is
/// stateful: answers to connections the peer opens still flow).
pub(super) fn egress_denied<'a>(cuts: &partition::Cuts<'a>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut deny: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut add = |from: &'a str, to: &'a str| {
        let v = deny.entry(from).or_default();
        if !v.contains(&to) {
            v.push(to);
        }
    };
    for (owner, both, one) in cuts {
        for p in both {
            add(&owner.name, &p.name);
            add(&p.name, &owner.name);
        }
        for p in one {
            add(&owner.name, &p.name);
        }
    }
    deny
}

/// One NetworkPolicy per cut pod: egress only to the instance's pods it keeps.
/// (Policies add up: two on one pod would allow what either allows, so a
/// pod carries one policy per fault, holding every cut of that fault.)
pub(super) fn network_policies(id: &str, instance: &str, deny: &BTreeMap<&str, Vec<&str>>) -> Vec<Value> {
    deny.iter()
        .enumerate()
        .map(|(n, (pod, peers))| {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": object_name(id, n + 1), "namespace": instance, "labels": {"lab.instance": instance, "lab.fault-id": id}},
                "spec": {
                    "podSelector": {"matchLabels": {CONTAINER_LABEL: pod}},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": {"matchExpressions": [{"key": CONTAINER_LABEL, "operator": "NotIn", "values": peers}]}}]}],
                }
            })
        })
        .collect()
}

fn chaos_mesh_object(id: &str, n: usize, instance: &str, kind: &str, spec: Value) -> Value {
    json!({
        "apiVersion": CHAOS_MESH,
        "kind": kind,
        "metadata": {"name": object_name(id, n), "namespace": instance, "labels": {"lab.instance": instance, "lab.fault-id": id}},
        "spec": spec,
    })
}

fn selector(instance: &str, names: &[&str]) -> Value {
    json!({"namespaces": [instance], "expressionSelectors": [{"key": CONTAINER_LABEL, "operator": "In", "values": names}]})
}

/// Chaos Mesh objects for a fault; `None` for a fault it has no kind for.
pub(super) fn chaos_mesh_objects(id: &str, instance: &str, fault: &Fault, targets: &[&ContainerSpec], cuts: &partition::Cuts<'_>) -> Option<Vec<Value>> {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let sel = selector(instance, &names);
    let ms = |d: std::time::Duration| format!("{}ms", d.as_millis());
    let objs = match fault {
        // The pod's containers are swapped for a pause image until the object goes: down until healed.
        Fault::Kill | Fault::Stop | Fault::Outage => vec![chaos_mesh_object(id, 1, instance, "PodChaos", json!({"action": "pod-failure", "mode": "all", "selector": sel}))],
        Fault::Partition(_) => cuts
            .iter()
            .enumerate()
            .flat_map(|(i, (owner, both, one))| {
                let mut v = Vec::new();
                for (peers, direction, k) in [(both, "both", 0), (one, "to", 1)] {
                    if peers.is_empty() {
                        continue;
                    }
                    let peer_names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
                    v.push(chaos_mesh_object(
                        id,
                        2 * i + k + 1,
                        instance,
                        "NetworkChaos",
                        json!({"action": "partition", "mode": "all", "selector": selector(instance, &[owner.name.as_str()]), "direction": direction, "target": {"mode": "all", "selector": selector(instance, &peer_names)}}),
                    ));
                }
                v
            })
            .collect(),
        Fault::Netem { delay, jitter, loss } => {
            let mut v = Vec::new();
            if delay.is_some() || jitter.is_some() {
                let latency = delay.or(*jitter).map(ms).unwrap_or_default();
                v.push(chaos_mesh_object(
                    id,
                    1,
                    instance,
                    "NetworkChaos",
                    json!({"action": "delay", "mode": "all", "selector": sel, "direction": "to", "delay": {"latency": latency, "jitter": jitter.map(ms).unwrap_or_else(|| "0ms".into())}}),
                ));
            }
            if let Some(l) = loss {
                v.push(chaos_mesh_object(id, 2, instance, "NetworkChaos", json!({"action": "loss", "mode": "all", "selector": sel, "direction": "to", "loss": {"loss": format!("{l}")}})));
            }
            v
        }
        Fault::Bandwidth { rate } => vec![chaos_mesh_object(
            id,
            1,
            instance,
            "NetworkChaos",
            json!({"action": "bandwidth", "mode": "all", "selector": sel, "direction": "to", "bandwidth": {"rate": rate, "limit": 20_971_520, "buffer": 10_000}}),
        )],
        Fault::Pause | Fault::Restart | Fault::Blackhole | Fault::Reset => return None,
    };
    Some(objs)
}

/// A fault as the command line names it.
fn what(fault: &Fault) -> &'static str {
    match fault {
        Fault::Netem { .. } => "latency, jitter or loss",
        f => f.kind(),
    }
}

/// Work out a fault's objects on a cluster engine; the result is its record's spec.
pub(super) async fn prepare(c: &Chaos<'_>, engine: Engine, id: &str, fault: &Fault, targets: &[&ContainerSpec]) -> Result<Value, ChaosError> {
    let shape = match fault {
        Fault::Partition(s) => Some(s.clone()),
        _ => None,
    };
    let cuts = match &shape {
        Some(s) => partition::cuts(c, s, targets).await?,
        None => Vec::new(),
    };
    // Links through the proxy go around a pod-to-pod cut: cut them in the proxy too.
    let (proxy_rules, _) = partition::proxy_cuts(c.plan, &cuts);
    match engine {
        Engine::Lab => unreachable!("lab's own engine has no objects"),
        Engine::NetworkPolicy => {
            // Asked first: on Docker this says the engine is the cluster's.
            if !c.backend.serves_kind("networking.k8s.io/v1", "NetworkPolicy").await? {
                return Err(unsupported(
                    "--chaos-engine network-policy".into(),
                    "this cluster does not serve networking.k8s.io/v1 NetworkPolicy",
                    "leave out --chaos-engine: lab's own engine works on every cluster",
                ));
            }
            if shape.is_none() {
                return Err(unsupported(
                    format!("{} through NetworkPolicy", what(fault)),
                    "a NetworkPolicy can only allow or cut connections",
                    "leave out --chaos-engine (lab's fault proxy slows and breaks links), or use --chaos-engine chaos-mesh where Chaos Mesh is installed",
                ));
            }
            let others = c.backend.faults(Some(&c.plan.instance)).await?;
            if let Some(f) = others.iter().find(|f| f.spec["engine"] == Engine::NetworkPolicy.name()) {
                return Err(unsupported(
                    "a second partition through NetworkPolicy".into(),
                    &format!("{} is in force, and NetworkPolicies only add up what they allow: a second one on the same pods would undo the first", f.id),
                    "heal the first (`lab chaos <lab> heal`), or make both cuts in one fault with --split",
                ));
            }
            let deny = egress_denied(&cuts);
            // A connection that must fail once the policies are in force: the first cut peer with a port.
            let mut probe = Value::Null;
            for (from, peers) in &deny {
                if let Some(p) = peers.iter().filter_map(|p| c.plan.containers.iter().find(|x| x.name == *p)).next() {
                    match c.backend.ip(&p.name).await {
                        Ok(ip) => {
                            probe = json!({"from": from, "to": p.name, "ip": ip, "port": p.port.container});
                            break;
                        }
                        Err(_) => continue,
                    }
                }
            }
            Ok(json!({"engine": engine.name(), "shape": format!("{shape:?}"), "objects": network_policies(id, &c.plan.instance, &deny), "proxy_rules": proxy_rules, "probe": probe}))
        }
        Engine::ChaosMesh => {
            let Some(objects) = chaos_mesh_objects(id, &c.plan.instance, fault, targets, &cuts) else {
                return Err(unsupported(
                    format!("{} through Chaos Mesh", what(fault)),
                    match fault {
                        Fault::Restart => "Chaos Mesh restarts a pod by deleting it (pod-kill), and nothing recreates lab's pods",
                        Fault::Pause => "Chaos Mesh has no fault that freezes a pod's processes",
                        _ => "it acts on a link through lab's fault proxy",
                    },
                    "leave out --chaos-engine: lab's own engine does it on every cluster",
                ));
            };
            for kind in objects.iter().filter_map(|o| o["kind"].as_str()).collect::<std::collections::BTreeSet<_>>() {
                if !c.backend.serves_kind(CHAOS_MESH, kind).await? {
                    return Err(unsupported(
                        format!("--chaos-engine chaos-mesh ({kind})"),
                        &format!("this cluster does not serve {CHAOS_MESH} {kind}: Chaos Mesh is not installed"),
                        "install Chaos Mesh (its CRDs and controller), or leave out --chaos-engine: lab's own engine works on every cluster",
                    ));
                }
            }
            let note = format!("made by Chaos Mesh's controller from these objects; `kubectl get networkchaos,podchaos -n {}` shows whether it took effect", c.plan.instance);
            Ok(json!({"engine": engine.name(), "objects": objects, "proxy_rules": proxy_rules, "note": note}))
        }
    }
}

/// Apply a cluster engine's objects (and proxy rules); for NetworkPolicy,
/// check that the cluster enforces them.
pub(super) async fn apply(c: &Chaos<'_>, spec: &Value) -> Result<(), ChaosError> {
    let objects: Vec<Value> = spec["objects"].as_array().cloned().unwrap_or_default();
    c.backend.apply_objects(&c.plan.instance, &objects).await?;
    let rules: Vec<Rule> = serde_json::from_value(spec["proxy_rules"].clone()).unwrap_or_default();
    if !rules.is_empty() {
        super::link::set(c, &rules, &Toxics { blackhole: true, ..Default::default() }).await?;
    }
    let p = &spec["probe"];
    if let (Some(from), Some(to), Some(ip), Some(port)) = (p["from"].as_str(), p["to"].as_str(), p["ip"].as_str(), p["port"].as_u64()) {
        // Plugins apply policies within a second or two: try for 5 s.
        let t = std::time::Instant::now();
        loop {
            if !c.backend.connects(from, ip, port as u16).await? {
                return Ok(());
            }
            if t.elapsed() > std::time::Duration::from_secs(5) {
                return Err(unsupported(
                    "a partition through NetworkPolicy".into(),
                    &format!("this cluster stores NetworkPolicies but does not enforce them: with the cut in place, {from} still opened a connection to {to} ({ip}:{port}). Enforcing them takes a network plugin that does (Calico, Cilium, kube-router...)"),
                    "leave out --chaos-engine: lab's fault proxy cuts the links that go through it, on every cluster",
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Remove a cluster engine's objects and proxy rules.
pub(super) async fn undo(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    let rules: Vec<Rule> = serde_json::from_value(rec.spec["proxy_rules"].clone()).unwrap_or_default();
    super::link::clear(c, &rules).await;
    let objects: Vec<Value> = rec.spec["objects"].as_array().cloned().unwrap_or_default();
    match c.backend.delete_objects(&rec.instance, &objects).await {
        // Not a cluster: nothing of it can have been made.
        Ok(()) | Err(BackendError::Unsupported { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse() {
        assert_eq!(Engine::parse("chaos-mesh"), Some(Engine::ChaosMesh));
        assert_eq!(Engine::parse("network-policy").map(Engine::name), Some("network-policy"));
        assert_eq!(Engine::parse("netpol"), None);
        assert!(object_name(&"x".repeat(80), 1).len() <= 63);
    }
}
