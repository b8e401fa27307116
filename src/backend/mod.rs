//! Backends run a plan. Docker (bollard) today; a fake that records calls
//! serves the tests of everything above it. An enum dispatches, no `dyn`.
//! Kubernetes joins as a third variant.

pub mod docker;
pub mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::BoxStream;
use serde::Serialize;

use crate::plan::{Plan, Role};

pub use docker::DockerBackend;
pub use fake::FakeBackend;

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
}

/// Dispatch over the backends.
pub enum Backend {
    Docker(DockerBackend),
    Fake(FakeBackend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Docker($b) => $e,
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
    /// A container's address on the instance's network.
    pub async fn ip(&self, container: &str) -> Result<String, BackendError> {
        dispatch!(self, b => b.ip(container).await)
    }
    /// Record a fault.
    pub async fn record_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        dispatch!(self, b => b.record_fault(f).await)
    }
    /// The faults recorded for an instance (or for all).
    pub async fn faults(&self, instance: Option<&str>) -> Result<Vec<FaultRecord>, BackendError> {
        dispatch!(self, b => b.faults(instance).await)
    }
    /// Forget a fault (after reverting it).
    pub async fn clear_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        dispatch!(self, b => b.clear_fault(f).await)
    }
    /// Pull an image from its registry.
    pub async fn pull(&self, image: &str, progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        dispatch!(self, b => b.pull(image, progress).await)
    }
}
