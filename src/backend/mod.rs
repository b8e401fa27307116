//! Backends run a plan. Docker (bollard) today; a fake that records calls
//! serves the tests of everything above it. An enum dispatches, no `dyn`.
//! Kubernetes is the third variant.

pub mod docker;
pub mod fake;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::BoxStream;
use serde::Serialize;

use crate::plan::{Plan, Role};

pub use docker::DockerBackend;
pub use fake::FakeBackend;
pub use kubernetes::KubeBackend;

/// A container as the backend sees it now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerState {
    pub name: String,
    pub service: String,
    pub node: u32,
    pub role: Role,
    /// running, exited, paused, created, restarting, dead
    pub state: String,
    pub image: String,
    /// Host port published on 127.0.0.1, if any.
    pub host_port: Option<u16>,
    pub container_port: Option<u16>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerState {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// One instance (all containers and networks with the same `lab.instance` label).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstanceState {
    pub instance: String,
    pub lab: String,
    pub student: Option<String>,
    pub target: Option<String>,
    pub containers: Vec<ContainerState>,
    pub networks: Vec<String>,
}

/// What converging did to one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Converged {
    /// Already there with the same spec.
    Kept,
    Created,
    /// There with another spec (image, env, binary...): replaced.
    Recreated,
}

/// What `down` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// A fault as recorded on the backend, so that `status`, `heal` and `down`
/// find it from any later invocation (and after a crash of the one that made it).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FaultRecord {
    /// Unique within the instance.
    pub id: String,
    pub instance: String,
    /// kill, stop, pause, partition, outage, bandwidth, ...
    pub kind: String,
    /// Containers it acts on.
    pub targets: Vec<String>,
    /// Everything needed to revert it.
    pub spec: serde_json::Value,
    /// Unix seconds when it started, and when it is meant to end (if it has a duration).
    pub since: u64,
    pub until: Option<u64>,
    /// False while the fault is being applied: the record is written first
    /// (write-ahead), so a crash mid-way leaves a record that `heal` and
    /// `down` revert from, whether or not the fault took effect.
    #[serde(default = "applied_default")]
    pub applied: bool,
}

fn applied_default() -> bool {
    // Records written before write-ahead existed were written after the fault.
    true
}

/// Now, in the unix seconds fault records use.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl FaultRecord {
    /// Whether the fault was meant to end before `now` (unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

/// A backend failure.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BackendError {
    #[error("cannot reach the Docker engine: {detail}")]
    #[diagnostic(help("is Docker running? `docker info` should answer; DOCKER_HOST selects another engine"))]
    Unreachable { detail: String },
    #[error("image {image} is not on this machine")]
    #[diagnostic(help("{hint}"))]
    ImageMissing { image: String, hint: String },
    #[error("pulling {image} failed: {detail}")]
    #[diagnostic(help("no registry reachable? bake the local set: `lab images bake`, then use `--images debian` (or LAB_IMAGES=debian)"))]
    Pull { image: String, detail: String },
    #[error("no container {0}")]
    NoContainer(String),
    #[error("starting {container} failed: its host port is taken by another program or container ({detail})")]
    #[diagnostic(help("`lab up` picks another port and tries again; if this persists, free ports on 127.0.0.1 or run `lab down` and `lab up`"))]
    PortTaken { container: String, detail: String },
    #[error("{op} failed: {detail}")]
    Docker { op: String, detail: String },
    #[error("cannot reach the Kubernetes API server: {detail}")]
    #[diagnostic(help("the cluster is chosen as kubectl chooses it: KUBECONFIG (or ~/.kube/config) and its current context, --context NAME, or the pod's service account inside a cluster; `kubectl version` should answer"))]
    KubeUnreachable { detail: String },
    #[error("{op} failed: {detail}")]
    Kube { op: String, detail: String },
    #[error("the ResourceQuota of namespace {ns} has no status after {secs} s, and until the cluster computes it the API server refuses every pod (\"status unknown for quota\")")]
    #[diagnostic(help("the cluster's kube-controller-manager computes quotas: is it running? Or bring the instance up without a quota: --limits FILE holding `quota: none` (see k8s/limits.yaml)"))]
    QuotaUnknown { ns: String, secs: u64 },
    #[error("{op} failed: the namespace's quota is spent: {detail}")]
    #[diagnostic(help(
        "the instance needs more than its namespace's ResourceQuota (lab-quota) allows: raise it with --limits FILE (e.g. `quota: {{pods: 16}}`; see k8s/limits.yaml), or `quota: none`"
    ))]
    QuotaExceeded { op: String, detail: String },
    /// Something a backend cannot do with the same meaning; said plainly, never pretended.
    #[error("{what} is not available on this backend: {why}")]
    #[diagnostic(help("{hint}"))]
    Unsupported { what: String, why: String, hint: String },
    #[error("could not push {image} to {target}: {detail}")]
    #[diagnostic(help(
        "is the registry running and reachable from here (`curl http://REGISTRY/v2/`)? The Docker engine pushes over plain HTTP only to 127.0.0.1 and to registries listed in its insecure-registries"
    ))]
    Push { image: String, target: String, detail: String },
}

