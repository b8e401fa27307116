//! A session ties the parts together for the commands: build the solution,
//! plan, get images, converge on the backend, wait for readiness; rebuild the
//! plan of a running instance from its labels; take an instance down.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;

use crate::backend::{Backend, BackendError, Converged, InstanceState};
use crate::build::{self, GoMode};
use crate::error::Error;
use crate::images::{bake, debian, ImageSet};
use crate::lab::Lab;
use crate::plan::{self, ContainerSpec, Plan, PlanOptions, Role, Solution};
use crate::probe::wait_ready;
use crate::ui::Ui;
use crate::verify::expect::fmt_dur;

/// Extra labels that let a later command rebuild the plan of a running instance.
const IMAGES_LABEL: &str = "lab.images";
const ENV_LABEL: &str = "lab.extra-env";
/// The instance's secret (`{{ secret }}`): made at the first `up`, kept on the
/// containers so that later commands (a second `up`, `verify`) use the same one.
const SECRET_LABEL: &str = "lab.secret";

/// The class an instance was brought up for (`lab class up`, which gives
/// each student's `lab` process `LAB_CLASS`): kept by later commands that do
/// not give one, so that `class up --prune` removes its own class's
/// students alone.
const CLASS_LABEL: &str = "lab.class";

/// The environment variable that names the class of an instance being brought up.
pub const CLASS_ENV: &str = "LAB_CLASS";

/// The class of a running instance (see [`CLASS_LABEL`]).
pub fn instance_class(i: &crate::backend::InstanceState) -> Option<&str> {
    i.containers.iter().find_map(|c| c.labels.get(CLASS_LABEL)).map(String::as_str).filter(|s| !s.is_empty())
}

/// The secret of a running instance (kept on its containers' labels), from
/// which the tokens of its fault proxy and of its student's board view are
/// derived; none for an instance made without one.
pub fn instance_secret(i: &crate::backend::InstanceState) -> Option<&str> {
    i.containers.iter().find_map(|c| c.labels.get(SECRET_LABEL)).map(String::as_str).filter(|s| !s.is_empty())
}

/// What the learner gives.
#[derive(Debug, Clone)]
pub enum SolutionArg {
    /// A Go folder or a built executable.
    Path(PathBuf),
    /// A service already running at this URL.
    Target(String),
    /// An image of the learner's service.
    Image(String),
    /// Nothing: only the dependencies.
    None,
}

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub student: Option<String>,
    pub images: ImageSet,
    pub solution: SolutionArg,
    pub go_mode: GoMode,
    pub extra_env: BTreeMap<String, String>,
    pub ready_timeout: Option<Duration>,
}

/// The commands' access to a backend, with progress output.
pub struct Session {
    pub backend: Backend,
    pub ui: Ui,
}

/// How often `up` picks a new host port for a container whose port was taken
/// between picking it and the engine binding it.
const PORT_RETRIES: usize = 3;

/// Free ports on 127.0.0.1; the listeners are held until the plan is made, so
/// that two ports of one plan never collide.
#[derive(Default)]
struct PortPicker {
    held: Vec<TcpListener>,
    /// Ports of other lab containers, and ports found taken by the engine.
    avoid: Vec<u16>,
}

impl PortPicker {
    fn pick(&mut self) -> Result<u16, String> {
        loop {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let p = l.local_addr().map_err(|e| e.to_string())?.port();
            // Held either way, so that the next bind gets another port.
            self.held.push(l);
            if !self.avoid.contains(&p) {
                return Ok(p);
            }
        }
    }
}

impl Session {
    /// The running instance of a lab for a student, if any.
    pub async fn find_instance(&self, lab: &str, student: Option<&str>) -> Result<Option<InstanceState>, Error> {
        let name = plan::instance_name(lab, student);
        Ok(self.backend.instances(Some(&name)).await?.into_iter().next())
    }

