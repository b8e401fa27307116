//! From a lab and options to a backend-neutral plan: which containers, with
//! which images, environment, ports, mounts, labels and readiness. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::images::ImageSet;
use crate::lab::Lab;
use crate::probe::Readiness;
use crate::template::{self, TemplateError};

/// Label keys put on everything lab creates. Docker's labels are the state.
pub mod labels {
    pub const INSTANCE: &str = "lab.instance";
    pub const LAB: &str = "lab.lab";
    pub const STUDENT: &str = "lab.student";
    pub const SERVICE: &str = "lab.service";
    pub const NODE: &str = "lab.node";
    pub const ROLE: &str = "lab.role";
    pub const SPEC: &str = "lab.spec";
    pub const TARGET: &str = "lab.target";
    /// The host port a container publishes (readable also while it is stopped).
    pub const HOST_PORT: &str = "lab.host-port";
    /// `backstage` on a dependency behind the fault proxy (a cluster's network policy selects it).
    pub const REACH: &str = "lab.reach";
}

/// Where the learner's binary is mounted inside its containers.
pub const BIN_DIR: &str = "/lab/bin";

/// Each node's own writable folder, kept while the container lives (kill and
/// start included): the learner's program starts in it (`self.data_dir`).
pub const DATA_DIR: &str = "/tmp";

/// Node n's peer link listens on the fault proxy at this port plus n.
pub const PEER_PROXY_BASE: u16 = 17000;

/// What a container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Dependency,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dependency => "dependency",
            Role::Service => "service",
        }
    }
}

/// A port published on 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    pub container: u16,
    pub host: u16,
}

/// A host folder mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// What one container may use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Bytes of memory, swap included.
    pub memory: u64,
    pub cpus: f64,
    pub pids: u32,
}

impl Limits {
    /// The role's defaults (the service 512 MiB, a dependency 1 GiB; 1 CPU and
    /// 1024 processes each), with what lab.yaml's `resources` sets instead.
    pub fn of(role: Role, r: &crate::lab::Resources) -> Limits {
        let memory = match role {
            Role::Service => 512 << 20,
            Role::Dependency => 1 << 30,
        };
        Limits { memory: r.memory.unwrap_or(memory), cpus: r.cpus.unwrap_or(1.0), pids: r.pids.unwrap_or(1024) }
    }
}

/// One container to run.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSpec {
    /// Memory, CPU and process limits.
    pub limits: Limits,
    /// Its networks.
    pub reach: Reach,
    pub name: String,
    pub service: String,
    pub node: u32,
    pub role: Role,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// The folder the program starts in (the image's when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Names other containers of the instance reach it by.
    pub aliases: Vec<String>,
    pub port: PortSpec,
    /// Other ports it listens on inside the network (peer ports, the fault
    /// proxy's links): a cluster reaches only the ports a Service names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<u16>,
    pub mounts: Vec<Mount>,
    /// `HOST:IP` entries for /etc/hosts (`host-gateway`: the Docker host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub ready: Readiness,
    #[serde(skip)]
    pub ready_timeout: Duration,
    /// The compose service text the template rendered (dependencies only).
    #[serde(skip)]
    pub compose: Option<String>,
    /// How the service's leader probe names this node (`service.leader.id`
    /// rendered, or the value of `service.leader.id_env`); replicas only.
    #[serde(skip)]
    pub id: Option<String>,
}