impl BackendError {
    /// Whether the backend itself could not be reached (exit 3).
    pub fn unreachable(&self) -> bool {
        matches!(self, BackendError::Unreachable { .. } | BackendError::KubeUnreachable { .. })
    }
}

/// Which backend runs instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Docker,
    Kubernetes,
}

impl BackendKind {
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "docker" => Some(BackendKind::Docker),
            "kubernetes" | "k8s" => Some(BackendKind::Kubernetes),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct BackendConfig {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    registry: Option<String>,
}

/// The registry for Kubernetes nodes: the flag (or LAB_REGISTRY, read by
/// clap), else `registry:` in the config file.
pub fn registry(flag: Option<String>, config: Option<std::path::PathBuf>) -> Result<Option<String>, String> {
    if flag.is_some() {
        return Ok(flag);
    }
    match config.as_ref().and_then(|p| std::fs::read_to_string(p).ok().map(|t| (p, t))) {
        Some((p, text)) => serde_yaml::from_str::<BackendConfig>(&text).map(|c| c.registry).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(None),
    }
}

/// The backend and Kubernetes context, first found wins: the flags, then
/// `LAB_BACKEND` (the context flag's own variable is read by clap), then
/// `backend:` and `context:` in the config file, then Docker.
pub fn choose(flag: Option<BackendKind>, context: Option<String>, env: Option<String>, config: Option<std::path::PathBuf>) -> Result<(BackendKind, Option<String>), String> {
    let cfg: BackendConfig = match config.as_ref().and_then(|p| std::fs::read_to_string(p).ok().map(|t| (p, t))) {
        Some((p, text)) => serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?,
        None => BackendConfig::default(),
    };
    let kind = match (flag, env.filter(|v| !v.is_empty())) {
        (Some(k), _) => k,
        (None, Some(v)) => BackendKind::parse(&v).ok_or_else(|| format!("LAB_BACKEND={v} is not a backend; use `docker` or `kubernetes`"))?,
        (None, None) => match &cfg.backend {
            Some(v) => {
                BackendKind::parse(v).ok_or_else(|| format!("{}: backend: {v} is not a backend; use `docker` or `kubernetes`", config.as_ref().map(|p| p.display().to_string()).unwrap_or_default()))?
            }
            None => BackendKind::Docker,
        },
    };
    Ok((kind, context.or(cfg.context)))
}

impl Backend {
    /// Connect to the chosen backend (without talking to it yet).
    pub async fn connect(kind: BackendKind, context: Option<&str>, registry: Option<String>) -> Result<Backend, BackendError> {
        Ok(match kind {
            BackendKind::Docker => Backend::Docker(DockerBackend::connect()?),
            BackendKind::Kubernetes => Backend::Kubernetes(KubeBackend::connect(context).await?.with_registry(registry)),
        })
    }
}

/// Dispatch over the backends.
pub enum Backend {
    Docker(DockerBackend),
    Kubernetes(KubeBackend),
    Fake(FakeBackend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Docker($b) => $e,
            Backend::Kubernetes($b) => $e,
            Backend::Fake($b) => $e,
        }
    };
}