    /// Revert the instance's faults: those past their end (`expired_only`),
    /// or all in force. Says what it reverted; returns the records.
    pub async fn revert_faults(&self, lab: &Lab, plan: &Plan, expired_only: bool) -> Result<Vec<crate::backend::FaultRecord>, Error> {
        let now = crate::backend::unix_now();
        // A fault this process was making when it was interrupted is finished
        // in Docker unless its helpers are stopped first.
        self.backend.settle(&plan.instance).await?;
        let due: Vec<_> = self.backend.faults(Some(&plan.instance)).await?.into_iter().filter(|f| !expired_only || f.expired(now)).collect();
        if due.is_empty() {
            return Ok(due);
        }
        let chaos = crate::chaos::Chaos { backend: &self.backend, plan, lab, helper_image: plan.helper_image() };
        for f in due.iter().rev() {
            chaos.revert(f).await.map_err(|e| Error::Chaos(Box::new(e)))?;
            let why = match f.until {
                Some(u) if expired_only => format!("its time ran out {} s ago and nothing reverted it", now.saturating_sub(u)),
                _ if !f.applied => "it was being applied when the lab process that made it stopped".to_string(),
                _ => "it was still in force".to_string(),
            };
            self.ui.notice(&format!("reverted fault {} ({} on {}) in {}: {why}", f.id, f.kind, f.targets.join(", "), plan.instance));
        }
        Ok(due)
    }

