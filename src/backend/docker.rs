//! The Docker backend, on bollard. One network per instance, labels on
//! everything, ports published on 127.0.0.1 only. The labels are the state:
//! `down` and a later `up` find everything by them, also after a crash.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::container::{Config, CreateContainerOptions, ListContainersOptions, LogOutput, LogsOptions, NetworkingConfig, RemoveContainerOptions, RestartContainerOptions, StopContainerOptions};
use bollard::image::CreateImageOptions;
use bollard::models::{EndpointSettings, HostConfig, PortBinding};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};

/// Where lab takes a network's subnet when the engine's default pools are spent.
const DEFAULT_SUBNET_POOL: &str = "10.213.0.0/16";

/// The /24 subnets of an IPv4 network of /16 to /24.
fn pool_subnets(pool: &str) -> Option<Vec<String>> {
    let (addr, bits) = pool.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if !(16..=24).contains(&bits) {
        return None;
    }
    let base = u32::from(addr) & (u32::MAX << (32 - bits));
    Some((0..1u32 << (24 - bits)).map(|i| format!("{}/24", std::net::Ipv4Addr::from(base + (i << 8)))).collect())
}
use bollard::volume::{ListVolumesOptions, RemoveVolumeOptions};
use bollard::Docker;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{BackendError, ContainerState, Converged, FaultRecord, InstanceState, Removed};
use crate::plan::{labels, ContainerSpec, Plan, Reach, Role};

/// The label on a fault's record volume, holding the record as JSON.
const FAULT_LABEL: &str = "lab.fault";
/// A student's last verdict, on a labelled volume of their instance.
const VERDICT_LABEL: &str = "lab.verdict";

/// Memory of a container (no swap beyond it): the learner's service 512 MiB, a dependency 1 GiB (as the pods' limits).
/// The learner's service runs as nobody, with no capability, no way to gain
/// privileges and a read-only root file system; `/tmp` is its writable data
/// folder (a volume of the container, so data outlives a restart). lab's own
/// faults need none of it: they act from the engine and from helpers.
fn least_privilege(spec: &ContainerSpec) -> HostConfig {
    if spec.role != Role::Service {
        return HostConfig::default();
    }
    HostConfig {
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        readonly_rootfs: Some(true),
        mounts: Some(vec![bollard::models::Mount { target: Some(DATA_DIR.into()), typ: Some(bollard::models::MountTypeEnum::VOLUME), ..Default::default() }]),
        ..Default::default()
    }
}

/// The writable folder of the learner's service.
pub use crate::plan::DATA_DIR;

/// A tar of the files of `dir` under `dest` (a path in the container, its
/// leading `/` dropped), readable by all and executables runnable by all.
pub fn folder_archive(dest: &str, dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.mode(tar::HeaderMode::Deterministic);
    archive.follow_symlinks(true);
    let rel = dest.trim_start_matches('/');
    if rel.is_empty() {
        // The folder's entries only: no `.` entry, whose owner and times the
        // unpacking user (nobody, in a pod) may not change.
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if p.is_dir() {
                archive.append_dir_all(e.file_name(), &p)?;
            } else {
                archive.append_path_with_name(&p, e.file_name())?;
            }
        }
    } else {
        archive.append_dir_all(rel, dir)?;
    }
    archive.into_inner()
}

/// The user the learner's service runs as (nobody, as on a cluster).
pub const SERVICE_USER: &str = "65534:65534";

/// On a network helper: `pid@host` of the lab process that made it.
const HELPER_PID_LABEL: &str = "lab.helper-of";

fn host_name() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether a network helper's lab process is gone: it ran on this host and
/// its pid is free, or (made elsewhere) it is older than any helper lives.
fn helper_orphaned(l: &HashMap<String, String>, created: i64) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if let Some((pid, host)) = l.get(HELPER_PID_LABEL).and_then(|v| v.split_once('@')) {
        if host == host_name() {
            if let Ok(pid) = pid.parse::<i32>() {
                return matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH));
            }
        }
    }
    now - created > 300
}

/// The volume holding a fault's record: the write-ahead one, or the one written once it took effect.
fn fault_volume(f: &FaultRecord, applied: bool) -> String {
    format!("{}-fault-{}{}", f.instance, f.id, if applied { "-applied" } else { "" })
}

/// A connection to a Docker engine.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
}

fn op_err(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> BackendError {
    let op = op.into();
    move |e| match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => BackendError::Docker { op, detail: format!("{message} (HTTP {status_code})") },
        other => BackendError::Unreachable { detail: crate::probe::http::error_chain(&other) },
    }
}