impl Backend {
    /// Check that the backend answers.
    pub async fn ping(&self) -> Result<(), BackendError> {
        dispatch!(self, b => b.ping().await)
    }
    /// Create or replace the plan's network and containers (starting none that were
    /// not running), and remove the instance's containers that the plan no longer has.
    pub async fn converge(&self, plan: &Plan) -> Result<Vec<(String, Converged)>, BackendError> {
        dispatch!(self, b => b.converge(plan).await)
    }
    pub async fn start(&self, container: &str) -> Result<(), BackendError> {
        dispatch!(self, b => b.start(container).await)
    }
    /// Stop gracefully (SIGTERM, then SIGKILL after `grace`).
    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        dispatch!(self, b => b.stop(container, grace).await)
    }
    pub async fn restart(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        dispatch!(self, b => b.restart(container, grace).await)
    }
    /// Every instance, or the one named.
    pub async fn instances(&self, instance: Option<&str>) -> Result<Vec<InstanceState>, BackendError> {
        dispatch!(self, b => b.instances(instance).await)
    }
    /// Remove everything of one instance, or of all instances.
    pub async fn down(&self, instance: Option<&str>) -> Result<Removed, BackendError> {
        dispatch!(self, b => b.down(instance).await)
    }
    /// Log lines of a container: the last `tail`, then new ones while `follow`.
    pub async fn logs(&self, container: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String, BackendError>>, BackendError> {
        dispatch!(self, b => b.logs(container, tail, follow).await)
    }
    /// Which of these images are missing locally.
    pub async fn missing_images(&self, images: &[String]) -> Result<Vec<String>, BackendError> {
        dispatch!(self, b => b.missing_images(images).await)
    }
    /// Send a signal (e.g. SIGKILL) to a container's main process.
    pub async fn kill(&self, container: &str, signal: &str) -> Result<(), BackendError> {
        dispatch!(self, b => b.kill(container, signal).await)
    }
    /// Freeze or thaw every process of a container.
    pub async fn pause(&self, container: &str, pause: bool) -> Result<(), BackendError> {
        dispatch!(self, b => b.pause(container, pause).await)
    }
    /// Run a shell script in a container's network namespace with NET_ADMIN
    /// (through a short-lived helper container of `image`). Returns its output.
    pub async fn net_exec(&self, container: &str, image: &str, script: &str) -> Result<String, BackendError> {
        dispatch!(self, b => b.net_exec(container, image, script).await)
    }
    /// Stop what this process still has under way in the instance's network
    /// (helpers of a fault interrupted mid-way), before its faults are reverted.
    pub async fn settle(&self, instance: &str) -> Result<(), BackendError> {
        match self {
            Backend::Docker(b) => b.settle(instance).await,
            _ => Ok(()),
        }
    }
    /// Whether lab can change a node's own network (iptables, tc through
    /// `net_exec`); on Kubernetes it cannot, and faults go through its proxy.
    pub fn edits_pod_network(&self) -> bool {
        !matches!(self, Backend::Kubernetes(_))
    }
    /// Whether a node's name resolves, inside the instance, to the address its
    /// connections come from (on Kubernetes it resolves to its Service's
    /// ClusterIP, while it connects from its pod's IP).
    pub fn names_are_sources(&self) -> bool {
        !matches!(self, Backend::Kubernetes(_))
    }
    /// A cluster's own fault objects (NetworkPolicies, Chaos Mesh's kinds):
    /// only a Kubernetes backend has them.
    fn cluster(&self, what: &str) -> Result<&kubernetes::KubeBackend, BackendError> {
        match self {
            Backend::Kubernetes(k) => Ok(k),
            _ => Err(BackendError::Unsupported {
                what: what.to_string(),
                why: format!("it is a Kubernetes fault engine, and this instance runs on {}", self.name()),
                hint: "leave out --chaos-engine: on Docker lab cuts and slows links itself (iptables, tc, its fault proxy)".into(),
            }),
        }
    }
    /// Whether the cluster serves this kind (e.g. `chaos-mesh.org/v1alpha1`, `NetworkChaos`).
    pub async fn serves_kind(&self, api_version: &str, kind: &str) -> Result<bool, BackendError> {
        self.cluster(kind)?.serves_kind(api_version, kind).await
    }
    /// Apply objects (server-side) in a namespace.
    pub async fn apply_objects(&self, ns: &str, objs: &[serde_json::Value]) -> Result<(), BackendError> {
        self.cluster("cluster fault objects")?.apply_objects(ns, objs).await
    }
    /// Delete objects (apiVersion, kind and metadata.name of each); gone ones are fine.
    pub async fn delete_objects(&self, ns: &str, objs: &[serde_json::Value]) -> Result<(), BackendError> {
        self.cluster("cluster fault objects")?.delete_objects(ns, objs).await
    }
    /// Whether `from` can open a TCP connection to `ip:port` (tried from inside it, 2 s).
    pub async fn connects(&self, from: &str, ip: &str, port: u16) -> Result<bool, BackendError> {
        self.cluster("a connection test")?.connects(from, ip, port).await
    }
    /// The entrypoint and command an image starts with (pulled first where the backend pulls).
    pub async fn image_command(&self, image: &str) -> Result<(Vec<String>, Vec<String>), BackendError> {
        dispatch!(self, b => b.image_command(image).await)
    }
    /// Whether a container's program has ended: its exit code, and whether
    /// the kernel killed it for memory (None while it runs).
    pub async fn exited(&self, container: &str) -> Result<Option<(i64, bool)>, BackendError> {
        dispatch!(self, b => b.exited(container).await)
    }
    /// A running container's memory use and the most it used, in bytes, where
    /// the engine tells (Docker: the usage, and the peak on cgroup v1 hosts);
    /// None where it does not (a cluster, the fake).
    pub async fn memory(&self, container: &str) -> Result<Option<(u64, Option<u64>)>, BackendError> {
        match self {
            Backend::Docker(d) => d.memory(container).await,
            _ => Ok(None),
        }
    }
    /// Whether [`Backend::exited`] can tell a kill for memory (Docker records
    /// it; a cluster's pods report only their exit code here).
    pub fn tells_oom_kills(&self) -> bool {
        matches!(self, Backend::Docker(_))
    }
    /// A container's address on the instance's network.
    pub async fn ip(&self, container: &str) -> Result<String, BackendError> {
        dispatch!(self, b => b.ip(container).await)
    }
    /// Every address of a container (a fault proxy has one per network).
    pub async fn ips(&self, container: &str) -> Result<Vec<String>, BackendError> {
        match self {
            Backend::Docker(b) => b.ips(container).await,
            _ => Ok(vec![self.ip(container).await?]),
        }
    }
    /// Record a fault.
    pub async fn record_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        dispatch!(self, b => b.record_fault(f).await)
    }
    /// Mark a recorded fault as applied (it took effect).
    pub async fn mark_applied(&self, f: &FaultRecord) -> Result<(), BackendError> {
        dispatch!(self, b => b.mark_applied(f).await)
    }
    /// The faults recorded for an instance (or for all).
    pub async fn faults(&self, instance: Option<&str>) -> Result<Vec<FaultRecord>, BackendError> {
        dispatch!(self, b => b.faults(instance).await)
    }
    /// Keep what a student's last `lab verify` said with their instance
    /// (replacing the one before), so every machine that sees the backend sees it.
    pub async fn record_verdict(&self, v: &crate::class::Verdict) -> Result<(), BackendError> {
        dispatch!(self, b => b.record_verdict(v).await)
    }
    /// The verdicts kept for a lab's instances (the latest of each).
    pub async fn verdicts(&self, lab: &str) -> Result<Vec<crate::class::Verdict>, BackendError> {
        dispatch!(self, b => b.verdicts(lab).await)
    }
    /// A kubeconfig for one student of a class that reaches only their
    /// instance, and when its token expires (Kubernetes only).
    pub async fn student_kubeconfig(&self, instance: &str, lab: &str, student: &str, expires: Duration) -> Result<(String, String), BackendError> {
        match self {
            Backend::Kubernetes(k) => k.student_kubeconfig(instance, lab, student, expires).await,
            _ => Err(BackendError::Unsupported {
                what: "a kubeconfig per student".into(),
                why: format!("this class runs on {}", self.name()),
                hint: "on Docker `lab class credentials` writes each student's addresses instead".into(),
            }),
        }
    }
    /// Forget a fault (after reverting it).
    pub async fn clear_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        dispatch!(self, b => b.clear_fault(f).await)
    }
    /// Make every container of a running plan reachable from this process on
    /// 127.0.0.1 and point the plan's host ports there. Docker publishes the
    /// ports itself; on Kubernetes lab opens port-forwards through the API server.
    pub async fn expose(&self, plan: &mut Plan) -> Result<(), BackendError> {
        match self {
            Backend::Kubernetes(k) => k.expose(plan).await,
            Backend::Docker(_) | Backend::Fake(_) => Ok(()),
        }
    }
    /// Wait until the instance's network routes traffic to a started
    /// container: on Kubernetes, its pod is Ready and its Services' endpoints
    /// name it (other pods reach it through them); Docker routes at once.
    pub async fn wait_routed(&self, container: &str, timeout: Duration) -> Result<(), BackendError> {
        match self {
            Backend::Kubernetes(k) => k.wait_routed(container, timeout).await,
            Backend::Docker(_) | Backend::Fake(_) => Ok(()),
        }
    }
    /// What `count` converged nodes of an instance are, and where, for
    /// messages: containers on a Docker network, pods in a namespace.
    pub fn placement(&self, count: usize, network: &str) -> String {
        let (one, many, place) = match self {
            Backend::Kubernetes(_) => ("pod", "pods", "in namespace"),
            _ => ("container", "containers", "on network"),
        };
        format!("{count} {} {place} {network}", if count == 1 { one } else { many })
    }
    /// The backend's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Docker(_) => "docker",
            Backend::Kubernetes(_) => "kubernetes",
            Backend::Fake(_) => "fake",
        }
    }
    /// Pull an image from its registry.
    pub async fn pull(&self, image: &str, progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        dispatch!(self, b => b.pull(image, progress).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_comes_from_the_flag_the_environment_the_config_file_or_docker() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "images: debian\nbackend: kubernetes\ncontext: class\n").unwrap();
        let c = || Some(cfg.clone());
        assert_eq!(choose(Some(BackendKind::Docker), None, Some("kubernetes".into()), c()).unwrap(), (BackendKind::Docker, Some("class".into())));
        assert_eq!(choose(None, Some("mine".into()), Some("docker".into()), c()).unwrap(), (BackendKind::Docker, Some("mine".into())));
        assert_eq!(choose(None, None, None, c()).unwrap(), (BackendKind::Kubernetes, Some("class".into())));
        assert_eq!(choose(None, None, Some(String::new()), Some(dir.path().join("none.yaml"))).unwrap(), (BackendKind::Docker, None));
        assert!(choose(None, None, Some("podman".into()), None).unwrap_err().contains("LAB_BACKEND=podman"));
        std::fs::write(&cfg, "backend: nomad\n").unwrap();
        assert!(choose(None, None, None, c()).unwrap_err().contains("backend: nomad"));
    }
}