    /// Bring a lab up (idempotent: a second call converges). Returns the plan.
    pub async fn up(&self, lab: &Lab, opts: &UpOptions) -> Result<Plan, Error> {
        self.backend.ping().await?;
        let instance = plan::instance_name(lab.name(), opts.student.as_deref());
        let all = self.backend.instances(None).await?;
        // The host ports of other instances' containers, stopped ones included
        // (a stopped container gets its port back when chaos or a check starts it).
        let others: Vec<u16> = all.iter().filter(|i| i.instance != instance).flat_map(|i| i.containers.iter()).filter_map(|c| c.host_port).collect();
        let existing = all.into_iter().find(|i| i.instance == instance);
        let ports: HashMap<String, u16> = existing.iter().flat_map(|i| i.containers.iter()).filter_map(|c| Some((c.name.clone(), c.host_port?))).collect();

        let solution = match &opts.solution {
            SolutionArg::None => Solution::None,
            SolutionArg::Target(t) => Solution::Target(t.clone()),
            SolutionArg::Image(_) if lab.def.service.run == crate::lab::RunKind::Cli => {
                return Err(Error::Usage(format!("{} is a command-line lab: lab runs your program itself for each check; give --solution PATH (your Go folder or program)", lab.name())));
            }
            SolutionArg::Image(r) => {
                let (entrypoint, command) = self.backend.image_command(r).await?;
                Solution::Image { image: r.clone(), entrypoint, command }
            }
            SolutionArg::Path(p) => {
                let task = self.ui.task(&build::doing(p));
                match build::build_program(p, &build::out_dir(&instance), &lab.def.service.name, opts.go_mode, lab.def.service.program.as_deref()).await {
                    Ok(b) => {
                        task.finish(&b.what(p));
                        let root = b.files.is_some().then(|| build::out_dir(&instance));
                        Solution::Binary { path: b.binary, digest: b.digest, root }
                    }
                    Err(e) => {
                        task.fail();
                        return Err(e.into());
                    }
                }
            }
        };
        let secret = existing.iter().find_map(instance_secret).map(str::to_string).unwrap_or_else(plan::new_secret);
        let class = std::env::var(CLASS_ENV).ok().filter(|c| !c.is_empty()).or_else(|| existing.iter().find_map(instance_class).map(str::to_string));
        let mut ports = ports;
        let mut taken = Vec::new();
        loop {
            let avoid: Vec<u16> = others.iter().chain(&taken).copied().collect();
            let mut plan = self.plan_and_converge(lab, opts, &solution, (&secret, class.as_deref()), ports, &avoid).await?;
            if plan.containers.is_empty() {
                // A command-line lab without dependencies: building was all there was to do.
                return Ok(plan);
            }
            self.backend.expose(&mut plan).await?;
            match self.start_all(&plan).await {
                // A host port picked free was taken before the engine bound it
                // (another `lab up` on this machine, or any other program): pick
                // that container a new one and converge again.
                Err(Error::Backend(BackendError::PortTaken { container, .. })) if taken.len() < PORT_RETRIES => {
                    let old = plan.containers.iter().find(|c| c.name == container).map(|c| c.port.host).unwrap_or_default();
                    taken.push(old);
                    self.ui.warn(&format!("{container}: host port 127.0.0.1:{old} was taken meanwhile; picking another"));
                    ports = plan.containers.iter().filter(|c| c.name != container).map(|c| (c.name.clone(), c.port.host)).collect();
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(plan),
            }
        }
    }

    /// Make the plan (new host ports where `ports` has none) and converge the backend to it.
    async fn plan_and_converge(&self, lab: &Lab, opts: &UpOptions, solution: &Solution, (secret, class): (&str, Option<&str>), ports: HashMap<String, u16>, avoid: &[u16]) -> Result<Plan, Error> {
        let mut picker = PortPicker { avoid: avoid.to_vec(), ..Default::default() };
        let popts = PlanOptions {
            student: opts.student.clone(),
            images: opts.images,
            solution: solution.clone(),
            ports,
            extra_env: opts.extra_env.clone(),
            ready_timeout: opts.ready_timeout,
            lab_exe: std::env::current_exe().ok(),
            secret: secret.to_string(),
        };
        let mut plan = plan::plan(lab, &popts, || picker.pick())?;
        drop(picker);
        if plan.containers.is_empty() {
            return Ok(plan);
        }
        plan.labels.insert(IMAGES_LABEL.into(), opts.images.to_string());
        plan.labels.insert(ENV_LABEL.into(), serde_json::to_string(&opts.extra_env).expect("map serializes"));
        plan.labels.insert(SECRET_LABEL.into(), secret.to_string());
        if let Some(class) = class {
            plan.labels.insert(CLASS_LABEL.into(), class.to_string());
        }
        for c in &mut plan.containers {
            c.labels.insert(IMAGES_LABEL.into(), opts.images.to_string());
            c.labels.insert(SECRET_LABEL.into(), secret.to_string());
            if let Some(class) = class {
                c.labels.insert(CLASS_LABEL.into(), class.to_string());
            }
            // Only the service gets --env, so only its containers change with it.
            if c.role == Role::Service {
                c.labels.insert(ENV_LABEL.into(), serde_json::to_string(&opts.extra_env).expect("map serializes"));
            }
        }

        self.ensure_images(&plan, opts.images).await?;
        let converged = self.backend.converge(&plan).await?;
        let changed = converged.iter().filter(|(_, c)| *c != Converged::Kept).count();
        self.ui.done(&format!("{} ({changed} created or replaced)", self.backend.placement(converged.len(), &plan.network)));
        Ok(plan)
    }

    /// Start the plan's containers and wait until each is ready: dependencies
    /// first, all at once; then the service's replicas.
    async fn start_all(&self, plan: &Plan) -> Result<(), Error> {
        for role in [Role::Dependency, Role::Service] {
            let group: Vec<&ContainerSpec> = plan.containers.iter().filter(|c| c.role == role).collect();
            if group.is_empty() {
                continue;
            }
            let jobs = group.iter().map(|c| async move {
                self.backend.start(&c.name).await?;
                let addr = SocketAddr::from(([127, 0, 0, 1], c.port.host));
                let ready = async {
                    let took = wait_ready(&c.ready, addr, c.ready_timeout).await?;
                    self.backend.wait_routed(&c.name, c.ready_timeout).await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(took)
                };
                // A container that ends while lab waits is reported at once, not at the timeout.
                let t0 = std::time::Instant::now();
                let ended = async {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        if let Ok(Some(x)) = self.backend.exited(&c.name).await {
                            return x;
                        }
                    }
                };
                let outcome = tokio::select! {
                    r = ready => r,
                    (code, oom) = ended => {
                        let logs = self.tail_logs(&c.name, 15).await;
                        let oom = if oom { ", killed for using more memory than its limit (OOMKilled)".to_string() } else { String::new() };
                        return Err(match c.role {
                            Role::Service => Error::ServiceExited { container: c.name.clone(), code, after: fmt_dur(t0.elapsed()), oom, probe: probe_text(c), logs },
                            Role::Dependency => Error::DependencyNotReady {
                                container: c.name.clone(),
                                timeout: fmt_dur(c.ready_timeout),
                                last: format!("it exited with code {code} after {}{oom}", fmt_dur(t0.elapsed())),
                                logs,
                            },
                        });
                    }
                };
                match outcome {
                    Ok(took) => {
                        self.ui.done(&format!("{:<14} ready on 127.0.0.1:{:<5} ({})", c.service_label(), c.port.host, fmt_dur(took)));
                        Ok(())
                    }
                    Err(last) => {
                        let logs = self.tail_logs(&c.name, 15).await;
                        Err(match c.role {
                            Role::Dependency => Error::DependencyNotReady { container: c.name.clone(), timeout: fmt_dur(c.ready_timeout), last, logs },
                            Role::Service => Error::ServiceNotReady { container: c.name.clone(), timeout: fmt_dur(c.ready_timeout), last, probe: probe_text(c), logs },
                        })
                    }
                }
            });
            futures_util::future::try_join_all(jobs).await?;
        }
        Ok(())
    }

