//! The Kubernetes objects of a plan. Pure: the same plan gives the same
//! objects, so `lab export k8s` prints what `up` applies.
//!
//! An instance is a namespace (`k8s/namespace.yaml.tera`: the namespace, its
//! default limits, a same-instance-only network policy). Each container of
//! the plan is a Pod named after its node (`app-1`, `redis-1`, `proxy-1`),
//! with lab's supervisor (`k8s/supervisor.sh`) as its first process, so that
//! kill, stop, start and pause mean what they mean on Docker: the node stays
//! down until started, and its files (its data) stay. Lab is the controller
//! of its pods: a ReplicaSet would fight a node killed on purpose.
//!
//! Each network alias of the plan is a Service (`redis`, `app` over every
//! replica, `app-1` for node 1...), so the env templates' names are the same
//! on both backends. A cluster may have no DNS, so every pod also gets the
//! Services' ClusterIPs as `hostAliases` (known once the Services exist).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::limits::{self, Limits};
use crate::plan::{labels, ContainerSpec, Plan, Role};

/// The supervisor script, PID 1 of every container lab runs on a cluster.
pub const SUPERVISOR: &str = include_str!("../../../k8s/supervisor.sh");
const NAMESPACE_TEMPLATE: &str = include_str!("../../../k8s/namespace.yaml.tera");
const STUDENT_TEMPLATE: &str = include_str!("../../../k8s/student.yaml.tera");

/// Where the supervisor keeps its state files (an emptyDir).
pub const RUN_DIR: &str = "/lab/run";
/// The field manager of lab's server-side applies.
pub const FIELD_MANAGER: &str = "lab";
/// Annotation with the digest of a pod's spec: another digest means recreate
/// (most of a pod's spec cannot change in place).
pub const SPEC_ANNOTATION: &str = "lab.spec";
/// Label of each pod naming its container in the plan (`<instance>-<service>-<n>`).
pub const CONTAINER_LABEL: &str = "lab.container";
/// Label of a fault record (a ConfigMap).
pub const FAULT_LABEL: &str = "lab.fault";

/// The pod of a plan's container: `<service>-<node>`.
pub fn pod_name(c: &ContainerSpec) -> String {
    format!("{}-{}", c.service, c.node)
}

/// Whether a value can be a label value (63 characters, alphanumerics and `-_.` inside).
pub fn label_value_ok(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty() || (v.starts_with(|c: char| c.is_ascii_alphanumeric()) && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// lab's labels as Kubernetes labels (those whose values fit) and annotations (all of them).
fn split_labels(all: &BTreeMap<String, String>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = all.iter().filter(|(_, v)| label_value_ok(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    (labels, all.clone())
}

/// The `app.kubernetes.io/*` labels of one object.
fn recommended(plan: &Plan, name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.to_string()),
        ("app.kubernetes.io/instance".to_string(), plan.instance.clone()),
        ("app.kubernetes.io/part-of".to_string(), format!("lab-{}", plan.lab)),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "lab".to_string()),
    ])
}

/// The namespace, its limits, its quota and its network policy.
pub fn namespace_objects(plan: &Plan, limits: &Limits) -> Vec<Value> {
    let (mut l, mut a) = split_labels(&plan.labels);
    a.insert(limits::ANNOTATION.to_string(), limits.to_annotation());
    l.extend(recommended(plan, &plan.instance, "instance"));
    let mut ctx = tera::Context::new();
    ctx.insert("instance", &plan.instance);
    ctx.insert("labels", &l);
    ctx.insert("annotations", &a);
    ctx.insert("limit", &limits.limit);
    ctx.insert("request", &limits.request);
    ctx.insert("quota", &limits.quota);
    ctx.insert("backstage", &plan.backstage.is_some());
    let text = tera::Tera::one_off(NAMESPACE_TEMPLATE, &ctx, false).expect("k8s/namespace.yaml.tera renders");
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).expect("k8s/namespace.yaml.tera is YAML")).collect()
}