impl ContainerSpec {
    /// A digest of everything that defines the container; a change means recreate.
    pub fn digest(&self, extra: &str) -> String {
        let json = serde_json::to_string(self).expect("plain data serializes");
        let mut h = Sha256::new();
        h.update(json.as_bytes());
        h.update(extra.as_bytes());
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Everything `up` creates for one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub instance: String,
    pub lab: String,
    pub student: Option<String>,
    pub network: String,
    /// The network of the dependencies behind lab's fault proxy (`proxy:
    /// true`): only the proxy is on it with them, so the learner's service
    /// reaches them through the proxy or not at all.
    pub backstage: Option<String>,
    /// Dependencies first, then the service's replicas.
    pub containers: Vec<ContainerSpec>,
    /// With `--target`, the URL of the learner's own running service.
    pub target: Option<String>,
    /// The environment the learner's service gets, per node (also shown for `--target`).
    pub service_env: Vec<BTreeMap<String, String>>,
    /// A command-line lab (`service.run: cli`): the learner's built program,
    /// which exec probes run (no container runs it).
    pub program: Option<PathBuf>,
    /// Whether the service is a command-line program (`service.run: cli`).
    pub cli: bool,
    /// Labels on the network and on every container.
    pub labels: BTreeMap<String, String>,
    /// The image set the containers come from.
    #[serde(skip)]
    pub images: ImageSet,
    /// Dependencies whose traffic from the service goes through the fault proxy.
    pub proxied: Vec<String>,
    /// Whether the service's replicas reach each other through the fault proxy
    /// (links named after the nodes' containers' aliases, e.g. `app-2`).
    pub peer_proxy: bool,
    /// The instance's secret (`{{ secret }}` in the service's environment and in checks).
    #[serde(skip)]
    pub secret: String,
}

impl Plan {
    /// The image network-fault helpers run: the set's base image.
    pub fn helper_image(&self) -> String {
        self.images.image("base")
    }
}

impl Plan {
    pub fn dependencies(&self) -> impl Iterator<Item = &ContainerSpec> {
        self.containers.iter().filter(|c| c.role == Role::Dependency)
    }
    /// Whether the lab's service is a command-line program (nothing runs between checks).
    pub fn is_cli(&self) -> bool {
        self.cli
    }
    pub fn replicas(&self) -> impl Iterator<Item = &ContainerSpec> {
        self.containers.iter().filter(|c| c.role == Role::Service)
    }
    /// The URL of node `n` (1-based) of the learner's service, as lab reaches it.
    pub fn service_url(&self, node: u32) -> Option<String> {
        if let Some(t) = &self.target {
            return Some(t.trim_end_matches('/').to_string());
        }
        self.replicas().find(|c| c.node == node).map(|c| format!("http://127.0.0.1:{}", c.port.host))
    }

    /// Every node's base URL as lab reaches it (the target's, with `--target`).
    pub fn service_urls(&self) -> Vec<String> {
        match &self.target {
            Some(t) => vec![t.trim_end_matches('/').to_string()],
            None => self.replicas().map(|c| format!("http://127.0.0.1:{}", c.port.host)).collect(),
        }
    }

    /// A dependency's published HTTP address (Prometheus' API, lab's webhook sink...).
    pub fn dependency_url(&self, service: &str) -> Option<String> {
        self.dependencies().find(|c| c.service == service).map(|c| format!("http://127.0.0.1:{}", c.port.host))
    }
}

/// On the learner's service run from an image: the image, and its entrypoint and command as JSON.
pub const IMAGE_LABEL: &str = "lab.image";
pub const IMAGE_COMMAND_LABEL: &str = "lab.image-command";
/// On the learner's service run from a folder of a built program: the program's path in it.
pub const PROGRAM_LABEL: &str = "lab.program";

/// How the learner's service is provided.
#[derive(Debug, Clone)]
pub enum Solution {
    /// A built binary on the host, mounted into the containers: its folder,
    /// or `root` when it is a folder of a built program with its files
    /// (`path` the executable inside it).
    Binary { path: PathBuf, digest: String, root: Option<PathBuf> },
    /// An already running service at this URL.
    Target(String),
    /// An image of the learner's service, with the entrypoint and command it starts with.
    Image { image: String, entrypoint: Vec<String>, command: Vec<String> },
    /// Only the dependencies (e.g. `lab export`, or `up` without a solution).
    None,
}

/// Options of a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub student: Option<String>,
    pub images: ImageSet,
    pub solution: Solution,
    /// Host ports already assigned, by container name; missing ones come from `free_port`.
    pub ports: HashMap<String, u16>,
    /// Extra environment for the learner's service (`--env`).
    pub extra_env: BTreeMap<String, String>,
    /// Overrides the lab's readiness timeout of the service.
    pub ready_timeout: Option<Duration>,
    /// lab's own executable, mounted into the fault proxy's container.
    pub lab_exe: Option<PathBuf>,
    /// The instance's secret (`{{ secret }}` in the service's environment), e.g. to sign JWTs.
    pub secret: String,
}