    async fn ensure_images(&self, plan: &Plan, set: ImageSet) -> Result<(), Error> {
        let mut wanted: Vec<String> = plan.containers.iter().map(|c| c.image.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let missing = self.backend.missing_images(&wanted).await?;
        for image in missing {
            match set {
                ImageSet::Upstream => {
                    let task = self.ui.task(&format!("pulling {image}"));
                    match self.backend.pull(&image, &|l| task.set(l)).await {
                        Ok(()) => task.finish(&format!("pulled {image}")),
                        Err(e) => {
                            task.fail();
                            return Err(e.into());
                        }
                    }
                }
                ImageSet::Debian => {
                    let Some(recipe) = debian::RECIPES.iter().find(|r| r.tag == image) else {
                        return Err(BackendError::ImageMissing { image, hint: "it is not part of the debian set".into() }.into());
                    };
                    self.bake(recipe).await?;
                }
            }
        }
        Ok(())
    }

    /// Bake one image of the debian set, with progress.
    pub async fn bake(&self, recipe: &debian::Recipe) -> Result<Duration, Error> {
        let Backend::Docker(d) = &self.backend else {
            return Err(BackendError::ImageMissing { image: recipe.tag.into(), hint: "this backend cannot bake images".into() }.into());
        };
        let task = self.ui.task(&format!("baking {} from Debian packages", recipe.tag));
        match bake::bake(d.client(), recipe, &bake::BakeOptions::default(), &|l| task.set(l)).await {
            Ok(took) => {
                task.finish(&format!("baked {} in {}", recipe.tag, fmt_dur(took)));
                Ok(took)
            }
            Err(e) => {
                task.fail();
                Err(e.into())
            }
        }
    }

    /// The last lines of a container's log, indented for an error message.
    pub async fn tail_logs(&self, container: &str, n: usize) -> String {
        let Ok(mut s) = self.backend.logs(container, n, false).await else {
            return String::new();
        };
        let mut text = String::new();
        while let Some(Ok(chunk)) = s.next().await {
            text.push_str(&chunk);
        }
        if text.trim().is_empty() {
            return format!("  ({container} logged nothing)");
        }
        text.lines().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
    }

    /// The plan of a command-line lab (`service.run: cli`) whose program `lab up`
    /// built earlier: the binary in lab's cache is all its state.
    pub fn cli_plan(&self, lab: &Lab, student: Option<&str>, extra_env: &BTreeMap<String, String>) -> Result<Plan, Error> {
        let instance = plan::instance_name(lab.name(), student);
        let path = built_program(lab, student);
        if !path.is_file() {
            return Err(Error::NotUp(lab.name().to_string()));
        }
        let popts = PlanOptions {
            student: student.map(str::to_string),
            images: ImageSet::Debian,
            solution: Solution::Binary { path, digest: String::new(), root: None },
            ports: HashMap::new(),
            extra_env: extra_env.clone(),
            ready_timeout: None,
            lab_exe: None,
            // A program run on the host has no label to keep a secret in.
            secret: String::new(),
        };
        let mut picker = PortPicker::default();
        let plan = plan::plan(lab, &popts, || picker.pick())?;
        if !plan.containers.is_empty() {
            return Err(Error::Usage(format!("{instance} has dependencies; run `lab up {}` with --solution to start them", lab.name())));
        }
        Ok(plan)
    }

    /// Rebuild the plan of a running instance from its labels.
    pub async fn running_plan(&self, lab: &Lab, student: Option<&str>) -> Result<Plan, Error> {
        let inst = self.find_instance(lab.name(), student).await?.ok_or_else(|| Error::NotUp(lab.name().to_string()))?;
        let any = inst.containers.first().ok_or_else(|| Error::NotUp(lab.name().to_string()))?;
        let images = match any.labels.get(IMAGES_LABEL).map(String::as_str) {
            Some("debian") => ImageSet::Debian,
            _ => ImageSet::Upstream,
        };
        let extra_env: BTreeMap<String, String> = inst.containers.iter().find_map(|c| c.labels.get(ENV_LABEL)).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        let solution = if let Some(t) = &inst.target {
            Solution::Target(t.clone())
        } else if let Some((svc, image)) = inst.containers.iter().find_map(|c| Some((c, c.labels.get(plan::IMAGE_LABEL)?))) {
            let (entrypoint, command): (Vec<String>, Vec<String>) = svc.labels.get(plan::IMAGE_COMMAND_LABEL).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
            Solution::Image { image: image.clone(), entrypoint, command }
        } else if let Some(svc) = inst.containers.iter().find(|c| c.role == Role::Service) {
            // A folder of a built program: the program's path in it is a label.
            let out = build::out_dir(&inst.instance);
            match svc.labels.get(plan::PROGRAM_LABEL) {
                Some(rel) => Solution::Binary { path: out.join(rel), digest: svc.labels.get("lab.binary").cloned().unwrap_or_default(), root: Some(out) },
                None => Solution::Binary { path: out.join(&lab.def.service.name), digest: svc.labels.get("lab.binary").cloned().unwrap_or_default(), root: None },
            }
        } else {
            Solution::None
        };
        let ports: HashMap<String, u16> = inst.containers.iter().filter_map(|c| Some((c.name.clone(), c.host_port?))).collect();
        let secret = instance_secret(&inst).unwrap_or_default().to_string();
        let popts = PlanOptions { student: student.map(str::to_string), images, solution, ports, extra_env, ready_timeout: None, lab_exe: std::env::current_exe().ok(), secret };
        let mut picker = PortPicker::default();
        let mut plan = plan::plan(lab, &popts, || picker.pick())?;
        drop(picker);
        for c in &plan.containers {
            if !inst.containers.iter().any(|s| s.name == c.name) {
                return Err(Error::Usage(format!("instance {} lacks {}; run `lab up {}` again to converge it", inst.instance, c.name, lab.name())));
            }
        }
        self.backend.expose(&mut plan).await?;
        Ok(plan)
    }

    /// Remove an instance (or all with `None`), saying what was removed.
    pub async fn down(&self, instance: Option<&str>) -> Result<crate::backend::Removed, Error> {
        let removed = self.backend.down(instance).await?;
        // Built programs live in lab's cache; nothing outside it is ever removed.
        let bin = build::cache_dir().join("bin");
        let dirs: Vec<PathBuf> = match instance {
            Some(i) => vec![build::out_dir(i)],
            None => {
                // Everything: the shared builds too.
                let builds = build::cache_dir().join("builds");
                if builds.canonicalize().is_ok_and(|b| b.starts_with(build::cache_dir().canonicalize().unwrap_or_default())) {
                    let _ = std::fs::remove_dir_all(&builds);
                }
                std::fs::read_dir(&bin).map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
            }
        };
        let root = bin.canonicalize().ok();
        for dir in dirs {
            match (dir.canonicalize(), &root) {
                (Ok(d), Some(r)) if d.starts_with(r) && d != *r => {
                    let _ = std::fs::remove_dir_all(d);
                }
                _ => {}
            }
        }
        Ok(removed)
    }
}

/// Wait for Ctrl-C (or SIGTERM).
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// One lab command at a time per instance on this machine: an exclusive lock
/// on a file in lab's cache, held until dropped (the kernel releases it when
/// the process dies, however it dies). A second command says whom it waits for.
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    pub async fn acquire(instance: &str, what: &str, ui: &Ui) -> Result<InstanceLock, Error> {
        let dir = build::cache_dir().join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(format!("{instance}.lock"));
        let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                ui.notice(&format!("waiting for another lab command on {instance} to finish ({}); Ctrl-C stops waiting", holder.trim()));
                let f = file.try_clone().map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
                tokio::select! {
                    r = tokio::task::spawn_blocking(move || f.lock()) => {
                        r.map_err(|e| Error::Io(e.to_string()))?.map_err(|e| Error::Io(format!("locking {}: {e}", path.display())))?;
                    }
                    _ = interrupted() => return Err(Error::Interrupted),
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::Io(format!("locking {}: {e}", path.display()))),
        }
        use std::io::{Seek, Write};
        let mut f = &file;
        let _ = f.set_len(0);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = write!(f, "pid {}: lab {what}", std::process::id());
        Ok(InstanceLock { _file: file })
    }
}