/// A student's ServiceAccount, Role and RoleBinding in their instance's
/// namespace (`k8s/student.yaml.tera`).
pub fn student_objects(instance: &str, lab: &str, student: &str) -> Vec<Value> {
    let l = BTreeMap::from([
        (labels::INSTANCE.to_string(), instance.to_string()),
        (labels::LAB.to_string(), lab.to_string()),
        (labels::STUDENT.to_string(), student.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "lab".to_string()),
    ]);
    let mut ctx = tera::Context::new();
    ctx.insert("instance", instance);
    ctx.insert("student", student);
    ctx.insert("labels", &l);
    let text = tera::Tera::one_off(STUDENT_TEMPLATE, &ctx, false).expect("k8s/student.yaml.tera renders");
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).expect("k8s/student.yaml.tera is YAML")).collect()
}

/// One Service per network alias: its name, the pods it selects, its ports.
pub fn service_objects(plan: &Plan) -> Vec<Value> {
    let mut by_alias: BTreeMap<String, Vec<&ContainerSpec>> = BTreeMap::new();
    for c in &plan.containers {
        for a in &c.aliases {
            by_alias.entry(a.clone()).or_default().push(c);
        }
    }
    by_alias
        .into_iter()
        .map(|(alias, cs)| {
            let mut selector = BTreeMap::from([(labels::INSTANCE.to_string(), plan.instance.clone()), (labels::SERVICE.to_string(), cs[0].service.clone())]);
            if cs.len() == 1 {
                selector.insert(labels::NODE.to_string(), cs[0].node.to_string());
            }
            let ports: BTreeSet<u16> = cs.iter().flat_map(|c| std::iter::once(c.port.container).chain(c.extra_ports.iter().copied())).collect();
            let mut l = recommended(plan, &alias, if cs[0].role == Role::Service { "service" } else { "dependency" });
            l.insert(labels::INSTANCE.into(), plan.instance.clone());
            l.insert(labels::SERVICE.into(), cs[0].service.clone());
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": alias, "namespace": plan.instance, "labels": l},
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector,
                    // 1.20's server-side apply needs the protocol spelled out.
                    "ports": ports.iter().map(|p| json!({"name": format!("tcp-{p}"), "port": p, "targetPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
                },
            })
        })
        .collect()
}

/// The program a container runs: its entrypoint and command, or those of its
/// image when the template leaves them out (Kubernetes' `command` replaces
/// the image's entrypoint, and the supervisor must be that entrypoint).
pub fn argv(c: &ContainerSpec) -> Vec<String> {
    if upload(c).is_some() {
        // lab's own program or the learner's: the supervisor is all the init it needs.
        return c.command.clone().unwrap_or_default();
    }
    let (entry, cmd) = image_defaults(&c.image);
    let entry = c.entrypoint.clone().unwrap_or(entry);
    // As on Docker, a template's entrypoint drops the image's command.
    let cmd = match (&c.command, &c.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => vec![],
        (None, None) => cmd,
    };
    entry.into_iter().chain(cmd).collect()
}

/// The entrypoint and command an image of lab's sets starts with. The debian
/// set's recipes say them, and its images behave like the upstream ones, so
/// one table serves both.
fn image_defaults(image: &str) -> (Vec<String>, Vec<String>) {
    let name = crate::images::debian::RECIPES.iter().find(|r| r.tag == image).map(|r| r.name).or_else(|| crate::images::UPSTREAM.iter().find(|(_, t)| *t == image).map(|(n, _)| *n));
    let Some(recipe) = name.and_then(crate::images::debian::recipe) else {
        return (vec![], vec![]);
    };
    let field = |key: &str| -> Vec<String> { recipe.changes.iter().find_map(|c| c.strip_prefix(key)).and_then(|j| serde_json::from_str(j.trim()).ok()).unwrap_or_default() };
    (field("ENTRYPOINT "), field("CMD "))
}

