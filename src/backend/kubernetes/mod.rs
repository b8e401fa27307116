//! The Kubernetes backend, on kube-rs. One namespace per instance; every
//! object applied server-side with field manager `lab`; lab's labels (and,
//! where a value is no valid label value, annotations) are the state, so any
//! machine with the kubeconfig finds an instance, its nodes and its faults.
//!
//! What the Docker backend does with host paths and published ports, this one
//! does through the API server: the learner's program (and lab's own, for its
//! helpers) is uploaded into the pod over `exec`, and lab reaches every node
//! through port-forwards it opens on 127.0.0.1 (`expose`). Kill, stop, start
//! and pause act on lab's supervisor in the pod (`objects::SUPERVISOR`).

pub mod limits;
pub mod objects;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BackendError, ContainerState, Converged, FaultRecord, InstanceState, Removed};
use crate::plan::{labels, ContainerSpec, Plan, Role};
use objects::{CONTAINER_LABEL, FAULT_LABEL, FIELD_MANAGER, RUN_DIR, SPEC_ANNOTATION};

/// Annotation of a pod with what was uploaded into it (size and modification time of the file).
const UPLOADED_ANNOTATION: &str = "lab.uploaded";
/// How long a pod may take to be running (image on the node, container started).
const RUNNING_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `down` waits for a namespace to be gone.
const DELETE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a new namespace's quota may take to be computed (the controller
/// manager does it within a second or two).
const QUOTA_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a cluster's API server.
#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
    /// The server's address, for messages.
    server: String,
    /// The registry the cluster's nodes pull from (`--registry`): dependencies'
    /// images are taken from it, and each node's program goes there as an
    /// image instead of being uploaded into its pod.
    registry: Option<String>,
    /// The namespace limits given (`--limits`); without them a namespace
    /// keeps those it has, and a new one gets `k8s/limits.yaml`'s.
    limits: Option<limits::Limits>,
    /// The cluster's CA certificates (DER) and whether TLS is checked, for
    /// the kubeconfigs `lab class credentials` writes.
    root_cert: Option<Vec<Vec<u8>>>,
    insecure: bool,
    /// The namespace of each container name this process has seen (a plan
    /// applied, an instance listed), so that finding its pod lists one
    /// namespace's pods, not the whole cluster's: a class of 30 students
    /// would otherwise make each student's commands cost more with every
    /// other student.
    namespaces: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

fn kube_err(op: impl Into<String>) -> impl FnOnce(kube::Error) -> BackendError {
    let op = op.into();
    move |e| match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("exceeded quota") => BackendError::QuotaExceeded { op, detail: s.message },
        kube::Error::Api(s) => BackendError::Kube { op, detail: format!("{} (HTTP {})", s.message, s.code) },
        other => BackendError::KubeUnreachable { detail: format!("{op}: {}", crate::probe::http::error_chain(&other)) },
    }
}