/// A fresh instance secret: 32 random bytes, hex (256 bits, enough for HS256).
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A token derived from an instance's secret for one purpose (the fault
/// proxy's control port, a student's board view): sha256 of the purpose, a
/// NUL and the secret, in hex; one purpose's token does not give another's.
pub fn derive_token(purpose: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The instance name: `lab-<lab>` or `lab-<lab>--<student>`. Neither name may
/// hold `--` (see [`is_name`]), so each instance has its own name: student
/// `redirect` of lab `raft` is `lab-raft--redirect`, lab `raft-redirect` is
/// `lab-raft-redirect`.
pub fn instance_name(lab: &str, student: Option<&str>) -> String {
    match student {
        Some(s) if !s.is_empty() => format!("lab-{lab}{STUDENT_SEP}{s}"),
        _ => format!("lab-{lab}"),
    }
}

/// Where lab's own executable is in the containers that run it (its folder is
/// mounted at `/lab/exe`), under whatever name it has on this machine.
fn exe_in_container(exe: &std::path::Path) -> String {
    format!("/lab/exe/{}", exe.file_name().map(|f| f.to_string_lossy()).unwrap_or("lab".into()))
}

/// The backstage network of an instance: `_` is in no lab or student name,
/// so no instance network has this name.
pub fn backstage_network(instance: &str) -> String {
    format!("{instance}_backstage")
}

/// Which networks a container is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// The instance's network.
    #[default]
    Instance,
    /// Only the backstage network: a dependency behind the fault proxy.
    Backstage,
    /// Both: the fault proxy.
    Both,
}

/// What separates the lab from the student in an instance name.
pub const STUDENT_SEP: &str = "--";

/// Whether a name (of a lab, student, service, stage or check) is usable in
/// container names and Kubernetes namespaces and keeps instance names apart:
/// lower-case letters and digits, single dashes between them, at most `max`.
pub fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !s.starts_with('-') && !s.ends_with('-') && !s.contains(STUDENT_SEP)
}

/// Whether a student name is usable in instance names.
pub fn valid_student(s: &str) -> bool {
    is_name(s, 30)
}

/// Failure to plan.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Template(#[from] TemplateError),
    #[error("environment variable {var} of the service does not render: {message}")]
    Env { var: String, message: String },
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoPort(String),
    #[error("dependency `{0}` runs lab's own program, and lab does not know where its executable is")]
    NoLabExe(String),
}

/// The service name (and network alias) of lab's webhook sink.
pub const WEBHOOK_SERVICE: &str = "webhook";