/// Where a container's program comes from when it is a file lab uploads
/// (the learner's binary, lab's own executable): the path in the pod and the
/// file on this machine.
pub fn upload(c: &ContainerSpec) -> Option<(String, std::path::PathBuf)> {
    let first = c.command.as_ref()?.first()?;
    c.mounts.iter().find_map(|m| {
        let rest = first.strip_prefix(&m.container)?.strip_prefix('/')?;
        Some((first.clone(), m.host.join(rest)))
    })
}

/// A node running a folder of a built program (its executable and files):
/// the folder's path in the pod and on this machine, shipped whole.
pub fn program_folder(c: &ContainerSpec) -> Option<(String, std::path::PathBuf)> {
    c.labels.get(crate::plan::PROGRAM_LABEL)?;
    c.mounts.iter().find(|m| m.container == crate::plan::BIN_DIR).map(|m| (m.container.clone(), m.host.clone()))
}

/// The pod of one container. `cluster_ips` maps each alias to its Service's
/// ClusterIP (empty for an export: clusters with DNS need none).
pub fn pod_object(plan: &Plan, c: &ContainerSpec, cluster_ips: &BTreeMap<String, String>) -> Value {
    pod_object_in(plan, c, cluster_ips, None)
}

/// The same, the container's image being `image` when given: a dependency's
/// image in a registry, or an image that already holds the node's program
/// (which is then not uploaded, so its folder is not an emptyDir).
pub fn pod_object_in(plan: &Plan, c: &ContainerSpec, cluster_ips: &BTreeMap<String, String>, image: Option<&str>) -> Value {
    let name = pod_name(c);
    let program_in_image = image.is_some() && upload(c).is_some();
    let mut all = c.labels.clone();
    all.insert(CONTAINER_LABEL.into(), c.name.clone());
    let (mut l, mut a) = split_labels(&all);
    l.extend(recommended(plan, &name, if c.role == Role::Service { "service" } else { "dependency" }));
    let mut env: Vec<Value> = c.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    env.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
    let mut volumes = vec![json!({"name": "lab-run", "emptyDir": {}})];
    let mut mounts = vec![json!({"name": "lab-run", "mountPath": RUN_DIR})];
    for (i, m) in c.mounts.iter().enumerate() {
        if program_in_image && upload(c).is_some_and(|(dest, _)| dest.strip_prefix(&m.container).is_some_and(|r| r.starts_with('/'))) {
            continue;
        }
        // Host folders do not reach a cluster: lab uploads the program into an emptyDir.
        volumes.push(json!({"name": format!("lab-files-{i}"), "emptyDir": {}}));
        mounts.push(json!({"name": format!("lab-files-{i}"), "mountPath": m.container}));
    }
    let ports: BTreeSet<u16> = std::iter::once(c.port.container).chain(c.extra_ports.iter().copied()).collect();
    // The learner's program and lab's helpers need no privilege at all; the
    // dependencies' entrypoints start as root and drop to their own user, so
    // lab's stop and kill (run through exec, as root) need KILL to signal it.
    // (A learner's service from its own image runs the same way: non-root.)
    let own_program = upload(c).is_some() || c.role == Role::Service;
    let security = if own_program {
        json!({"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    } else {
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    };
    let mut command = vec!["/bin/sh".to_string(), "-c".into(), SUPERVISOR.to_string(), "lab-supervisor".into()];
    command.extend(argv(c));
    let mut host_aliases: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (alias, ip) in cluster_ips {
        host_aliases.entry(ip).or_default().push(alias);
    }
    let mut spec = json!({
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 3,
        "enableServiceLinks": false,
        "automountServiceAccountToken": false,
        "hostname": name,
        "containers": [{
            "name": "main",
            "image": image.unwrap_or(&c.image),
            // Images of the debian set exist only where they were baked: never pull what is there.
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "env": env,
            "ports": ports.iter().map(|p| json!({"containerPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
            "volumeMounts": mounts,
            "securityContext": security,
            "resources": {
                "requests": {"cpu": "10m", "memory": (32u64 << 20).min(c.limits.memory).to_string()},
                // lab.yaml's `resources` or the role's defaults, as on Docker (a
                // pod's process count is the node's to limit, not the pod's).
                "limits": {"memory": c.limits.memory.to_string(), "cpu": format!("{}m", (c.limits.cpus * 1000.0).round() as u64)},
            },
            // Ready while the node's program accepts connections on its port.
            "readinessProbe": {"tcpSocket": {"port": c.port.container}, "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1},
        }],
        "volumes": volumes,
    });
    let mut ha: Vec<Value> = host_aliases.into_iter().map(|(ip, names)| json!({"ip": ip, "hostnames": names})).collect();
    // `HOST:IP` entries of the template (not `host-gateway`: a cluster has no Docker host).
    for e in &c.extra_hosts {
        if let Some((h, ip)) = e.rsplit_once(':') {
            if ip != "host-gateway" {
                ha.push(json!({"ip": ip, "hostnames": [h]}));
            }
        }
    }
    if !ha.is_empty() {
        spec["hostAliases"] = Value::Array(ha);
    }
    if let Some(w) = &c.workdir {
        spec["containers"][0]["workingDir"] = json!(w);
    }
    let digest = spec_digest(&spec, &l);
    a.insert(SPEC_ANNOTATION.into(), digest);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": plan.instance, "labels": l, "annotations": a},
        "spec": spec,
    })
}

/// A short digest of a pod's spec and labels.
fn spec_digest(spec: &Value, labels: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(spec.to_string().as_bytes());
    h.update(serde_json::to_string(labels).expect("map serializes").as_bytes());
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Every object of a plan, in the order they are applied: namespace and
/// policy, Services, pods.
pub fn all_objects(plan: &Plan, limits: &Limits, cluster_ips: &BTreeMap<String, String>) -> Vec<Value> {
    let mut v = namespace_objects(plan, limits);
    v.extend(service_objects(plan));
    v.extend(plan.containers.iter().map(|c| pod_object(plan, c, cluster_ips)));
    v
}

/// The objects as multi-document YAML (`lab export k8s`).
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o).expect("JSON values serialize as YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ImageSet;
    use crate::lab::Catalogue;
    use crate::plan::{PlanOptions, Solution};
    use k8s_openapi::api::core::v1::{Namespace, Pod, Service};

    fn plan_of(lab: &str, solution: Solution) -> Plan {
        let lab = Catalogue::new(vec![]).find(lab).unwrap();
        let opts = PlanOptions {
            student: Some("eve".into()),
            images: ImageSet::Debian,
            solution,
            ports: Default::default(),
            extra_env: Default::default(),
            ready_timeout: None,
            lab_exe: Some("/opt/lab/lab".into()),
            secret: "s".repeat(64),
        };
        let mut p = 40000;
        crate::plan::plan(&lab, &opts, || {
            p += 1;
            Ok(p)
        })
        .unwrap()
    }

    #[test]
    fn a_dependency_behind_the_proxy_takes_connections_from_the_proxy_only() {
        let plan = plan_of("url-shortener", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        let objs = namespace_objects(&plan, &Limits::defaults());
        let policies: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "NetworkPolicy").collect();
        assert_eq!(policies.len(), 2, "{objs:#?}");
        assert_eq!(policies[0]["spec"]["podSelector"]["matchExpressions"][0], json!({"key": "lab.reach", "operator": "DoesNotExist"}));
        assert_eq!(policies[1]["spec"]["podSelector"]["matchLabels"], json!({"lab.reach": "backstage"}));
        assert_eq!(policies[1]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], json!({"lab.service": "proxy"}));
        let redis = plan.containers.iter().find(|c| c.service == "redis").unwrap();
        assert_eq!(pod_object(&plan, redis, &BTreeMap::new())["metadata"]["labels"]["lab.reach"], "backstage");
        let app = plan.containers.iter().find(|c| c.service == "app").unwrap();
        assert!(pod_object(&plan, app, &BTreeMap::new())["metadata"]["labels"].get("lab.reach").is_none());
        // raft's peers go through the proxy, but no dependency hides behind it.
        let raft = plan_of("raft", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        assert_eq!(namespace_objects(&raft, &Limits::defaults()).iter().filter(|o| o["kind"] == "NetworkPolicy").count(), 1);
    }

    #[test]
    fn the_namespace_gets_the_limits_and_quota_given_and_keeps_them_in_an_annotation() {
        use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
        let plan = plan_of("url-shortener", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        let given = Limits::defaults().overridden("container: {limit: {memory: 256Mi}}\nquota: {pods: 3}\n", "f").unwrap();
        let objs = namespace_objects(&plan, &given);
        let lr: LimitRange = serde_json::from_value(objs.iter().find(|o| o["kind"] == "LimitRange").unwrap().clone()).unwrap();
        let default = lr.spec.unwrap().limits[0].default.clone().unwrap();
        assert_eq!((default["memory"].0.as_str(), default["cpu"].0.as_str()), ("256Mi", "1"));
        let q: ResourceQuota = serde_json::from_value(objs.iter().find(|o| o["kind"] == "ResourceQuota").unwrap().clone()).unwrap();
        let hard = q.spec.unwrap().hard.unwrap();
        assert_eq!((hard["pods"].0.as_str(), hard["limits.memory"].0.as_str()), ("3", "16Gi"));
        let ns: Namespace = serde_json::from_value(objs[0].clone()).unwrap();
        assert_eq!(Limits::from_annotation(&ns.metadata.annotations.unwrap()[limits::ANNOTATION]), Some(given));
        let none = Limits::defaults().overridden("quota: none", "f").unwrap();
        assert!(!namespace_objects(&plan, &none).iter().any(|o| o["kind"] == "ResourceQuota"));
    }

    #[test]
    fn every_object_is_a_valid_kubernetes_object_in_the_instance_namespace() {
        let plan = plan_of("raft", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        let objs = all_objects(&plan, &Limits::defaults(), &BTreeMap::new());
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "LimitRange", "ResourceQuota", "NetworkPolicy", "Service", "Service", "Service", "Service", "Service", "Pod", "Pod", "Pod", "Pod"]);
        let ns: Namespace = serde_json::from_value(objs[0].clone()).unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("lab-raft--eve"));
        assert_eq!(ns.metadata.labels.as_ref().unwrap()["lab.instance"], "lab-raft--eve");
        assert_eq!(ns.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"], "lab");
        assert!(!ns.metadata.labels.as_ref().unwrap().contains_key("lab.secret"), "a 64-character value is no label value");
        for o in &objs[1..] {
            assert_eq!(o["metadata"]["namespace"], "lab-raft--eve", "{o}");
        }
        let services: Vec<Service> = objs.iter().filter(|o| o["kind"] == "Service").map(|o| serde_json::from_value(o.clone()).unwrap()).collect();
        let names: Vec<&str> = services.iter().map(|s| s.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["app", "app-1", "app-2", "app-3", "proxy"]);
        // Node 2's own Service selects node 2 only, and carries its peer port.
        let app2 = &services[2].spec.as_ref().unwrap();
        assert_eq!(app2.selector.as_ref().unwrap()["lab.node"], "2");
        let ports: Vec<i32> = app2.ports.as_ref().unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, [7000, 8080]);
        assert!(app2.ports.as_ref().unwrap().iter().all(|p| p.protocol.as_deref() == Some("TCP")));
        // The proxy's Service names every link port (raft's peer links 17001..17003).
        let proxy_ports: Vec<i32> = services[4].spec.as_ref().unwrap().ports.as_ref().unwrap().iter().map(|p| p.port).collect();
        assert_eq!(proxy_ports, [8474, 17001, 17002, 17003]);
        let pods: Vec<Pod> = objs.iter().filter(|o| o["kind"] == "Pod").map(|o| serde_json::from_value(o.clone()).unwrap()).collect();
        let pod_names: Vec<&str> = pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(pod_names, ["proxy-1", "app-1", "app-2", "app-3"]);
    }

    #[test]
    fn the_learner_s_pods_run_the_uploaded_binary_under_the_supervisor_without_privileges() {
        let plan = plan_of("url-shortener", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        let app = plan.replicas().next().unwrap();
        assert_eq!(upload(app), Some(("/lab/bin/app".to_string(), "/tmp/b/app".into())));
        let pod: Pod = serde_json::from_value(pod_object(&plan, app, &BTreeMap::new())).unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let cmd = c.command.as_ref().unwrap();
        assert_eq!(&cmd[..2], ["/bin/sh", "-c"]);
        assert_eq!(cmd[2], SUPERVISOR);
        assert_eq!(&cmd[3..], ["lab-supervisor", "/lab/bin/app"]);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(), &["ALL"]);
        let env: BTreeMap<String, String> = c.env.as_ref().unwrap().iter().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
        assert!(env.values().any(|v| v.contains("proxy:6379")), "the same names as on Docker: {env:?}");
        let pod_annotations = pod.metadata.annotations.unwrap();
        assert_eq!(pod_annotations[CONTAINER_LABEL], "lab-url-shortener--eve-app-1", "every lab label is kept as an annotation too");
        // The proxy runs lab's own executable, uploaded the same way.
        let proxy = plan.containers.iter().find(|c| c.service == "proxy").unwrap();
        assert_eq!(upload(proxy).unwrap().1, std::path::PathBuf::from("/opt/lab/lab"));
    }

    #[test]
    fn a_dependency_runs_its_image_s_entrypoint_under_the_supervisor() {
        let plan = plan_of("url-shortener", Solution::None);
        let redis = plan.containers.iter().find(|c| c.service == "redis").unwrap();
        let args = argv(redis);
        assert_eq!(args[0], "/usr/local/bin/docker-entrypoint.sh", "{args:?}");
        assert_eq!(args[1], "redis-server", "the template's command follows the image's entrypoint");
        let plan = plan_of("grpc-auth", Solution::None);
        let pg = plan.containers.iter().find(|c| c.service == "db" || c.image.contains("postgres")).unwrap();
        assert!(argv(pg).ends_with(&["/usr/local/bin/docker-entrypoint.sh".to_string(), "postgres".to_string()]), "no command in the template: the image's: {:?}", argv(pg));
    }

    #[test]
    fn cluster_ips_become_host_aliases_and_change_the_spec_digest() {
        let plan = plan_of("url-shortener", Solution::Binary { path: "/tmp/b/app".into(), digest: "d1".into(), root: None });
        let app = plan.replicas().next().unwrap();
        let bare = pod_object(&plan, app, &BTreeMap::new());
        let ips = BTreeMap::from([("redis".to_string(), "10.0.0.7".to_string()), ("proxy".to_string(), "10.0.0.8".to_string())]);
        let with = pod_object(&plan, app, &ips);
        assert_eq!(with["spec"]["hostAliases"], json!([{"ip": "10.0.0.7", "hostnames": ["redis"]}, {"ip": "10.0.0.8", "hostnames": ["proxy"]}]));
        assert_ne!(bare["metadata"]["annotations"][SPEC_ANNOTATION], with["metadata"]["annotations"][SPEC_ANNOTATION]);
        assert_eq!(with, pod_object(&plan, app, &ips), "the same plan gives the same pod");
    }

    #[test]
    fn label_values_are_checked_as_kubernetes_does() {
        assert!(label_value_ok("lab-raft--eve"));
        assert!(label_value_ok(""));
        assert!(!label_value_ok("{\"K\":\"v\"}"));
        assert!(!label_value_ok(&"a".repeat(64)));
        assert!(!label_value_ok("-a"));
    }
}