fn is_404(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_409(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

impl KubeBackend {
    /// Connect as kubectl would: `KUBECONFIG` (or ~/.kube/config) with its
    /// current context or `context`, else the in-cluster service account.
    /// Does not talk to the server yet.
    pub async fn connect(context: Option<&str>) -> Result<Self, BackendError> {
        // rustls needs one crypto provider chosen for the process (reqwest's and kube's agree on ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unreachable = |detail: String| BackendError::KubeUnreachable { detail };
        let config = match context {
            Some(ctx) => {
                let kc = Kubeconfig::read().map_err(|e| unreachable(format!("reading the kubeconfig: {e}")))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions { context: Some(ctx.to_string()), ..Default::default() }).await.map_err(|e| unreachable(format!("context {ctx}: {e}")))?
            }
            None => Config::infer().await.map_err(|e| unreachable(format!("no cluster configured ({e})")))?,
        };
        let server = config.cluster_url.to_string();
        let (root_cert, insecure) = (config.root_cert.clone(), config.accept_invalid_certs);
        let client = Client::try_from(config).map_err(|e| unreachable(e.to_string()))?;
        Ok(KubeBackend { client, server, registry: None, limits: None, root_cert, insecure, namespaces: Default::default() })
    }

    /// Take images from `registry` (see the field).
    pub fn with_registry(mut self, registry: Option<String>) -> Self {
        self.registry = registry.filter(|r| !r.trim().is_empty());
        self
    }

    pub fn with_limits(mut self, limits: Option<limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// The limits an instance's namespace gets: those given, else those it
    /// was given before (its annotation), else the defaults.
    async fn limits_for(&self, ns: &str) -> Result<limits::Limits, BackendError> {
        if let Some(l) = &self.limits {
            return Ok(l.clone());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let kept = api
            .get_opt(ns)
            .await
            .map_err(kube_err(format!("reading namespace {ns}")))?
            .and_then(|n| n.metadata.annotations)
            .and_then(|a| a.get(limits::ANNOTATION).and_then(|s| limits::Limits::from_annotation(s)));
        Ok(kept.unwrap_or_else(limits::Limits::defaults))
    }

    /// Wait until the cluster has computed a namespace's quota: until then
    /// the API server refuses every pod.
    async fn wait_quota(&self, ns: &str, hard: &BTreeMap<String, String>) -> Result<(), BackendError> {
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
        let t0 = Instant::now();
        loop {
            let q = api.get("lab-quota").await.map_err(kube_err(format!("reading ResourceQuota lab-quota of {ns}")))?;
            let have = q.status.and_then(|s| s.hard).unwrap_or_default();
            if hard.keys().all(|k| have.contains_key(k)) && !have.is_empty() {
                tracing::debug!(%ns, waited = ?t0.elapsed(), "quota computed");
                return Ok(());
            }
            if t0.elapsed() > QUOTA_TIMEOUT {
                return Err(BackendError::QuotaUnknown { ns: ns.to_string(), secs: QUOTA_TIMEOUT.as_secs() });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The image of each container that does not run its plan's image as it
    /// is: with a registry, a dependency's image there, and for a node whose
    /// program lab would upload, an image of its base with the program in it,
    /// made on the local engine and pushed (named after the program's digest,
    /// so an unchanged program is neither made nor pushed again).
    async fn registry_images(&self, plan: &Plan) -> Result<BTreeMap<String, String>, BackendError> {
        let mut out = BTreeMap::new();
        let Some(reg) = &self.registry else {
            return Ok(out);
        };
        let docker = super::DockerBackend::connect()?;
        let mut pushed = std::collections::BTreeSet::new();
        for c in &plan.containers {
            if c.labels.contains_key(crate::plan::IMAGE_LABEL) {
                // The learner's own image: already where it belongs.
                out.insert(c.name.clone(), c.image.clone());
                continue;
            }
            let image = match (objects::upload(c), objects::program_folder(c)) {
                (None, _) => crate::images::in_registry(reg, &c.image),
                (Some((dest, _)), Some((dir, host))) => {
                    // A folder of a built program: named after its files' digest.
                    let digest = {
                        use sha2::Digest;
                        let mut h = sha2::Sha256::new();
                        h.update(format!("{}\0{dir}\0{}", c.image, c.labels.get("lab.binary").map(String::as_str).unwrap_or_default()).as_bytes());
                        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect::<String>()
                    };
                    let program = std::path::Path::new(&dest).file_name().and_then(|f| f.to_str()).unwrap_or("program").to_ascii_lowercase();
                    let target = format!("{}/lab-program/{program}:{digest}", reg.trim_end_matches('/'));
                    if !pushed.contains(&target) && !docker.has_image(&target).await {
                        docker.image_with_folder(&c.image, &dir, &host, &target).await?;
                    }
                    target
                }
                (Some((dest, orig)), None) => {
                    let src = shippable(&orig).map_err(|e| BackendError::Kube { op: format!("reading {}", orig.display()), detail: e.to_string() })?;
                    let read = || async { tokio::fs::read(&src).await.map_err(|e| BackendError::Kube { op: format!("reading {}", src.display()), detail: e.to_string() }) };
                    // Named after the program's digest; lab's own large binary
                    // after its stripped copy's name (its size and time), not hashed each time.
                    let digest = {
                        use sha2::Digest;
                        let mut h = sha2::Sha256::new();
                        h.update(c.image.as_bytes());
                        h.update(dest.as_bytes());
                        if src != orig {
                            h.update(src.file_name().and_then(|f| f.to_str()).unwrap_or_default().as_bytes());
                        } else {
                            h.update(read().await?);
                        }
                        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect::<String>()
                    };
                    let program = std::path::Path::new(&dest).file_name().and_then(|f| f.to_str()).unwrap_or("program").to_ascii_lowercase();
                    let target = format!("{}/lab-program/{program}:{digest}", reg.trim_end_matches('/'));
                    if !pushed.contains(&target) && !docker.has_image(&target).await {
                        docker.image_with_file(&c.image, &dest, &read().await?, &target).await?;
                    }
                    target
                }
            };
            if !pushed.contains(&image) {
                docker.push(if objects::upload(c).is_some() { &image } else { &c.image }, &image, &|_| {}).await?;
                pushed.insert(image.clone());
            }
            out.insert(c.name.clone(), image);
        }
        Ok(out)
    }

    pub async fn ping(&self) -> Result<(), BackendError> {
        match tokio::time::timeout(Duration::from_secs(5), self.client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BackendError::KubeUnreachable { detail: format!("{}: {}", self.server, crate::probe::http::error_chain(&e)) }),
            Err(_) => Err(BackendError::KubeUnreachable { detail: format!("{}: no answer within 5 s", self.server) }),
        }
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Apply one object (server-side, field manager `lab`); returns the object as the server has it.
    async fn apply<K>(&self, api: &Api<K>, obj: &Value) -> Result<K, BackendError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default();
        api.patch(&name, &apply_params(), &Patch::Apply(obj)).await.map_err(kube_err(format!("applying {kind} {name}")))
    }

    /// Apply the plan's objects: namespace and policy, Services, then pods
    /// (created, or replaced when their spec changed; those the plan no longer
    /// has are deleted). Uploads each pod's program once it runs.
    pub async fn converge(&self, plan: &Plan) -> Result<Vec<(String, Converged)>, BackendError> {
        self.ensure_namespace(plan).await?;
        let ns = plan.instance.as_str();
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let mut cluster_ips = BTreeMap::new();
        let wanted = objects::service_objects(plan);
        for o in &wanted {
            let got = self.apply(&services, o).await?;
            if let Some(ip) = got.spec.and_then(|s| s.cluster_ip).filter(|ip| ip != "None" && !ip.is_empty()) {
                cluster_ips.insert(o["metadata"]["name"].as_str().unwrap_or_default().to_string(), ip);
            }
        }
        let lp = ListParams::default().labels(labels::INSTANCE);
        for s in services.list(&lp).await.map_err(kube_err("listing Services"))? {
            let name = s.metadata.name.unwrap_or_default();
            if !wanted.iter().any(|o| o["metadata"]["name"] == name.as_str()) {
                let _ = services.delete(&name, &DeleteParams::default()).await;
            }
        }

        let pods = self.pods(ns);
        let existing = pods.list(&ListParams::default().labels(CONTAINER_LABEL)).await.map_err(kube_err("listing pods"))?;
        let images = self.registry_images(plan).await?;
        let planned: Vec<(&ContainerSpec, Value)> = plan.containers.iter().map(|c| (c, objects::pod_object_in(plan, c, &cluster_ips, images.get(&c.name).map(String::as_str)))).collect();
        for p in &existing {
            let name = p.metadata.name.clone().unwrap_or_default();
            if !planned.iter().any(|(_, o)| o["metadata"]["name"] == name.as_str()) {
                self.delete_pod(ns, &name).await?;
            }
        }
        let jobs = planned.into_iter().map(|(c, mut obj)| {
            let (existing, images) = (&existing, &images);
            async move {
                let name = objects::pod_name(c);
                let digest = obj["metadata"]["annotations"][SPEC_ANNOTATION].clone();
                let found = existing.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
                let outcome = match found {
                    Some(p) if p.metadata.annotations.as_ref().and_then(|a| a.get(SPEC_ANNOTATION)).map(|s| Value::String(s.clone())) == Some(digest) => Converged::Kept,
                    Some(_) => {
                        self.delete_pod(ns, &name).await?;
                        Converged::Recreated
                    }
                    None => Converged::Created,
                };
                let t0 = Instant::now();
                if outcome != Converged::Kept {
                    // The host port lab reaches the node on (its port-forward), kept for the next command.
                    obj["metadata"]["annotations"][labels::HOST_PORT] = Value::String(c.port.host.to_string());
                    self.apply(&self.pods(ns), &obj).await?;
                }
                let applied = t0.elapsed();
                if !images.contains_key(&c.name) {
                    self.upload_program(ns, c).await?;
                }
                tracing::debug!(pod = %name, ?applied, total = ?t0.elapsed(), "pod converged");
                Ok::<_, BackendError>((c.name.clone(), outcome))
            }
        });
        futures_util::future::try_join_all(jobs).await
    }

    /// The instance's namespace and what is the namespace's own: its
    /// NetworkPolicy, LimitRange and ResourceQuota (waited for until the
    /// cluster has computed it). The first step of [`Self::converge`].
    pub async fn ensure_namespace(&self, plan: &Plan) -> Result<(), BackendError> {
        let ns = plan.instance.as_str();
        if ns.len() > 63 {
            return Err(BackendError::Unsupported {
                what: format!("instance {ns} ({} characters) on a cluster", ns.len()),
                why: "it is the namespace's name, and a Kubernetes namespace name holds at most 63 characters".into(),
                hint: format!("use a --student name of at most {} characters", 63usize.saturating_sub(ns.len() - plan.student.as_deref().map_or(0, str::len))),
            });
        }
        self.remember(ns, plan.containers.iter().map(|c| c.name.as_str()));
        let limits = self.limits_for(ns).await?;
        for o in objects::namespace_objects(plan, &limits) {
            match o["kind"].as_str() {
                Some("Namespace") => {
                    let api: Api<Namespace> = Api::all(self.client.clone());
                    let got = self.apply(&api, &o).await?;
                    if got.status.and_then(|s| s.phase).as_deref() == Some("Terminating") {
                        return Err(BackendError::Kube { op: format!("creating namespace {ns}"), detail: "it is still being deleted (an earlier `lab down`)".into() });
                    }
                }
                Some("LimitRange") => drop(self.apply(&Api::<LimitRange>::namespaced(self.client.clone(), ns), &o).await?),
                Some("ResourceQuota") => drop(self.apply(&Api::<ResourceQuota>::namespaced(self.client.clone(), ns), &o).await?),
                Some("NetworkPolicy") => drop(self.apply(&Api::<NetworkPolicy>::namespaced(self.client.clone(), ns), &o).await?),
                other => unreachable!("k8s/namespace.yaml.tera makes no {other:?}"),
            }
        }
        match &limits.quota {
            Some(hard) => self.wait_quota(ns, hard).await?,
            None => match Api::<ResourceQuota>::namespaced(self.client.clone(), ns).delete("lab-quota", &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(kube_err(format!("removing ResourceQuota lab-quota of {ns}"))(e)),
            },
        }
        Ok(())
    }

    async fn delete_pod(&self, ns: &str, name: &str) -> Result<(), BackendError> {
        let pods = self.pods(ns);
        match pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await {
            Ok(_) => {}
            Err(e) if is_404(&e) => return Ok(()),
            Err(e) => return Err(kube_err(format!("deleting pod {name}"))(e)),
        }
        let t0 = Instant::now();
        while t0.elapsed() < DELETE_TIMEOUT {
            match pods.get_opt(name).await.map_err(kube_err(format!("reading pod {name}")))? {
                None => return Ok(()),
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Err(BackendError::Kube { op: format!("deleting pod {name}"), detail: format!("still there after {} s", DELETE_TIMEOUT.as_secs()) })
    }

    /// Wait until a pod's container runs; image and configuration problems are errors at once.
    async fn wait_running(&self, ns: &str, name: &str) -> Result<Pod, BackendError> {
        let pods = self.pods(ns);
        let t0 = Instant::now();
        loop {
            let p = pods.get_opt(name).await.map_err(kube_err(format!("reading pod {name}")))?.ok_or_else(|| BackendError::NoContainer(format!("{ns}/{name}")))?;
            let status = p.status.clone().unwrap_or_default();
            let cs = status.container_statuses.as_ref().and_then(|v| v.first()).cloned();
            if cs.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.running.as_ref()).is_some() {
                return Ok(p);
            }
            if let Some(w) = cs.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.clone().unwrap_or_default();
                let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default();
                if matches!(reason.as_str(), "ErrImageNeverPull" | "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName") {
                    return Err(BackendError::ImageMissing {
                        image,
                        hint: format!(
                            "the cluster's node could not get it ({reason}: {}). With the debian set, the node must have the baked images (`lab images bake` on the node's engine); with upstream, the node must reach the registry",
                            w.message.clone().unwrap_or_default()
                        ),
                    });
                }
                if matches!(reason.as_str(), "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError") {
                    return Err(BackendError::Kube { op: format!("starting pod {ns}/{name}"), detail: format!("{reason}: {}", w.message.clone().unwrap_or_default()) });
                }
            }
            if let Some(cond) = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False") {
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err(BackendError::Kube {
                        op: format!("scheduling pod {ns}/{name}"),
                        detail: format!("{}: {}", cond.reason.clone().unwrap_or_default(), cond.message.clone().unwrap_or_default()),
                    });
                }
            }
            if t0.elapsed() > RUNNING_TIMEOUT {
                return Err(BackendError::Kube {
                    op: format!("starting pod {ns}/{name}"),
                    detail: format!("not running after {} s (phase {})", RUNNING_TIMEOUT.as_secs(), status.phase.unwrap_or_default()),
                });
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Put a container's program into its pod (once per pod and file version).
    async fn upload_program(&self, ns: &str, c: &ContainerSpec) -> Result<(), BackendError> {
        let Some((dest, src)) = objects::upload(c) else {
            return Ok(());
        };
        let name = objects::pod_name(c);
        let t0 = Instant::now();
        let pod = self.wait_running(ns, &name).await?;
        tracing::debug!(pod = %name, waited = ?t0.elapsed(), "running");
        if let Some((dir, host)) = objects::program_folder(c) {
            // A folder of a built program: shipped whole as a tar, once per version of its files.
            let version = format!("folder-{}", c.labels.get("lab.binary").map(String::as_str).unwrap_or_default());
            if pod.metadata.annotations.as_ref().and_then(|a| a.get(UPLOADED_ANNOTATION)) == Some(&version) {
                return Ok(());
            }
            let data = super::docker::folder_archive("", &host).map_err(|e| BackendError::Kube { op: format!("reading {}", host.display()), detail: e.to_string() })?;
            let script = format!("find {dir} -mindepth 1 -delete && head -c {} | tar -x -m -f - -C {dir} --no-same-owner --no-overwrite-dir", data.len());
            self.exec_with_input(ns, &name, &script, &data).await?;
            let patch = serde_json::json!({"metadata": {"annotations": {UPLOADED_ANNOTATION: version}}});
            self.pods(ns).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(kube_err(format!("annotating pod {name}")))?;
            return Ok(());
        }
        let orig = src.clone();
        let src = shippable(&src).map_err(|e| BackendError::Kube { op: format!("reading {}", src.display()), detail: e.to_string() })?;
        let read = |p: PathBuf| async move { tokio::fs::read(&p).await.map_err(|e| BackendError::Kube { op: format!("reading {}", p.display()), detail: e.to_string() }) };
        // A program's version: the digest of its bytes (go build rewrites its
        // output each time; the same bytes are not uploaded, nor the pod
        // touched, again); a large one (lab's own binary, stripped into a copy
        // named after its size and time) goes by that copy's name.
        let (version, data) = if src != orig {
            (src.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string(), None)
        } else {
            use sha2::Digest;
            let data = read(src.clone()).await?;
            let d = sha2::Sha256::digest(&data);
            (format!("sha256-{}", d.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()), Some(data))
        };
        if pod.metadata.annotations.as_ref().and_then(|a| a.get(UPLOADED_ANNOTATION)) == Some(&version) {
            return Ok(());
        }
        let data = match data {
            Some(d) => d,
            None => read(src.clone()).await?,
        };
        // The exec protocol of older servers cannot close stdin: read exactly the size.
        let tmp = format!("{dest}.upload");
        let script = format!("head -c {} > {tmp} && chmod 755 {tmp} && mv {tmp} {dest}", data.len());
        self.exec_with_input(ns, &name, &script, &data).await?;
        let patch = serde_json::json!({"metadata": {"annotations": {UPLOADED_ANNOTATION: version}}});
        self.pods(ns).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(kube_err(format!("annotating pod {name}")))?;
        Ok(())
    }

    async fn exec_with_input(&self, ns: &str, pod: &str, script: &str, input: &[u8]) -> Result<String, BackendError> {
        // Frames of up to 256 KiB (the client's default, 1 KiB, makes an upload crawl).
        let ap = AttachParams::default().container("main").stdin(!input.is_empty()).stdout(true).stderr(true).max_stdin_buf_size(256 << 10);
        let mut proc = self.pods(ns).exec(pod, ["/bin/sh", "-c", script], &ap).await.map_err(kube_err(format!("exec in {ns}/{pod}")))?;
        let status = proc.take_status();
        let mut out = proc.stdout();
        let mut err = proc.stderr();
        let input = input.to_vec();
        let writer = proc.stdin().map(|mut w| {
            tokio::spawn(async move {
                for chunk in input.chunks(256 * 1024) {
                    if w.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                let _ = w.flush().await;
                // Kept open until the process ends: dropping it could end the stream early.
                tokio::time::sleep(Duration::from_secs(600)).await;
                drop(w);
            })
        });
        let read_all = |r: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s).await;
            }
            String::from_utf8_lossy(&s).to_string()
        };
        let (stdout, stderr, st) = tokio::join!(read_all(out.take()), read_all(err.take()), async {
            match status {
                Some(s) => s.await,
                None => None,
            }
        });
        if let Some(w) = writer {
            w.abort();
        }
        match st {
            Some(s) if s.status.as_deref() == Some("Failure") => {
                Err(BackendError::Kube { op: format!("`{}` in {ns}/{pod}", short(script)), detail: format!("{} {}", s.message.unwrap_or_default(), stderr.trim()).trim().to_string() })
            }
            _ => Ok(stdout),
        }
    }

    async fn exec(&self, ns: &str, pod: &str, script: &str) -> Result<String, BackendError> {
        self.exec_with_input(ns, pod, script, &[]).await
    }

    /// Remember the namespace of these container names.
    fn remember<'a>(&self, ns: &str, containers: impl IntoIterator<Item = &'a str>) {
        let mut m = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        for c in containers {
            m.insert(c.to_string(), ns.to_string());
        }
    }

    /// The namespace and pod of a plan's container name: among its
    /// namespace's pods when this process knows the namespace, else among
    /// the cluster's.
    async fn locate(&self, container: &str) -> Result<(String, String), BackendError> {
        if objects::label_value_ok(container) {
            let lp = ListParams::default().labels(&format!("{CONTAINER_LABEL}={container}"));
            let known = self.namespaces.lock().unwrap_or_else(|e| e.into_inner()).get(container).cloned();
            let api: Api<Pod> = match &known {
                Some(ns) => self.pods(ns),
                None => Api::all(self.client.clone()),
            };
            let list = api.list(&lp).await.map_err(kube_err("finding a pod"))?;
            if let Some(p) = list.items.into_iter().next() {
                let ns = p.metadata.namespace.unwrap_or_default();
                self.remember(&ns, [container]);
                return Ok((ns, p.metadata.name.unwrap_or_default()));
            }
        }
        Err(BackendError::NoContainer(container.into()))
    }

    pub async fn start(&self, container: &str) -> Result<(), BackendError> {
        let (ns, pod) = self.locate(container).await?;
        self.wait_running(&ns, &pod).await?;
        // The supervisor starts the program once `stopped` is gone; wait until it has.
        self.exec(&ns, &pod, &format!("rm -f {RUN_DIR}/stopped; i=0; while [ ! -s {RUN_DIR}/pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done")).await?;
        Ok(())
    }

    pub async fn wait_routed(&self, container: &str, timeout: Duration) -> Result<(), BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> = Api::namespaced(self.client.clone(), &ns);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let t0 = Instant::now();
        loop {
            let p = self.pods(&ns).get(&pod).await.map_err(kube_err(format!("reading pod {pod}")))?;
            let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            let mut addrs = Vec::new();
            let routed = ready && {
                // Every Service that selects this pod (its node's, its service's) lists it.
                let pod_labels = p.metadata.labels.clone().unwrap_or_default();
                let mut all = true;
                for svc in services.list(&ListParams::default().labels(labels::INSTANCE)).await.map_err(kube_err("listing Services"))? {
                    let spec = svc.spec.unwrap_or_default();
                    let sel = spec.selector.unwrap_or_default();
                    if sel.is_empty() || !sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)) {
                        continue;
                    }
                    if let Some(cip) = spec.cluster_ip.filter(|c| c.parse::<std::net::IpAddr>().is_ok()) {
                        addrs.extend(spec.ports.iter().flatten().map(|p| format!("{cip}/{}", p.port)));
                    }
                    let name = svc.metadata.name.unwrap_or_default();
                    let e = endpoints.get_opt(&name).await.map_err(kube_err(format!("reading the endpoints of {name}")))?;
                    all &= e.is_some_and(|e| e.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).any(|a| a.ip == ip));
                }
                all
            };
            if routed {
                self.wait_forwarded(&ns, &pod, &addrs).await;
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(BackendError::Kube {
                    op: format!("waiting for {ns}/{pod} to be Ready"),
                    detail: format!("not {} after {} s", if ready { "in its Service's endpoints" } else { "Ready" }, timeout.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the node's Services answer on their ClusterIPs, tried from
    /// another pod of the instance (a pod reaching its own Service is not
    /// routed on every node): a pod in the endpoints is not yet a route, the
    /// node's proxy (kube-proxy) programs it a moment later, longer on a busy
    /// node, and a connection made in between is refused (seen as a learner's
    /// service failing its first request). Best effort: without another
    /// running pod with bash and timeout nothing is tried, and after 10 s lab
    /// goes on and says so in its log.
    async fn wait_forwarded(&self, ns: &str, pod: &str, addrs: &[String]) {
        if addrs.is_empty() {
            return;
        }
        let Ok(pods) = self.pods(ns).list(&ListParams::default().labels(CONTAINER_LABEL)).await else {
            return;
        };
        let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let Some(from) = pods.items.iter().filter(|p| p.metadata.name.as_deref() != Some(pod) && running(p)).find_map(|p| p.metadata.name.clone()) else {
            return;
        };
        let script = format!(
            "command -v bash >/dev/null && command -v timeout >/dev/null || exit 0; for t in {}; do i=0; until timeout 1 bash -c \"exec 3<>/dev/tcp/$t\" 2>/dev/null; do i=$((i+1)); [ $i -ge 100 ] && echo \"$t does not answer\" && exit 0; sleep 0.1; done; done",
            addrs.join(" ")
        );
        let t0 = Instant::now();
        match self.exec(ns, &from, &script).await {
            Ok(out) if out.trim().is_empty() => tracing::debug!(%pod, %from, waited = ?t0.elapsed(), "Services answer on their ClusterIPs"),
            Ok(out) => tracing::warn!(%pod, "{}: not answering on its ClusterIP after 10 s", out.trim()),
            Err(e) => tracing::warn!(%pod, "could not try its Services' ClusterIPs: {e}"),
        }
    }

    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let ticks = grace.as_millis() / 100;
        let script = format!(
            "touch {RUN_DIR}/stopped; p=$(cat {RUN_DIR}/pid 2>/dev/null) || exit 0; kill -CONT -$p 2>/dev/null; kill -TERM $p 2>/dev/null; i=0; while kill -0 $p 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; kill -KILL -$p 2>/dev/null; i=0; while [ -e {RUN_DIR}/pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; if [ -e {RUN_DIR}/pid ]; then echo \"process $p is still running after SIGKILL\" >&2; exit 1; fi"
        );
        self.exec(&ns, &pod, &script).await.map(drop)
    }

    pub async fn restart(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        self.stop(container, grace).await?;
        self.start(container).await
    }

    pub async fn kill(&self, container: &str, signal: &str) -> Result<(), BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let sig = signal.trim_start_matches("SIG");
        if !sig.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(BackendError::Kube { op: format!("killing {container}"), detail: format!("no signal {signal}") });
        }
        // As on Docker, a killed node stays down until started: the supervisor is told first.
        let stop = if sig == "KILL" { format!("touch {RUN_DIR}/stopped; ") } else { String::new() };
        let group = if sig == "KILL" { "-" } else { "" };
        let script = format!("{stop}p=$(cat {RUN_DIR}/pid 2>/dev/null) || exit 0; kill -{sig} {group}$p");
        self.exec(&ns, &pod, &script).await.map(drop)
    }

    pub async fn pause(&self, container: &str, pause: bool) -> Result<(), BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let script = if pause {
            format!("p=$(cat {RUN_DIR}/pid) && kill -STOP -$p && touch {RUN_DIR}/paused")
        } else {
            format!("rm -f {RUN_DIR}/paused; p=$(cat {RUN_DIR}/pid 2>/dev/null) || exit 0; kill -CONT -$p")
        };
        self.exec(&ns, &pod, &script).await.map(drop)
    }

    pub async fn instances(&self, instance: Option<&str>) -> Result<Vec<InstanceState>, BackendError> {
        let selector = match instance {
            Some(i) if objects::label_value_ok(i) => format!("{}={i}", labels::INSTANCE),
            Some(_) => return Ok(vec![]),
            None => labels::INSTANCE.to_string(),
        };
        let lp = ListParams::default().labels(&selector);
        let nss: Api<Namespace> = Api::all(self.client.clone());
        // One instance is one namespace of its name: read that namespace and
        // list its pods, a cost that does not grow with the cluster.
        let (nss, pods): (Vec<Namespace>, Vec<Pod>) = match instance {
            Some(i) => tokio::try_join!(
                async {
                    let n = nss.get_opt(i).await.map_err(kube_err(format!("reading namespace {i}")))?;
                    Ok(n.into_iter().filter(|n| n.metadata.labels.as_ref().and_then(|l| l.get(labels::INSTANCE)).map(String::as_str) == Some(i)).collect())
                },
                async { self.pods(i).list(&lp).await.map(|l| l.items).map_err(kube_err("listing pods")) }
            )?,
            None => tokio::try_join!(async { nss.list(&lp).await.map(|l| l.items).map_err(kube_err("listing namespaces")) }, async {
                Api::<Pod>::all(self.client.clone()).list(&lp).await.map(|l| l.items).map_err(kube_err("listing pods"))
            })?,
        };
        let mut out: BTreeMap<String, InstanceState> = BTreeMap::new();
        for n in nss {
            let a = n.metadata.annotations.clone().unwrap_or_default();
            let name = n.metadata.name.clone().unwrap_or_default();
            out.insert(
                name.clone(),
                InstanceState {
                    instance: name.clone(),
                    lab: a.get(labels::LAB).cloned().unwrap_or_default(),
                    student: a.get(labels::STUDENT).cloned(),
                    target: a.get(labels::TARGET).cloned(),
                    containers: vec![],
                    networks: vec![name],
                },
            );
        }
        for p in pods {
            let a: BTreeMap<String, String> = p.metadata.annotations.clone().unwrap_or_default();
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let Some(inst) = out.get_mut(&ns) else {
                continue;
            };
            if let Some(c) = a.get(CONTAINER_LABEL) {
                self.remember(&ns, [c.as_str()]);
            }
            let spec_c = p.spec.as_ref().and_then(|s| s.containers.first());
            inst.containers.push(ContainerState {
                name: a.get(CONTAINER_LABEL).cloned().unwrap_or_default(),
                service: a.get(labels::SERVICE).cloned().unwrap_or_default(),
                node: a.get(labels::NODE).and_then(|n| n.parse().ok()).unwrap_or(1),
                role: if a.get(labels::ROLE).map(String::as_str) == Some("service") { Role::Service } else { Role::Dependency },
                state: pod_state(&p),
                image: spec_c.and_then(|c| c.image.clone()).unwrap_or_default(),
                host_port: a.get(labels::HOST_PORT).and_then(|p| p.parse().ok()).filter(|p| *p != 0),
                container_port: spec_c.and_then(|c| c.ports.as_ref()).and_then(|v| v.first()).map(|p| p.container_port as u16),
                labels: a,
            });
        }
        let mut v: Vec<InstanceState> = out.into_values().collect();
        for i in &mut v {
            i.containers.sort_by(|a, b| (a.role == Role::Service, &a.service, a.node).cmp(&(b.role == Role::Service, &b.service, b.node)));
        }
        Ok(v)
    }

    /// Delete the instance's namespace (everything lab made lives in it) and
    /// wait until the cluster has removed it.
    pub async fn down(&self, instance: Option<&str>) -> Result<Removed, BackendError> {
        let found = self.instances(instance).await?;
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let mut removed = Removed::default();
        for i in &found {
            // The pods first, without a grace period: a node's program is not
            // expected to shut down cleanly (on Docker it is removed by force
            // too), and the namespace is then gone in a few seconds, not 20.
            let force = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
            match self.pods(&i.instance).delete_collection(&force, &ListParams::default()).await {
                Ok(_) => {}
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(kube_err(format!("deleting the pods of {}", i.instance))(e)),
            }
            match nss.delete(&i.instance, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_404(&e) || is_409(&e) => {}
                Err(e) => return Err(kube_err(format!("deleting namespace {}", i.instance))(e)),
            }
            removed.containers.extend(i.containers.iter().map(|c| c.name.clone()));
            removed.networks.push(i.instance.clone());
        }
        let t0 = Instant::now();
        for i in &found {
            loop {
                match nss.get_opt(&i.instance).await.map_err(kube_err(format!("reading namespace {}", i.instance)))? {
                    None => break,
                    Some(_) if t0.elapsed() > DELETE_TIMEOUT => {
                        return Err(BackendError::Kube {
                            op: format!("deleting namespace {}", i.instance),
                            detail: format!("still terminating after {} s; the cluster's namespace controller (kube-controller-manager) removes it", DELETE_TIMEOUT.as_secs()),
                        })
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
        Ok(removed)
    }

    pub async fn logs(&self, container: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String, BackendError>>, BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let lp = LogParams { container: Some("main".into()), follow, tail_lines: Some(tail as i64), ..Default::default() };
        let reader = self.pods(&ns).log_stream(&pod, &lp).await.map_err(kube_err(format!("reading the log of {container}")))?;
        Ok(reader.lines().map_ok(|l| format!("{l}\n")).map_err(|e| BackendError::Kube { op: "reading logs".into(), detail: e.to_string() }).boxed())
    }

    /// The node resolves images itself (`up` says which one it could not get).
    pub async fn missing_images(&self, _images: &[String]) -> Result<Vec<String>, BackendError> {
        Ok(vec![])
    }

    pub async fn ip(&self, container: &str) -> Result<String, BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let p = self.pods(&ns).get(&pod).await.map_err(kube_err(format!("reading pod {pod}")))?;
        p.status.and_then(|s| s.pod_ip).ok_or_else(|| BackendError::Kube { op: format!("finding the address of {container}"), detail: "the pod has none (is it running?)".into() })
    }

    async fn resource(&self, api_version: &str, kind: &str) -> Result<Option<kube::discovery::ApiResource>, BackendError> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, _)) => Ok(Some(ar)),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(kube_err(format!("asking the cluster whether it serves {api_version} {kind}"))(e)),
        }
    }

    /// How an image starts: read from the local Docker engine when it has the
    /// image (a CI machine that built it), else from its registry.
    pub async fn image_command(&self, image: &str) -> Result<(Vec<String>, Vec<String>), BackendError> {
        if let Ok(docker) = super::DockerBackend::connect() {
            if docker.has_image(image).await {
                return docker.image_command(image).await;
            }
        }
        crate::images::registry::image_command(image).await.map_err(|detail| BackendError::ImageMissing {
            image: image.into(),
            hint: format!("lab reads how the image starts from this machine's Docker engine or from its registry (anonymously), and could do neither: {detail}"),
        })
    }

    /// The supervisor leaves `exit` and `stopped` when the program ended by itself.
    pub async fn exited(&self, container: &str) -> Result<Option<(i64, bool)>, BackendError> {
        let (ns, pod) = self.locate(container).await?;
        let out = self.exec(&ns, &pod, &format!("if [ -e {RUN_DIR}/stopped ] && [ ! -e {RUN_DIR}/pid ] && [ -e {RUN_DIR}/exit ]; then cat {RUN_DIR}/exit; fi")).await?;
        Ok(out.trim().parse::<i64>().ok().map(|c| (c, false)))
    }

    pub async fn serves_kind(&self, api_version: &str, kind: &str) -> Result<bool, BackendError> {
        Ok(self.resource(api_version, kind).await?.is_some())
    }

    async fn dynamic(&self, ns: &str, o: &Value) -> Result<(Api<kube::api::DynamicObject>, String), BackendError> {
        let (av, kind) = (o["apiVersion"].as_str().unwrap_or_default(), o["kind"].as_str().unwrap_or_default());
        let ar = self.resource(av, kind).await?.ok_or_else(|| BackendError::Kube { op: format!("applying {kind}"), detail: format!("the cluster does not serve {av} {kind}") })?;
        Ok((Api::namespaced_with(self.client.clone(), ns, &ar), o["metadata"]["name"].as_str().unwrap_or_default().to_string()))
    }

    /// A kubeconfig for one student that reaches only their instance's
    /// namespace (`k8s/student.yaml.tera`), with a token from the
    /// TokenRequest API that expires after `expires`; and when it expires.
    pub async fn student_kubeconfig(&self, instance: &str, lab: &str, student: &str, expires: Duration) -> Result<(String, String), BackendError> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
        let nss: Api<Namespace> = Api::all(self.client.clone());
        if nss.get_opt(instance).await.map_err(kube_err(format!("reading namespace {instance}")))?.is_none() {
            return Err(BackendError::Kube {
                op: format!("credentials for {student}"),
                detail: format!("namespace {instance} does not exist (bring the class up first: lab class up {lab} --roster FILE)"),
            });
        }
        self.apply_objects(instance, &objects::student_objects(instance, lab, student)).await?;
        let tr = TokenRequest { spec: Some(TokenRequestSpec { expiration_seconds: Some(expires.as_secs() as i64), ..Default::default() }), ..Default::default() };
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), instance);
        let got = sas.create_token_request("lab-student", &PostParams::default(), &tr).await.map_err(kube_err(format!("requesting a token for {student}")))?;
        let status = got.status.ok_or_else(|| BackendError::Kube { op: format!("requesting a token for {student}"), detail: "the API server returned no token".into() })?;
        let mut cluster = serde_json::json!({"server": self.server});
        match &self.root_cert {
            _ if self.insecure => cluster["insecure-skip-tls-verify"] = true.into(),
            Some(certs) if !certs.is_empty() => {
                let pem: String = certs.iter().map(|der| pem("CERTIFICATE", der)).collect();
                cluster["certificate-authority-data"] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem).into();
            }
            _ => {}
        }
        let kc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": cluster}],
            "users": [{"name": student, "user": {"token": status.token}}],
            "contexts": [{"name": instance, "context": {"cluster": "lab", "user": student, "namespace": instance}}],
            "current-context": instance,
        });
        Ok((serde_yaml::to_string(&kc).expect("a kubeconfig serializes"), status.expiration_timestamp.map(|t| t.0.to_string()).unwrap_or_else(|| "when the API server says".into())))
    }

    pub async fn apply_objects(&self, ns: &str, objs: &[Value]) -> Result<(), BackendError> {
        for o in objs {
            let (api, name) = self.dynamic(ns, o).await?;
            api.patch(&name, &apply_params(), &Patch::Apply(o)).await.map_err(kube_err(format!("applying {} {name}", o["kind"].as_str().unwrap_or_default())))?;
        }
        Ok(())
    }

    pub async fn delete_objects(&self, ns: &str, objs: &[Value]) -> Result<(), BackendError> {
        for o in objs {
            let (api, name) = match self.dynamic(ns, o).await {
                Ok(x) => x,
                // The kind is gone from the cluster (uninstalled): so are its objects.
                Err(BackendError::Kube { .. }) => continue,
                Err(e) => return Err(e),
            };
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(kube_err(format!("deleting {} {name}", o["kind"].as_str().unwrap_or_default()))(e)),
            }
        }
        Ok(())
    }

    pub async fn connects(&self, from: &str, ip: &str, port: u16) -> Result<bool, BackendError> {
        let (ns, pod) = self.locate(from).await?;
        let out = self.exec(&ns, &pod, &format!("if timeout 2 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null; then echo open; else echo closed; fi")).await?;
        Ok(out.trim() == "open")
    }

    pub async fn net_exec(&self, container: &str, _image: &str, _script: &str) -> Result<String, BackendError> {
        Err(BackendError::Unsupported {
            what: format!("changing the network inside {container} (iptables, tc)"),
            why: "that needs NET_ADMIN in the pod, which lab's pods do not have".into(),
            hint: "on a cluster, partitions and link faults go through lab's fault proxy: faults on proxied links (a dependency marked `proxy: true`, or the service's peers with `peers.proxy`) work on every cluster".into(),
        })
    }

    fn configmaps(&self, ns: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Faults are ConfigMaps labelled `lab.fault` in the instance's namespace.
    pub async fn record_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": format!("fault-{}", f.id), "namespace": f.instance, "labels": {labels::INSTANCE: f.instance, FAULT_LABEL: "true", "lab.fault-kind": f.kind}},
            "data": {"record": serde_json::to_string(f).expect("record serializes")},
        });
        let cm: ConfigMap = serde_json::from_value(cm).expect("a ConfigMap");
        self.configmaps(&f.instance).create(&PostParams::default(), &cm).await.map_err(kube_err(format!("recording fault {}", f.id)))?;
        Ok(())
    }

    pub async fn mark_applied(&self, f: &FaultRecord) -> Result<(), BackendError> {
        let rec = serde_json::to_string(&FaultRecord { applied: true, ..f.clone() }).expect("record serializes");
        let patch = serde_json::json!({"data": {"record": rec}});
        self.configmaps(&f.instance).patch(&format!("fault-{}", f.id), &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(kube_err(format!("marking fault {} applied", f.id)))?;
        Ok(())
    }

    /// A ConfigMap `lab-verdict` in the student's namespace, applied (so a
    /// new verdict replaces the one before).
    pub async fn record_verdict(&self, v: &crate::class::Verdict) -> Result<(), BackendError> {
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "lab-verdict", "namespace": v.instance, "labels": {labels::INSTANCE: v.instance, labels::LAB: v.lab, labels::STUDENT: v.student, "lab.verdict": "true"}},
            "data": {"verdict": serde_json::to_string(v).expect("verdict serializes")},
        });
        self.configmaps(&v.instance).patch("lab-verdict", &apply_params(), &Patch::Apply(&cm)).await.map_err(kube_err(format!("recording the verdict of {}", v.instance)))?;
        Ok(())
    }

    pub async fn verdicts(&self, lab: &str) -> Result<Vec<crate::class::Verdict>, BackendError> {
        let lp = ListParams::default().labels(&format!("lab.verdict,{}={lab}", labels::LAB));
        let list = Api::<ConfigMap>::all(self.client.clone()).list(&lp).await.map_err(kube_err("listing verdicts"))?;
        Ok(list.items.into_iter().filter_map(|c| serde_json::from_str(c.data?.get("verdict")?).ok()).collect())
    }

    pub async fn faults(&self, instance: Option<&str>) -> Result<Vec<FaultRecord>, BackendError> {
        let lp = ListParams::default().labels(FAULT_LABEL);
        let list = match instance {
            Some(i) => self.configmaps(i).list(&lp).await,
            None => Api::<ConfigMap>::all(self.client.clone()).list(&lp).await,
        }
        .map_err(kube_err("listing faults"))?;
        let mut out: Vec<FaultRecord> = list.items.into_iter().filter_map(|c| serde_json::from_str(c.data?.get("record")?).ok()).collect();
        out.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        Ok(out)
    }

    pub async fn clear_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        match self.configmaps(&f.instance).delete(&format!("fault-{}", f.id), &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(kube_err(format!("forgetting fault {}", f.id))(e)),
        }
    }

    pub async fn pull(&self, image: &str, _progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        Err(BackendError::Unsupported { what: format!("pulling {image}"), why: "a cluster's nodes pull their images themselves".into(), hint: "`lab up` names any image a node could not get".into() })
    }

    /// Open a port-forward on 127.0.0.1 for every container of the plan and
    /// point the plan's host ports at them: the port the instance was given
    /// when free (the learner's service may have been told its URL), another
    /// one otherwise. The forwards last as long as this process.
    pub async fn expose(&self, plan: &mut Plan) -> Result<(), BackendError> {
        let ns = plan.instance.clone();
        for c in &mut plan.containers {
            let listener = match tokio::net::TcpListener::bind(("127.0.0.1", c.port.host)).await {
                Ok(l) => l,
                Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| BackendError::Kube { op: "opening a port-forward".into(), detail: e.to_string() })?,
            };
            let local = listener.local_addr().map_err(|e| BackendError::Kube { op: "opening a port-forward".into(), detail: e.to_string() })?.port();
            if c.port.host != 0 && local != c.port.host {
                tracing::warn!("127.0.0.1:{} is taken; {} is reached on 127.0.0.1:{local} in this run", c.port.host, c.name);
            }
            c.port.host = local;
            let pods = self.pods(&ns);
            let pod = objects::pod_name(c);
            let port = c.port.container;
            tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    let pods = pods.clone();
                    let pod = pod.clone();
                    tokio::spawn(async move {
                        let _ = forward(pods, &pod, port, sock).await;
                    });
                }
            });
        }
        Ok(())
    }
}