/// Docker's words when a container's published host port is held elsewhere:
/// by another container (its port allocator) or by another program (the
/// userland proxy cannot bind).
fn port_taken(message: &str) -> bool {
    message.contains("port is already allocated") || (message.contains("bind") && message.contains("address already in use"))
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl DockerBackend {
    /// Connect using DOCKER_HOST or the local socket. Does not talk to the engine yet.
    pub fn connect() -> Result<Self, BackendError> {
        let docker = Docker::connect_with_local_defaults().map_err(|e| BackendError::Unreachable { detail: e.to_string() })?;
        Ok(DockerBackend { docker })
    }

    /// The bollard client, for image baking.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    pub async fn ping(&self) -> Result<(), BackendError> {
        match tokio::time::timeout(Duration::from_secs(5), self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BackendError::Unreachable { detail: crate::probe::http::error_chain(&e) }),
            Err(_) => Err(BackendError::Unreachable { detail: "no answer within 5 s".into() }),
        }
    }

    async fn list(&self, filter_label: String) -> Result<Vec<bollard::models::ContainerSummary>, BackendError> {
        self.list_with(filter_label, false).await
    }

    /// The instance's containers; with `helpers`, also the network helpers of faults being applied.
    async fn list_with(&self, filter_label: String, helpers: bool) -> Result<Vec<bollard::models::ContainerSummary>, BackendError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![filter_label]);
        let all = self.docker.list_containers(Some(ListContainersOptions { all: true, filters, ..Default::default() })).await.map_err(op_err("listing containers"))?;
        // A Kubernetes node on this engine (a kubelet with dockershim) copies
        // a pod's labels onto its containers: those belong to the cluster.
        let mut out = Vec::new();
        for c in all.into_iter().filter(|c| !c.labels.as_ref().is_some_and(|l| l.contains_key("io.kubernetes.pod.name"))) {
            let l = c.labels.clone().unwrap_or_default();
            if helpers || l.get(labels::ROLE).map(String::as_str) != Some("helper") {
                out.push(c);
                continue;
            }
            // A network helper is not part of the instance; one whose lab process
            // died (kill -9 mid-fault) is removed by the next command that sees it.
            if helper_orphaned(&l, c.created.unwrap_or(0)) {
                if let Some(name) = c.names.as_ref().and_then(|n| n.first()) {
                    tracing::info!("removing {name}, a network helper left by a lab process that is gone");
                    let _ = self.remove(name.trim_start_matches('/')).await;
                }
            }
        }
        Ok(out)
    }

    /// The instance's network, and its backstage network where it has one.
    async fn ensure_networks(&self, plan: &Plan) -> Result<(), BackendError> {
        for name in std::iter::once(&plan.network).chain(plan.backstage.as_ref()) {
            let mut filters = HashMap::new();
            filters.insert("name".to_string(), vec![name.clone()]);
            let nets = self.docker.list_networks(Some(ListNetworksOptions { filters })).await.map_err(op_err("listing networks"))?;
            if nets.iter().any(|n| n.name.as_deref() == Some(name.as_str())) {
                continue;
            }
            let labels: HashMap<String, String> = plan.labels.clone().into_iter().collect();
            let res = self.docker.create_network(CreateNetworkOptions { name: name.clone(), driver: "bridge".into(), check_duplicate: true, labels: labels.clone(), ..Default::default() }).await;
            match res {
                Ok(_) => {}
                // Another `up` of the same instance made it in the meantime.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
                // The engine's default address pools are spent (about 30
                // networks): a class on one host needs more; lab takes a /24
                // of its own pool.
                Err(e) if e.to_string().contains("non-overlapping IPv4 address pool") => self.create_network_in_pool(name, labels).await?,
                Err(e) => return Err(op_err(format!("creating network {name}"))(e)),
            }
        }
        Ok(())
    }

    /// Creates a network on a free /24 of `LAB_SUBNET_POOL` (default
    /// 10.213.0.0/16), trying another where a concurrent `up` took it first.
    async fn create_network_in_pool(&self, name: &str, labels: HashMap<String, String>) -> Result<(), BackendError> {
        let pool = std::env::var("LAB_SUBNET_POOL").unwrap_or_else(|_| DEFAULT_SUBNET_POOL.to_string());
        let subnets = pool_subnets(&pool)
            .ok_or_else(|| BackendError::Docker { op: format!("creating network {name}"), detail: format!("LAB_SUBNET_POOL={pool}: give an IPv4 network of /16 to /24, such as 10.213.0.0/16") })?;
        for _attempt in 0..8 {
            let nets = self.docker.list_networks(None::<ListNetworksOptions<String>>).await.map_err(op_err("listing networks"))?;
            let used: Vec<String> = nets.iter().filter_map(|n| n.ipam.as_ref()?.config.as_ref()).flatten().filter_map(|c| c.subnet.clone()).collect();
            // Start at a place of the name's own, so concurrent `up`s rarely meet.
            let start = name.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % subnets.len();
            let Some(subnet) = subnets.iter().cycle().skip(start).take(subnets.len()).find(|s| !used.contains(s)) else {
                return Err(BackendError::Docker {
                    op: format!("creating network {name}"),
                    detail: format!("the engine's address pools and lab's ({pool}) are all in use; `lab down` unused instances or set LAB_SUBNET_POOL to a larger free network"),
                });
            };
            let ipam = bollard::models::Ipam { config: Some(vec![bollard::models::IpamConfig { subnet: Some(subnet.clone()), ..Default::default() }]), ..Default::default() };
            let res =
                self.docker.create_network(CreateNetworkOptions { name: name.to_string(), driver: "bridge".into(), check_duplicate: true, labels: labels.clone(), ipam, ..Default::default() }).await;
            match res {
                Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                    tracing::debug!(network = %name, %subnet, "network on lab's own address pool");
                    return Ok(());
                }
                Err(e) if e.to_string().contains("overlaps") => continue,
                Err(e) => return Err(op_err(format!("creating network {name} on {subnet}"))(e)),
            }
        }
        Err(BackendError::Docker { op: format!("creating network {name}"), detail: format!("every free subnet of {pool} tried was taken meanwhile by another network") })
    }

    async fn create(&self, plan: &Plan, spec: &ContainerSpec, digest: &str) -> Result<(), BackendError> {
        let port_key = format!("{}/tcp", spec.port.container);
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(labels::SPEC.into(), digest.to_string());
        labels.insert(labels::HOST_PORT.into(), spec.port.host.to_string());
        let binds: Vec<String> = spec.mounts.iter().map(|m| format!("{}:{}{}", m.host.display(), m.container, if m.read_only { ":ro" } else { "" })).collect();
        // A dependency behind the proxy is on the backstage network only, with its aliases there.
        let backstage = plan.backstage.clone().unwrap_or_else(|| plan.network.clone());
        let network = if spec.reach == Reach::Backstage { backstage.clone() } else { plan.network.clone() };
        let mut endpoints = HashMap::new();
        endpoints.insert(network.clone(), EndpointSettings { aliases: Some(spec.aliases.clone()), ..Default::default() });
        let config = Config {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            working_dir: spec.workdir.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            hostname: Some(format!("{}-{}", spec.service, spec.node)),
            user: (spec.role == Role::Service).then(|| SERVICE_USER.to_string()),
            exposed_ports: Some(HashMap::from([(port_key.clone(), HashMap::new())])),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(port_key, Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(spec.port.host.to_string()) }]))])),
                binds: (!binds.is_empty()).then_some(binds),
                network_mode: Some(network),
                extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
                // Limits as on a cluster: one runaway service cannot starve a shared host.
                memory: Some(spec.limits.memory as i64),
                memory_swap: Some(spec.limits.memory as i64),
                pids_limit: Some(spec.limits.pids as i64),
                nano_cpus: Some((spec.limits.cpus * 1e9) as i64),
                ..least_privilege(spec)
            }),
            networking_config: Some(NetworkingConfig { endpoints_config: endpoints }),
            stop_timeout: Some(5),
            ..Default::default()
        };
        let res = self.docker.create_container(Some(CreateContainerOptions { name: spec.name.clone(), platform: None }), config).await;
        match res {
            Ok(_) if spec.reach == Reach::Both => self.join_backstage(&spec.name, &backstage).await,
            Ok(_) => Ok(()),
            Err(e) if is_404(&e) => Err(BackendError::ImageMissing {
                image: spec.image.clone(),
                hint: "bake the local image set with `lab images bake` and use `--images debian`, or pull it with `lab images pull`".into(),
            }),
            Err(e) => Err(op_err(format!("creating container {}", spec.name))(e)),
        }
    }

    /// Put the fault proxy on the backstage network too.
    async fn join_backstage(&self, container: &str, backstage: &str) -> Result<(), BackendError> {
        let opts = bollard::network::ConnectNetworkOptions { container: container.to_string(), endpoint_config: EndpointSettings::default() };
        self.docker.connect_network(backstage, opts).await.map_err(op_err(format!("connecting {container} to {backstage}")))
    }

    async fn remove(&self, name: &str) -> Result<(), BackendError> {
        match self.docker.remove_container(name, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await {
            Ok(()) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(op_err(format!("removing container {name}"))(e)),
        }
    }

    pub async fn converge(&self, plan: &Plan) -> Result<Vec<(String, Converged)>, BackendError> {
        self.ensure_networks(plan).await?;
        let existing = self.list(format!("{}={}", labels::INSTANCE, plan.instance)).await?;
        let by_name: HashMap<String, &bollard::models::ContainerSummary> = existing.iter().filter_map(|c| Some((c.names.as_ref()?.first()?.trim_start_matches('/').to_string(), c))).collect();
        // Containers the plan no longer has.
        for name in by_name.keys() {
            if !plan.containers.iter().any(|c| &c.name == name) {
                self.remove(name).await?;
            }
        }
        let jobs = plan.containers.iter().map(|spec| async {
            let digest = spec.digest(&plan.network);
            let outcome = match by_name.get(&spec.name) {
                Some(c) if c.labels.as_ref().and_then(|l| l.get(labels::SPEC)) == Some(&digest) => {
                    // The proxy joins the backstage network after it is created (this
                    // engine's API takes one network at creation): a lab killed in
                    // between left it off, and this up puts it on.
                    if let (Reach::Both, Some(backstage)) = (spec.reach, &plan.backstage) {
                        let on = c.network_settings.as_ref().and_then(|n| n.networks.as_ref()).is_some_and(|n| n.contains_key(backstage));
                        if !on {
                            self.join_backstage(&spec.name, backstage).await?;
                        }
                    }
                    Converged::Kept
                }
                Some(_) => {
                    self.remove(&spec.name).await?;
                    self.create(plan, spec, &digest).await?;
                    Converged::Recreated
                }
                None => {
                    self.create(plan, spec, &digest).await?;
                    Converged::Created
                }
            };
            Ok::<_, BackendError>((spec.name.clone(), outcome))
        });
        futures_util::future::try_join_all(jobs).await
    }

    pub async fn start(&self, name: &str) -> Result<(), BackendError> {
        match self.docker.start_container::<String>(name, None).await {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) if is_404(&e) => Err(BackendError::NoContainer(name.into())),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) if port_taken(&message) => Err(BackendError::PortTaken { container: name.into(), detail: message }),
            Err(e) => Err(op_err(format!("starting {name}"))(e)),
        }
    }

    pub async fn stop(&self, name: &str, grace: Duration) -> Result<(), BackendError> {
        match self.docker.stop_container(name, Some(StopContainerOptions { t: grace.as_secs() as i64 })).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) if is_404(&e) => Err(BackendError::NoContainer(name.into())),
            Err(e) => Err(op_err(format!("stopping {name}"))(e)),
        }
    }

    pub async fn restart(&self, name: &str, grace: Duration) -> Result<(), BackendError> {
        self.docker.restart_container(name, Some(RestartContainerOptions { t: grace.as_secs() as isize })).await.map_err(|e| {
            if is_404(&e) {
                BackendError::NoContainer(name.into())
            } else {
                op_err(format!("restarting {name}"))(e)
            }
        })
    }

    pub async fn instances(&self, instance: Option<&str>) -> Result<Vec<InstanceState>, BackendError> {
        let filter = match instance {
            Some(i) => format!("{}={i}", labels::INSTANCE),
            None => labels::INSTANCE.to_string(),
        };
        let containers = self.list(filter.clone()).await?;
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![filter]);
        let nets = self.docker.list_networks(Some(ListNetworksOptions { filters })).await.map_err(op_err("listing networks"))?;
        let mut out: BTreeMap<String, InstanceState> = BTreeMap::new();
        let entry = |out: &mut BTreeMap<String, InstanceState>, l: &HashMap<String, String>| -> Option<String> {
            let inst = l.get(labels::INSTANCE)?.clone();
            out.entry(inst.clone()).or_insert_with(|| InstanceState {
                instance: inst.clone(),
                lab: l.get(labels::LAB).cloned().unwrap_or_default(),
                student: l.get(labels::STUDENT).cloned(),
                target: l.get(labels::TARGET).cloned(),
                containers: vec![],
                networks: vec![],
            });
            Some(inst)
        };
        for c in containers {
            let l = c.labels.clone().unwrap_or_default();
            let Some(inst) = entry(&mut out, &l) else {
                continue;
            };
            let port = c.ports.as_ref().and_then(|ps| ps.iter().find(|p| p.ip.as_deref() == Some("127.0.0.1") && p.public_port.is_some()).cloned());
            let state = ContainerState {
                name: c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default(),
                service: l.get(labels::SERVICE).cloned().unwrap_or_default(),
                node: l.get(labels::NODE).and_then(|n| n.parse().ok()).unwrap_or(1),
                role: if l.get(labels::ROLE).map(String::as_str) == Some("service") { Role::Service } else { Role::Dependency },
                state: c.state.clone().unwrap_or_default(),
                image: c.image.clone().unwrap_or_default(),
                // A stopped container publishes nothing; its label still says which port is its.
                host_port: port.as_ref().and_then(|p| p.public_port).or_else(|| l.get(labels::HOST_PORT).and_then(|p| p.parse().ok())),
                container_port: port.as_ref().map(|p| p.private_port),
                labels: l.into_iter().collect(),
            };
            out.get_mut(&inst).expect("inserted").containers.push(state);
        }
        for n in nets {
            let l = n.labels.clone().unwrap_or_default();
            if let Some(inst) = entry(&mut out, &l) {
                out.get_mut(&inst).expect("inserted").networks.push(n.name.clone().unwrap_or_default());
            }
        }
        let mut v: Vec<InstanceState> = out.into_values().collect();
        for i in &mut v {
            i.containers.sort_by(|a, b| (a.role == Role::Service, &a.service, a.node).cmp(&(b.role == Role::Service, &b.service, b.node)));
        }
        Ok(v)
    }

    pub async fn down(&self, instance: Option<&str>) -> Result<Removed, BackendError> {
        let mut removed = Removed::default();
        let filter = match instance {
            Some(i) => format!("{}={i}", labels::INSTANCE),
            None => labels::INSTANCE.to_string(),
        };
        let containers = self.list_with(filter.clone(), true).await?;
        let names: Vec<String> = containers.iter().filter_map(|c| c.names.as_ref()?.first().map(|n| n.trim_start_matches('/').to_string())).collect();
        futures_util::future::try_join_all(names.iter().map(|n| self.remove(n))).await?;
        removed.containers = names;
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![filter.clone()]);
        let nets = self.docker.list_networks(Some(ListNetworksOptions { filters: filters.clone() })).await.map_err(op_err("listing networks"))?;
        for n in nets {
            let name = n.name.clone().unwrap_or_default();
            // By id: two networks of one name (made by racing `up`s of old) are both removed.
            match self.docker.remove_network(n.id.as_deref().unwrap_or(&name)).await {
                Ok(()) => removed.networks.push(name),
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(op_err(format!("removing network {name}"))(e)),
            }
        }
        let vols = self.docker.list_volumes(Some(ListVolumesOptions { filters })).await.map_err(op_err("listing volumes"))?;
        for v in vols.volumes.unwrap_or_default() {
            match self.docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: true })).await {
                Ok(()) => removed.volumes.push(v.name),
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(op_err(format!("removing volume {}", v.name))(e)),
            }
        }
        Ok(removed)
    }

    pub async fn logs(&self, name: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String, BackendError>>, BackendError> {
        self.docker.inspect_container(name, None).await.map_err(|e| if is_404(&e) { BackendError::NoContainer(name.into()) } else { op_err("inspecting")(e) })?;
        let opts = LogsOptions::<String> { follow, stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        let stream = self.docker.logs(name, Some(opts)).map(|item| match item {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } | LogOutput::StdIn { message }) => Ok(String::from_utf8_lossy(&message).to_string()),
            Err(e) => Err(op_err("reading logs")(e)),
        });
        Ok(stream.boxed())
    }

    pub async fn missing_images(&self, images: &[String]) -> Result<Vec<String>, BackendError> {
        let mut missing = Vec::new();
        for img in images {
            match self.docker.inspect_image(img).await {
                Ok(_) => {}
                Err(e) if is_404(&e) => missing.push(img.clone()),
                Err(e) => return Err(op_err(format!("inspecting image {img}"))(e)),
            }
        }
        Ok(missing)
    }

    pub async fn kill(&self, name: &str, signal: &str) -> Result<(), BackendError> {
        self.docker.kill_container(name, Some(bollard::container::KillContainerOptions { signal })).await.map_err(|e| {
            if is_404(&e) {
                BackendError::NoContainer(name.into())
            } else {
                op_err(format!("killing {name}"))(e)
            }
        })
    }

    pub async fn memory(&self, name: &str) -> Result<Option<(u64, Option<u64>)>, BackendError> {
        use futures_util::StreamExt;
        let mut s = self.docker.stats(name, Some(bollard::container::StatsOptions { stream: false, one_shot: true }));
        match s.next().await {
            Some(Ok(st)) => Ok(st.memory_stats.usage.map(|u| (u, st.memory_stats.max_usage))),
            Some(Err(e)) if is_404(&e) => Err(BackendError::NoContainer(name.into())),
            Some(Err(e)) => Err(op_err("reading the memory of")(e)),
            None => Ok(None),
        }
    }

    pub async fn exited(&self, name: &str) -> Result<Option<(i64, bool)>, BackendError> {
        let info = self.docker.inspect_container(name, None).await.map_err(|e| if is_404(&e) { BackendError::NoContainer(name.into()) } else { op_err("inspecting")(e) })?;
        let st = info.state.unwrap_or_default();
        let ended = matches!(st.status, Some(bollard::models::ContainerStateStatusEnum::EXITED | bollard::models::ContainerStateStatusEnum::DEAD));
        Ok(ended.then(|| (st.exit_code.unwrap_or(0), st.oom_killed.unwrap_or(false))))
    }

    pub async fn pause(&self, name: &str, pause: bool) -> Result<(), BackendError> {
        let res = if pause { self.docker.pause_container(name).await } else { self.docker.unpause_container(name).await };
        res.map_err(|e| if is_404(&e) { BackendError::NoContainer(name.into()) } else { op_err(format!("{} {name}", if pause { "pausing" } else { "unpausing" }))(e) })
    }

    /// Its address on the instance's network (the only one it has there), or
    /// on its backstage network for a dependency behind the proxy.
    pub async fn ip(&self, name: &str) -> Result<String, BackendError> {
        let ips = self.ips(name).await?;
        ips.into_iter().next().ok_or_else(|| BackendError::Docker { op: format!("finding the address of {name}"), detail: "it has none (is it running?)".into() })
    }

    /// Every address of a container, the one on the instance's network first.
    pub async fn ips(&self, name: &str) -> Result<Vec<String>, BackendError> {
        let info = self.docker.inspect_container(name, None).await.map_err(|e| if is_404(&e) { BackendError::NoContainer(name.into()) } else { op_err("inspecting")(e) })?;
        let instance = info.config.as_ref().and_then(|c| c.labels.as_ref()).and_then(|l| l.get(labels::INSTANCE).cloned()).unwrap_or_default();
        let mut nets: Vec<(String, String)> =
            info.network_settings.and_then(|n| n.networks).unwrap_or_default().into_iter().filter_map(|(net, e)| Some((net, e.ip_address.filter(|ip| !ip.is_empty())?))).collect();
        nets.sort_by_key(|(net, _)| *net != instance);
        Ok(nets.into_iter().map(|(_, ip)| ip).collect())
    }

    pub async fn net_exec(&self, name: &str, image: &str, script: &str) -> Result<String, BackendError> {
        let info = self.docker.inspect_container(name, None).await.map_err(|e| if is_404(&e) { BackendError::NoContainer(name.into()) } else { op_err("inspecting")(e) })?;
        let instance = info.config.and_then(|c| c.labels).and_then(|l| l.get(labels::INSTANCE).cloned()).unwrap_or_default();
        let helper = format!("{name}-netfx-{:08x}", rand::random::<u32>());
        let mut l = HashMap::new();
        l.insert(labels::INSTANCE.to_string(), instance);
        l.insert(labels::ROLE.to_string(), "helper".to_string());
        l.insert(HELPER_PID_LABEL.to_string(), format!("{}@{}", std::process::id(), host_name()));
        let config = Config {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![script.to_string()]),
            labels: Some(l),
            host_config: Some(HostConfig { network_mode: Some(format!("container:{name}")), cap_add: Some(vec!["NET_ADMIN".into()]), ..Default::default() }),
            ..Default::default()
        };
        self.docker.create_container(Some(CreateContainerOptions { name: helper.clone(), platform: None }), config).await.map_err(|e| {
            if is_404(&e) {
                BackendError::ImageMissing { image: image.into(), hint: "network faults run in a helper of the base image: `lab images bake base` (or pull it)".into() }
            } else {
                op_err(format!("creating a network helper for {name}"))(e)
            }
        })?;
        let result = async {
            self.docker.start_container::<String>(&helper, None).await.map_err(op_err(format!("starting the network helper of {name}")))?;
            let mut code = 0;
            let mut waits = self.docker.wait_container::<String>(&helper, None);
            while let Some(w) = waits.next().await {
                match w {
                    Ok(r) => code = r.status_code,
                    // A non-zero exit comes back as an error carrying the code.
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                    Err(e) => return Err(op_err("waiting for the network helper")(e)),
                }
            }
            let mut out = String::new();
            let mut logs = self.docker.logs::<String>(&helper, Some(LogsOptions { stdout: true, stderr: true, ..Default::default() }));
            while let Some(Ok(chunk)) = logs.next().await {
                out.push_str(&chunk.to_string());
            }
            if code != 0 {
                return Err(BackendError::Docker { op: format!("network change in {name}"), detail: format!("exit {code}: {}", out.trim()) });
            }
            Ok(out)
        }
        .await;
        let _ = self.remove(&helper).await;
        result
    }

    /// Stop the network changes this process still has under way in the
    /// instance: the helpers of a fault whose future was dropped (Ctrl-C mid
    /// `net_exec`) go on in Docker unless removed, and would make their rules
    /// after the revert that follows. Removing one mid-script leaves at most
    /// part of a chain, which the revert removes with the rest.
    pub async fn settle(&self, instance: &str) -> Result<(), BackendError> {
        let ours = format!("{}@{}", std::process::id(), host_name());
        for c in self.list_with(format!("{}={instance}", labels::INSTANCE), true).await? {
            let l = c.labels.clone().unwrap_or_default();
            if l.get(labels::ROLE).map(String::as_str) == Some("helper") && l.get(HELPER_PID_LABEL) == Some(&ours) {
                if let Some(name) = c.names.as_ref().and_then(|n| n.first()) {
                    self.remove(name.trim_start_matches('/')).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn record_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        let mut l = HashMap::new();
        l.insert(labels::INSTANCE.to_string(), f.instance.clone());
        l.insert(FAULT_LABEL.to_string(), serde_json::to_string(f).expect("record serializes"));
        let name = fault_volume(f, f.applied);
        self.docker
            .create_volume(bollard::volume::CreateVolumeOptions { name: name.clone(), driver: "local".into(), labels: l, ..Default::default() })
            .await
            .map_err(op_err(format!("recording fault {name}")))?;
        Ok(())
    }

    /// Volume labels cannot change: each verdict is a new volume (named by
    /// its time), then the older ones of the instance go.
    pub async fn record_verdict(&self, v: &crate::class::Verdict) -> Result<(), BackendError> {
        let mut l = HashMap::new();
        l.insert(labels::INSTANCE.to_string(), v.instance.clone());
        l.insert(labels::LAB.to_string(), v.lab.clone());
        l.insert(labels::STUDENT.to_string(), v.student.clone());
        l.insert(VERDICT_LABEL.to_string(), serde_json::to_string(v).expect("verdict serializes"));
        let name = format!("{}-verdict-{}-{}", v.instance, v.at, std::process::id());
        self.docker
            .create_volume(bollard::volume::CreateVolumeOptions { name: name.clone(), driver: "local".into(), labels: l, ..Default::default() })
            .await
            .map_err(op_err(format!("recording the verdict of {}", v.instance)))?;
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![VERDICT_LABEL.to_string(), format!("{}={}", labels::INSTANCE, v.instance)]);
        let vols = self.docker.list_volumes(Some(ListVolumesOptions { filters })).await.map_err(op_err("listing verdicts"))?;
        for old in vols.volumes.unwrap_or_default().into_iter().filter(|o| o.name != name) {
            match self.docker.remove_volume(&old.name, Some(RemoveVolumeOptions { force: true })).await {
                Ok(()) => {}
                Err(e) if is_404(&e) => {}
                Err(e) => return Err(op_err(format!("removing an older verdict {}", old.name))(e)),
            }
        }
        Ok(())
    }

    pub async fn verdicts(&self, lab: &str) -> Result<Vec<crate::class::Verdict>, BackendError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![VERDICT_LABEL.to_string(), format!("{}={lab}", labels::LAB)]);
        let vols = self.docker.list_volumes(Some(ListVolumesOptions { filters })).await.map_err(op_err("listing verdicts"))?;
        let mut latest: BTreeMap<String, crate::class::Verdict> = BTreeMap::new();
        for v in vols.volumes.unwrap_or_default().into_iter().filter_map(|v| serde_json::from_str::<crate::class::Verdict>(v.labels.get(VERDICT_LABEL)?).ok()) {
            if latest.get(&v.instance).is_none_or(|o| o.at <= v.at) {
                latest.insert(v.instance.clone(), v);
            }
        }
        Ok(latest.into_values().collect())
    }

    pub async fn faults(&self, instance: Option<&str>) -> Result<Vec<FaultRecord>, BackendError> {
        let mut filters = HashMap::new();
        let mut label = vec![FAULT_LABEL.to_string()];
        if let Some(i) = instance {
            label.push(format!("{}={i}", labels::INSTANCE));
        }
        filters.insert("label".to_string(), label);
        let vols = self.docker.list_volumes(Some(ListVolumesOptions { filters })).await.map_err(op_err("listing faults"))?;
        let mut out: Vec<FaultRecord> = Vec::new();
        for r in vols.volumes.unwrap_or_default().into_iter().filter_map(|v| serde_json::from_str::<FaultRecord>(v.labels.get(FAULT_LABEL)?).ok()) {
            // A record marked applied and its write-ahead copy (a crash between the two writes): the applied one.
            match out.iter_mut().find(|x| x.id == r.id && x.instance == r.instance) {
                Some(x) => x.applied |= r.applied,
                None => out.push(r),
            }
        }
        out.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        Ok(out)
    }

    /// Volume labels cannot change: the applied record is a second volume,
    /// then the write-ahead one goes.
    pub async fn mark_applied(&self, f: &FaultRecord) -> Result<(), BackendError> {
        self.record_fault(&FaultRecord { applied: true, ..f.clone() }).await?;
        self.remove_fault_volume(&fault_volume(f, false)).await
    }

    pub async fn clear_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        self.remove_fault_volume(&fault_volume(f, false)).await?;
        self.remove_fault_volume(&fault_volume(f, true)).await
    }

    async fn remove_fault_volume(&self, name: &str) -> Result<(), BackendError> {
        match self.docker.remove_volume(name, Some(RemoveVolumeOptions { force: true })).await {
            Ok(()) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(op_err(format!("forgetting fault {name}"))(e)),
        }
    }

    pub async fn pull(&self, image: &str, progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        let mut stream = self.docker.create_image(Some(CreateImageOptions { from_image: image, ..Default::default() }), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error {
                        return Err(BackendError::Pull { image: image.into(), detail: err });
                    }
                    let line = [info.id.unwrap_or_default(), info.status.unwrap_or_default(), info.progress.unwrap_or_default()].join(" ");
                    progress(line.trim());
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => return Err(BackendError::Pull { image: image.into(), detail: message }),
                Err(e) => return Err(op_err(format!("pulling {image}"))(e)),
            }
        }
        Ok(())
    }

    /// Whether an image is on this engine.
    /// The image's entrypoint and command; pulled first when it is not here.
    pub async fn image_command(&self, image: &str) -> Result<(Vec<String>, Vec<String>), BackendError> {
        if !self.has_image(image).await {
            self.pull(image, &|_| {}).await.map_err(|e| match e {
                BackendError::Pull { detail, .. } => BackendError::ImageMissing {
                    image: image.into(),
                    hint: format!("it is not on this engine and pulling it failed ({detail}): `docker pull {image}`, or build it here (`docker images` lists what is)"),
                },
                e => e,
            })?;
        }
        let info = self.docker.inspect_image(image).await.map_err(op_err(format!("reading image {image}")))?;
        let cfg = info.config.unwrap_or_default();
        Ok((cfg.entrypoint.unwrap_or_default(), cfg.cmd.unwrap_or_default()))
    }

    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// Make `target` from `base` with one more file, `dest` (mode 755) holding
    /// `data`: a container of `base` is created (never started), the file put
    /// into it, the container committed and removed. Nothing is pulled. An
    /// image already tagged `target` is kept.
    pub async fn image_with_file(&self, base: &str, dest: &str, data: &[u8], target: &str) -> Result<(), BackendError> {
        if self.has_image(target).await {
            return Ok(());
        }
        let op = || format!("making image {target} from {base}");
        let mut archive = tar::Builder::new(Vec::new());
        let rel = dest.trim_start_matches('/');
        let mut dir = std::path::PathBuf::new();
        for part in std::path::Path::new(rel).parent().into_iter().flat_map(|p| p.components()) {
            dir.push(part);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            archive.append_data(&mut h, &dir, std::io::empty()).map_err(|e| BackendError::Docker { op: op(), detail: e.to_string() })?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        archive.append_data(&mut h, rel, data).map_err(|e| BackendError::Docker { op: op(), detail: e.to_string() })?;
        let archive = archive.into_inner().map_err(|e| BackendError::Docker { op: op(), detail: e.to_string() })?;
        self.image_from_archive(base, archive, target).await
    }

    /// Make `target` from `base` with the files of the host folder `dir` under
    /// `dest` (a folder of a built program), as `image_with_file` does.
    pub async fn image_with_folder(&self, base: &str, dest: &str, dir: &std::path::Path, target: &str) -> Result<(), BackendError> {
        if self.has_image(target).await {
            return Ok(());
        }
        let op = || format!("making image {target} from {base}");
        let archive = folder_archive(dest, dir).map_err(|e| BackendError::Docker { op: op(), detail: format!("{}: {e}", dir.display()) })?;
        self.image_from_archive(base, archive, target).await
    }

    async fn image_from_archive(&self, base: &str, archive: Vec<u8>, target: &str) -> Result<(), BackendError> {
        let op = || format!("making image {target} from {base}");
        // No labels: a container's labels end up in the committed image (and in
        // every container of it); it is known by its name and always removed.
        let name = format!("lab-image-build-{:08x}", rand::random::<u32>());
        let created = self
            .docker
            .create_container::<String, String>(
                Some(CreateContainerOptions { name: name.clone(), platform: None }),
                Config { image: Some(base.to_string()), cmd: Some(vec!["true".into()]), ..Default::default() },
            )
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => {
                    BackendError::ImageMissing { image: base.into(), hint: "bake or pull it first (`lab images bake base`)".into() }
                }
                e => op_err(op())(e),
            })?;
        let id = created.id;
        let result = async {
            self.docker.upload_to_container(&id, Some(bollard::container::UploadToContainerOptions { path: "/".to_string(), ..Default::default() }), archive.into()).await.map_err(op_err(op()))?;
            let (repo, tag) = crate::images::split_ref(target);
            let commit = bollard::image::CommitContainerOptions { container: id.clone(), repo, tag, pause: false, ..Default::default() };
            self.docker.commit_container(commit, Config::<String>::default()).await.map_err(op_err(op()))?;
            Ok(())
        }
        .await;
        let _ = self.docker.remove_container(&id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await;
        result
    }

    /// Tag a local image as `target` (`registry/repo:tag`) and push it there.
    pub async fn push(&self, image: &str, target: &str, progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        let (repo, tag) = crate::images::split_ref(target);
        let fail = |detail: String| BackendError::Push { image: image.into(), target: target.into(), detail };
        self.docker.tag_image(image, Some(bollard::image::TagImageOptions { repo: repo.as_str(), tag: tag.as_str() })).await.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => fail("it is not on this machine (lab images bake / pull it first)".into()),
            e => fail(e.to_string()),
        })?;
        let mut stream = self.docker.push_image(&repo, Some(bollard::image::PushImageOptions { tag: tag.as_str() }), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error {
                        return Err(fail(err));
                    }
                    let line = [info.status.unwrap_or_default(), info.progress.unwrap_or_default()].join(" ");
                    progress(line.trim());
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => return Err(fail(message)),
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lab_s_address_pool_is_cut_into_24s() {
        let s = super::pool_subnets("10.213.0.0/16").unwrap();
        assert_eq!((s.len(), s[0].as_str(), s[255].as_str()), (256, "10.213.0.0/24", "10.213.255.0/24"));
        assert_eq!(super::pool_subnets("192.168.77.9/24").unwrap(), ["192.168.77.0/24"]);
        for bad in ["10.0.0.0/8", "10.1.0.0/25", "ten/16", "10.0.0.0"] {
            assert!(super::pool_subnets(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_taken_host_port_is_told_apart_from_other_start_failures() {
        // What the engine answered in CI, and what it answers when a program holds the port.
        assert!(super::port_taken("driver failed programming external connectivity on endpoint lab-monitoring-mbug0-app-1 (349af6): Bind for 127.0.0.1:34165 failed: port is already allocated"));
        assert!(super::port_taken("driver failed programming external connectivity on endpoint x (1): Error starting userland proxy: listen tcp4 127.0.0.1:40000: bind: address already in use"));
        assert!(!super::port_taken("failed to create task for container: exec: \"/lab\": permission denied"));
        assert!(!super::port_taken("address already in use"), "only a bind names the host port");
    }
}