/// What dependency templates see of the instance besides their own options:
/// `service` (name, port, `targets`: the replicas as `host:port` from inside
/// the network, `on_host` with `--target`), `deps` (every dependency's
/// in-network `host`, `port`, `addr` and `template`) and `webhook` (the URL of
/// lab's webhook sink).
fn template_context(lab: &Lab, opts: &PlanOptions, instance: &str) -> Result<tera::Context, PlanError> {
    let def = &lab.def;
    let svc = &def.service;
    let mut deps = serde_json::Map::new();
    for (name, dep) in &def.dependencies {
        let (_, spec) = template::render(&dep.template, "image", name, instance, &dep.options)?;
        let port = spec.lab.port;
        deps.insert(name.clone(), serde_json::json!({"host": name, "port": port, "addr": format!("{name}:{port}"), "template": dep.template}));
    }
    let (targets, on_host) = match &opts.solution {
        // The learner runs the service on the host: containers reach it through the host's gateway.
        Solution::Target(t) => {
            let u = reqwest::Url::parse(t).ok();
            let port = u.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(svc.port);
            let host = match u.as_ref().and_then(|u| u.host_str().map(str::to_string)) {
                Some(h) if !["127.0.0.1", "localhost", "[::1]", "::1", "0.0.0.0"].contains(&h.as_str()) => h,
                _ => HOST_GATEWAY.to_string(),
            };
            (vec![format!("{host}:{port}")], true)
        }
        _ => ((1..=svc.replicas).map(|n| format!("{}-{n}:{}", svc.name, svc.port)).collect(), false),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("service", &serde_json::json!({"name": svc.name, "port": svc.port, "targets": targets, "on_host": on_host}));
    ctx.insert("deps", &deps);
    ctx.insert("webhook", &format!("http://{WEBHOOK_SERVICE}:{}/notify", crate::probe::webhook::PORT));
    if let Some(exe) = &opts.lab_exe {
        ctx.insert("lab_exe", &exe_in_container(exe));
    }
    ctx.insert("host_gateway", HOST_GATEWAY);
    Ok(ctx)
}

/// The ports the fault proxy's links listen on (`NAME=0.0.0.0:PORT=UPSTREAM`).
fn link_ports(links: &[String]) -> Vec<u16> {
    let mut v: Vec<u16> = links.iter().filter_map(|l| l.split('=').nth(1)?.rsplit(':').next()?.parse().ok()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The name containers reach the Docker host by (mapped to `host-gateway` in their /etc/hosts).
pub const HOST_GATEWAY: &str = "host.docker.internal";

/// Build the plan. `free_port` is called for each port not already in `opts.ports`.
pub fn plan(lab: &Lab, opts: &PlanOptions, mut free_port: impl FnMut() -> Result<u16, String>) -> Result<Plan, PlanError> {
    let def = &lab.def;
    let instance = instance_name(&def.name, opts.student.as_deref());
    let mut common = BTreeMap::new();
    common.insert(labels::INSTANCE.to_string(), instance.clone());
    common.insert(labels::LAB.to_string(), def.name.clone());
    if let Some(s) = &opts.student {
        common.insert(labels::STUDENT.to_string(), s.clone());
    }
    if let Solution::Target(t) = &opts.solution {
        common.insert(labels::TARGET.to_string(), t.clone());
    }
    let mut port_for = |name: &str| -> Result<u16, PlanError> {
        match opts.ports.get(name) {
            Some(p) => Ok(*p),
            None => free_port().map_err(PlanError::NoPort),
        }
    };

    let mut containers = Vec::new();
    // Addresses of dependencies as the service sees them: inside the network for
    // containers, on loopback for a service run by the learner (`--target`).
    let on_host = matches!(opts.solution, Solution::Target(_));
    // The fault proxy sits between the service's containers and the dependencies marked `proxy`.
    let svc = &def.service;
    let peer_proxy = !on_host && svc.replicas > 1 && svc.peers.as_ref().is_some_and(|p| p.proxy);
    let use_proxy = !on_host && opts.lab_exe.is_some() && (def.dependencies.values().any(|d| d.proxy) || peer_proxy);
    let peer_proxy = peer_proxy && use_proxy;
    let mut links = Vec::new();
    let mut proxied = Vec::new();
    let mut deps_ctx = serde_json::Map::new();
    let tctx = template_context(lab, opts, &instance)?;
    let mut wants_webhook = false;
    for (name, dep) in &def.dependencies {
        // A dependency that runs lab's own program is made from the base image.
        let runs_lab = template::render(&dep.template, "image", name, &instance, &dep.options)?.1.lab.runs_lab;
        let image = opts.images.image(if runs_lab { "base" } else { &dep.template });
        let (text, spec) = template::render_with(&dep.template, &image, name, &instance, &dep.options, &tctx)?;
        let exe_mount = match (runs_lab, &opts.lab_exe) {
            (false, _) => None,
            (true, Some(exe)) => Some(Mount { host: exe.parent().map(|p| p.to_path_buf()).unwrap_or_default(), container: "/lab/exe".into(), read_only: true }),
            (true, None) => return Err(PlanError::NoLabExe(name.clone())),
        };
        wants_webhook |= spec.lab.webhook;
        let cname = format!("{instance}-{name}-1");
        let host_port = port_for(&cname)?;
        let (host, port) = if on_host {
            ("127.0.0.1".to_string(), host_port)
        } else if use_proxy && dep.proxy {
            links.push(format!("{name}=0.0.0.0:{}={name}:{}", spec.lab.port, spec.lab.port));
            proxied.push(name.clone());
            ("proxy".to_string(), spec.lab.port)
        } else {
            (name.clone(), spec.lab.port)
        };
        let mut entry = serde_json::json!({"host": host, "port": port, "addr": format!("{host}:{port}")});
        if let Some(u) = &spec.lab.url {
            entry["url"] = u.replace("{host}", &host).replace("{port}", &port.to_string()).into();
        }
        deps_ctx.insert(name.clone(), entry);
        let mut l = common.clone();
        l.insert(labels::SERVICE.into(), name.clone());
        l.insert(labels::NODE.into(), "1".into());
        l.insert(labels::ROLE.into(), Role::Dependency.as_str().into());
        if proxied.contains(name) {
            l.insert(labels::REACH.into(), "backstage".into());
        }
        containers.push(ContainerSpec {
            limits: Limits::of(Role::Dependency, &dep.resources),
            reach: if proxied.contains(name) { Reach::Backstage } else { Reach::Instance },
            name: cname,
            service: name.clone(),
            node: 1,
            role: Role::Dependency,
            image,
            command: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            workdir: None,
            env: spec.environment.clone(),
            aliases: vec![name.clone()],
            port: PortSpec { container: spec.lab.port, host: host_port },
            extra_ports: vec![],
            mounts: exe_mount.into_iter().collect(),
            extra_hosts: spec.extra_hosts.clone(),
            labels: l,
            ready: spec.lab.ready.clone(),
            ready_timeout: Duration::from_secs(60),
            compose: Some(text),
            id: None,
        });
    }

    if peer_proxy {
        let port = svc.peers.as_ref().map(|p| p.port).unwrap_or(svc.port);
        for n in 1..=svc.replicas {
            links.push(format!("{}-{n}=0.0.0.0:{}={}-{n}:{port}", svc.name, PEER_PROXY_BASE + n as u16, svc.name));
        }
    }
    if use_proxy {
        let exe = opts.lab_exe.clone().expect("checked");
        let cname = format!("{instance}-proxy-1");
        let host_port = port_for(&cname)?;
        let mut command = vec![exe_in_container(&exe), "proxy".into(), "serve".into(), "--control".into(), format!("0.0.0.0:{}", crate::chaos::proxy::CONTROL_PORT)];
        for l in &links {
            command.push("--link".into());
            command.push(l.clone());
        }
        let mut l = common.clone();
        l.insert(labels::SERVICE.into(), "proxy".into());
        l.insert(labels::NODE.into(), "1".into());
        l.insert(labels::ROLE.into(), Role::Dependency.as_str().into());
        containers.push(ContainerSpec {
            limits: Limits::of(Role::Dependency, &Default::default()),
            reach: if proxied.is_empty() { Reach::Instance } else { Reach::Both },
            name: cname,
            service: "proxy".into(),
            node: 1,
            role: Role::Dependency,
            image: opts.images.image("base"),
            command: Some(command),
            entrypoint: None,
            workdir: None,
            env: BTreeMap::from([(crate::chaos::proxy::TOKEN_ENV.to_string(), crate::chaos::proxy::token_for(&opts.secret))]),
            aliases: vec!["proxy".into()],
            port: PortSpec { container: crate::chaos::proxy::CONTROL_PORT, host: host_port },
            extra_ports: link_ports(&links),
            mounts: vec![Mount { host: exe.parent().map(|p| p.to_path_buf()).unwrap_or_default(), container: "/lab/exe".into(), read_only: true }],
            extra_hosts: vec![],
            labels: l,
            ready: Readiness::Tcp,
            ready_timeout: Duration::from_secs(20),
            compose: None,
            id: None,
        });
    }

    // lab's webhook sink, for a dependency (Alertmanager) that delivers notifications to it.
    if let (true, Some(exe)) = (wants_webhook, &opts.lab_exe) {
        let cname = format!("{instance}-{WEBHOOK_SERVICE}-1");
        let host_port = port_for(&cname)?;
        let mut l = common.clone();
        l.insert(labels::SERVICE.into(), WEBHOOK_SERVICE.into());
        l.insert(labels::NODE.into(), "1".into());
        l.insert(labels::ROLE.into(), Role::Dependency.as_str().into());
        containers.push(ContainerSpec {
            limits: Limits::of(Role::Dependency, &Default::default()),
            reach: Reach::Instance,
            name: cname,
            service: WEBHOOK_SERVICE.into(),
            node: 1,
            role: Role::Dependency,
            image: opts.images.image("base"),
            command: Some(vec![exe_in_container(exe), "proxy".into(), "webhook".into(), "--listen".into(), format!("0.0.0.0:{}", crate::probe::webhook::PORT)]),
            entrypoint: None,
            workdir: None,
            env: BTreeMap::new(),
            aliases: vec![WEBHOOK_SERVICE.into()],
            port: PortSpec { container: crate::probe::webhook::PORT, host: host_port },
            extra_ports: vec![],
            mounts: vec![Mount { host: exe.parent().map(|p| p.to_path_buf()).unwrap_or_default(), container: "/lab/exe".into(), read_only: true }],
            extra_hosts: vec![],
            labels: l,
            ready: Readiness::Http { path: "/healthz".into(), status: 200 },
            ready_timeout: Duration::from_secs(20),
            compose: None,
            id: None,
        });
    }

    let cli = svc.run == crate::lab::RunKind::Cli;
    let replicas = if matches!(opts.solution, Solution::Target(_)) { 1 } else { svc.replicas };
    let mut node_ports = Vec::new();
    for n in 1..=replicas {
        let cname = format!("{instance}-{}-{n}", svc.name);
        node_ports.push((cname.clone(), if matches!(opts.solution, Solution::Binary { .. } | Solution::Image { .. }) && !cli { port_for(&cname)? } else { 0 }));
    }
    let peers: Vec<String> = (1..=replicas).map(|n| format!("{}-{n}:{}", svc.name, svc.port)).collect();
    // Where node n is reached by the other nodes on its peer port.
    let peer_addr = |n: u32| match &svc.peers {
        Some(_) if peer_proxy => format!("proxy:{}", PEER_PROXY_BASE + n as u16),
        Some(p) => format!("{}-{n}:{}", svc.name, p.port),
        None => format!("{}-{n}:{}", svc.name, svc.port),
    };
    let nodes: Vec<serde_json::Value> = (1..=replicas).map(|n| serde_json::json!({"node": n, "host": format!("{}-{n}", svc.name), "peer_addr": peer_addr(n)})).collect();
    let mut service_env = Vec::new();
    let mut node_ids = Vec::new();
    let mut service_args = Vec::new();
    for n in 1..=replicas {
        let host_port = node_ports[(n - 1) as usize].1;
        let url = match &opts.solution {
            Solution::Target(t) => t.trim_end_matches('/').to_string(),
            _ => format!("http://127.0.0.1:{host_port}"),
        };
        let mut ctx = tera::Context::new();
        ctx.insert("deps", &deps_ctx);
        ctx.insert("self", &serde_json::json!({"url": url, "node": n, "host": format!("{}-{n}", svc.name), "port": svc.port, "peer_addr": peer_addr(n), "data_dir": DATA_DIR}));
        ctx.insert("nodes", &nodes);
        ctx.insert("instance", &instance);
        ctx.insert("student", &opts.student.clone().unwrap_or_default());
        ctx.insert("replicas", &replicas);
        ctx.insert("peers", &peers);
        ctx.insert("secret", &opts.secret);
        let mut env = BTreeMap::new();
        for (k, v) in &svc.env {
            let r = tera::Tera::one_off(v, &ctx, false).map_err(|e| PlanError::Env { var: k.clone(), message: crate::lab::tera_message(&e) })?;
            env.insert(k.clone(), r);
        }
        env.extend(opts.extra_env.clone());
        ctx.insert("env", &env);
        let id = match &svc.leader {
            Some(crate::lab::LeaderProbe { id: Some(t), .. }) => {
                Some(tera::Tera::one_off(t, &ctx, false).map_err(|e| PlanError::Env { var: "service.leader.id".into(), message: crate::lab::tera_message(&e) })?)
            }
            Some(crate::lab::LeaderProbe { id_env: Some(var), .. }) => env.get(var).cloned(),
            _ => None,
        };
        node_ids.push(id);
        let mut args = Vec::new();
        for (i, a) in svc.command.iter().enumerate() {
            args.push(tera::Tera::one_off(a, &ctx, false).map_err(|e| PlanError::Env { var: format!("service.command[{i}]"), message: crate::lab::tera_message(&e) })?);
        }
        service_args.push(args);
        service_env.push(env);
    }

    let program = match &opts.solution {
        Solution::Binary { path, .. } if cli => Some(path.clone()),
        _ => None,
    };
    // How the nodes run the learner's service: an image, its command and
    // entrypoint, mounts, and the labels that make a new program a new spec.
    let nodes_run = match (&opts.solution, cli) {
        (Solution::Binary { path, digest, root }, false) => {
            let dir = root.clone().or_else(|| path.parent().map(|p| p.to_path_buf())).unwrap_or_default();
            let rel = path.strip_prefix(&dir).map(|r| r.to_string_lossy().to_string()).unwrap_or_else(|_| path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default());
            // The binary's digest is part of the spec, so a rebuilt solution is restarted.
            let mut labels = vec![("lab.binary".to_string(), digest.clone())];
            if root.is_some() {
                labels.push((PROGRAM_LABEL.to_string(), rel.clone()));
            }
            Some((opts.images.image("base"), vec![format!("{BIN_DIR}/{rel}")], None, vec![Mount { host: dir, container: BIN_DIR.into(), read_only: true }], labels))
        }
        // Entrypoint and command said explicitly, as the image says them: the same on every backend.
        (Solution::Image { image, entrypoint, command }, false) => Some((
            image.clone(),
            command.clone(),
            Some(entrypoint.clone()),
            vec![],
            vec![(IMAGE_LABEL.to_string(), image.clone()), (IMAGE_COMMAND_LABEL.to_string(), serde_json::to_string(&(entrypoint, command)).expect("lists serialize"))],
        )),
        _ => None,
    };
    if let Some((image, command, entrypoint, mounts, extra_labels)) = nodes_run {
        let ready = svc.ready.as_ref().expect("validation requires `ready` of a service run in containers");
        for n in 1..=replicas {
            let (cname, host_port) = node_ports[(n - 1) as usize].clone();
            let mut l = common.clone();
            l.insert(labels::SERVICE.into(), svc.name.clone());
            l.insert(labels::NODE.into(), n.to_string());
            l.insert(labels::ROLE.into(), Role::Service.as_str().into());
            l.extend(extra_labels.iter().cloned());
            containers.push(ContainerSpec {
                limits: Limits::of(Role::Service, &svc.resources),
                reach: Reach::Instance,
                name: cname,
                service: svc.name.clone(),
                node: n,
                role: Role::Service,
                image: image.clone(),
                // The program's arguments after its own (an image's entrypoint and command).
                command: Some(command.iter().chain(&service_args[(n - 1) as usize]).cloned().collect()),
                entrypoint: entrypoint.clone(),
                // A program lab runs starts in its data folder; an image where it says.
                workdir: matches!(opts.solution, Solution::Binary { .. }).then(|| DATA_DIR.to_string()),
                env: service_env[(n - 1) as usize].clone(),
                aliases: vec![svc.name.clone(), format!("{}-{n}", svc.name)],
                port: PortSpec { container: svc.port, host: host_port },
                extra_ports: svc.peers.as_ref().map(|p| p.port).filter(|p| *p != svc.port).into_iter().collect(),
                mounts: mounts.clone(),
                extra_hosts: vec![],
                labels: l,
                ready: if ready.grpc {
                    Readiness::Grpc
                } else if ready.tcp {
                    Readiness::Tcp
                } else {
                    Readiness::Http { path: ready.path.clone(), status: ready.status }
                },
                ready_timeout: opts.ready_timeout.unwrap_or(ready.timeout),
                compose: None,
                id: node_ids[(n - 1) as usize].clone(),
            });
        }
    }

    Ok(Plan {
        backstage: (!proxied.is_empty()).then(|| backstage_network(&instance)),
        network: instance.clone(),
        instance,
        lab: def.name.clone(),
        student: opts.student.clone(),
        target: match &opts.solution {
            Solution::Target(t) => Some(t.clone()),
            _ => None,
        },
        containers,
        service_env,
        program,
        cli,
        labels: common,
        images: opts.images,
        proxied,
        peer_proxy,
        secret: opts.secret.clone(),
    })
}

#[cfg(test)]
mod tests;