/// One connection through a port-forward.
async fn forward(pods: Api<Pod>, pod: &str, port: u16, mut sock: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut pf = pods.portforward(pod, &[port]).await?;
    let stream = pf.take_stream(port).ok_or("no stream")?;
    relay(&mut sock, stream).await;
    pf.abort();
    Ok(())
}

/// Relay a local connection and a pod's port-forward stream, each direction
/// on its own: what the pod sent is delivered in full even when the pod no
/// longer takes what the client sends (a server that closes a WebSocket for
/// a frame over its limit sends its close frame and shuts its socket while
/// the client is still writing). The client's bytes the pod will not take
/// are read and dropped for a moment, so that closing the local socket
/// does not reset it before the client has read the pod's last words.
async fn relay(sock: &mut tokio::net::TcpStream, stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) {
    use tokio::io::AsyncWriteExt;
    let (mut cr, mut cw) = sock.split();
    let (mut sr, mut sw) = tokio::io::split(stream);
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
        let _ = tokio::io::copy(&mut cr, &mut tokio::io::sink()).await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut up => down.await,
        _ = &mut down => {
            let _ = tokio::time::timeout(Duration::from_secs(2), up).await;
        }
    }
}

/// What a pod's state reads as next to Docker's container states.
fn pod_state(p: &Pod) -> String {
    if p.metadata.deletion_timestamp.is_some() {
        return "removing".into();
    }
    let status = p.status.clone().unwrap_or_default();
    let cs = status.container_statuses.as_ref().and_then(|v| v.first());
    match (status.phase.as_deref(), cs) {
        (Some("Running"), Some(c)) if c.ready => "running".into(),
        (Some("Running"), Some(_)) => "running (not ready)".into(),
        (Some(phase), _) => phase.to_ascii_lowercase(),
        (None, _) => "pending".into(),
    }
}