/// Where `lab up` puts the built program of a lab's instance.
pub fn built_program(lab: &Lab, student: Option<&str>) -> PathBuf {
    build::out_dir(&plan::instance_name(lab.name(), student)).join(&lab.def.service.name)
}

impl ContainerSpec {
    fn service_label(&self) -> String {
        if self.role == Role::Service {
            format!("{}-{}", self.service, self.node)
        } else {
            self.service.clone()
        }
    }
}

fn probe_text(c: &ContainerSpec) -> String {
    match &c.ready {
        crate::probe::Readiness::Http { path, status } => {
            format!("GET {path} with {status} on port {}", c.port.container)
        }
        crate::probe::Readiness::Grpc => format!("grpc.health.v1.Health/Check answering SERVING on port {}", c.port.container),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FakeBackend;
    use crate::lab::Catalogue;

    fn session(fake: &FakeBackend) -> Session {
        Session { backend: Backend::Fake(fake.clone()), ui: Ui::new(true) }
    }

    #[tokio::test]
    async fn a_failed_pull_says_how_to_bake_and_exits_4() {
        let fake = FakeBackend::new();
        fake.set_missing(vec!["redis:7.0".into()]);
        let lab = Catalogue::new(vec![]).find("url-shortener").unwrap();
        let opts = UpOptions { student: None, images: ImageSet::Upstream, solution: SolutionArg::None, go_mode: GoMode::Auto, extra_env: BTreeMap::new(), ready_timeout: None };
        let err = session(&fake).up(&lab, &opts).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::LAB_FAILED);
        let shown = format!("{:?}", miette::Report::new(err));
        assert!(shown.contains("pulling redis:7.0 failed"), "{shown}");
        assert!(shown.contains("lab images bake"), "{shown}");
        assert_eq!(fake.calls(), ["pull redis:7.0"], "nothing is created when an image is missing");
    }

    #[tokio::test]
    async fn running_plan_rebuilds_ports_env_and_target_from_labels() {
        let fake = FakeBackend::new();
        let lab = Catalogue::new(vec![]).find("url-shortener").unwrap();
        let mut extra = BTreeMap::new();
        extra.insert("SHORTENER_BUG".to_string(), "memory".to_string());
        let popts = PlanOptions {
            student: Some("eve".into()),
            images: ImageSet::Debian,
            solution: Solution::Target("http://127.0.0.1:9".into()),
            ports: HashMap::new(),
            extra_env: extra.clone(),
            ready_timeout: None,
            lab_exe: None,
            secret: String::new(),
        };
        let mut p = plan::plan(&lab, &popts, || Ok(45678)).unwrap();
        for c in &mut p.containers {
            c.labels.insert(IMAGES_LABEL.into(), "debian".into());
        }
        p.containers[0].labels.insert(ENV_LABEL.into(), serde_json::to_string(&extra).unwrap());
        p.containers[0].labels.insert(SECRET_LABEL.into(), "feedface".into());
        fake.converge(&p).await.unwrap();
        let again = session(&fake).running_plan(&lab, Some("eve")).await.unwrap();
        assert_eq!(again.target.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(again.containers[0].port.host, 45678);
        assert_eq!(again.containers[0].image, ImageSet::Debian.image("redis"));
        assert_eq!(again.service_env[0]["SHORTENER_BUG"], "memory");
        assert_eq!(again.secret, "feedface", "the secret comes back from its label");
        assert!(matches!(session(&fake).running_plan(&lab, Some("nobody")).await, Err(Error::NotUp(_))));
    }
}