fn short(script: &str) -> String {
    let s: String = script.chars().take(60).collect();
    if s.len() < script.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// The file to ship for `path`: a copy without debug sections when `objcopy`
/// makes one (a debug build of lab is ten times its stripped size), cached
/// next to lab's other build outputs; the file itself otherwise.
fn shippable(path: &Path) -> std::io::Result<PathBuf> {
    let meta = std::fs::metadata(path)?;
    if meta.len() < 64 << 20 {
        return Ok(path.to_path_buf());
    }
    let stamp = format!("{}-{}", meta.len(), meta.modified()?.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let dir = crate::build::out_dir("ship");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{}-{stamp}", path.file_name().and_then(|f| f.to_str()).unwrap_or("program")));
    if out.is_file() {
        return Ok(out);
    }
    // Copies of earlier versions of the same program are of no more use.
    let stem = format!("{}-", path.file_name().and_then(|f| f.to_str()).unwrap_or("program"));
    for old in std::fs::read_dir(&dir)?.flatten() {
        if old.file_name().to_str().and_then(|n| n.strip_prefix(&stem)).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '-')) {
            let _ = std::fs::remove_file(old.path());
        }
    }
    let tmp = out.with_extension("tmp");
    let ok = std::process::Command::new("objcopy").arg("--strip-debug").arg(path).arg(&tmp).status().map(|s| s.success()).unwrap_or(false);
    if ok && std::fs::rename(&tmp, &out).is_ok() {
        Ok(out)
    } else {
        let _ = std::fs::remove_file(&tmp);
        Ok(path.to_path_buf())
    }
}

/// A PEM block of DER bytes.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let body: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pod that answers and closes while the client is still sending (a
    /// WebSocket server closing for a frame over its limit): the client
    /// still reads the answer, then the end, not a reset.
    #[tokio::test]
    async fn the_pods_last_words_reach_the_client_though_it_was_still_sending() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (pod_side, mut pod) = tokio::io::duplex(4096);
        let forwarder = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            relay(&mut sock, pod_side).await;
        });
        let pod = tokio::spawn(async move {
            let mut first = [0u8; 1024];
            pod.read_exact(&mut first).await.unwrap();
            pod.write_all(b"too big: closing").await.unwrap();
            // Closed with what the client still sends unread.
        });
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = client.into_split();
        let sender = tokio::spawn(async move {
            let chunk = vec![7u8; 64 << 10];
            for _ in 0..64 {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        });
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await.expect("the relay ends");
        assert!(read.is_ok(), "the client read an error, not the pod's words and the end: {read:?} after {:?}", String::from_utf8_lossy(&got));
        assert_eq!(got, b"too big: closing");
        pod.await.unwrap();
        let _ = sender.await;
        forwarder.await.unwrap();
    }
}
