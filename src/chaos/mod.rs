//! Chaos: faults injected into a running instance. Each kind lives in its own
//! file. Every fault is recorded on the backend (so `status`, `heal` and `down`
//! find it from any later invocation, also after a crash), is reversible, and
//! is reverted by `heal`; `down` removes the instance and its records with it.

mod bandwidth;
mod engine;
mod kill;
mod link;
mod netem;
mod outage;
mod partition;
mod pause;
pub mod proxy;
mod restart;
mod stop;
mod target;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backend::{Backend, BackendError, FaultRecord};
use crate::lab::Lab;
use crate::plan::{ContainerSpec, Plan};

pub use engine::Engine;
pub use partition::Shape as PartitionShape;
pub(crate) use target::MetricSelector;
pub use target::{default_target, leader, leader_asked, missing_target, resolve, resolve_for, LEADER_FORMS};

/// Why a fault could not be injected or reverted.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ChaosError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Backend(#[from] BackendError),
    #[error("no target `{target}` in {instance}")]
    #[diagnostic(help("targets: a node number (1..{nodes}), a name ({known}), random, leader, minority, majority, all"))]
    NoTarget { target: String, instance: String, nodes: u32, known: String },
    #[error("cannot find the leader: {0}")]
    #[diagnostic(help(
        "the lab's `service.leader` (lab.yaml) says how lab asks: if the nodes answer but none holds what it reads, fix service.leader; if they answer and none leads, or two do, is a leader elected? `lab status` and `lab logs` show more"
    ))]
    NoLeader(String),
    /// The lab has no `service.leader`: a definition problem, said at once.
    #[error("lab {lab} does not say how to find its service's leader, which {what} needs")]
    #[diagnostic(
        code(lab::chaos::no_leader_probe),
        help("add `service.leader` to the lab's lab.yaml (`lab validate` checks it), in one of its forms: {forms}; or pick another target: a node number, a name, random, minority, majority, all")
    )]
    NoLeaderProbe { lab: String, what: String, forms: &'static str },
    #[error("this kernel has no netem queueing discipline (the sch_netem module): `tc qdisc ... netem` answered: {detail}")]
    #[diagnostic(help("Docker Desktop, WSL2, rootless engines and some kernels lack it. Load it with `modprobe sch_netem` where possible, or put the link through lab's fault proxy, which needs no kernel support: mark the dependency `proxy: true` in lab.yaml and target it (e.g. `lab chaos <lab> latency redis --delay 200ms`)"))]
    NetemUnavailable { detail: String },
    #[error("{0}")]
    #[diagnostic(code(lab::chaos::usage))]
    Usage(String),
}

/// The kinds of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGKILL the targets; healing starts them again.
    Kill,
    /// Stop the targets gracefully (SIGTERM); healing starts them.
    Stop,
    /// Freeze every process of the targets; healing thaws them.
    Pause,
    /// Restart the targets (no lasting fault).
    Restart,
    /// Cut the network: isolate targets, split sides, one way, or one link.
    Partition(partition::Shape),
    /// Stop a dependency (Redis, Postgres, RabbitMQ...); healing brings it back.
    Outage,
    /// Limit the targets' outgoing bandwidth (tbf), e.g. "1mbit".
    Bandwidth { rate: String },
    /// Delay, jitter and loss on the targets' outgoing traffic (netem), or on
    /// the link to a proxied dependency (lab's proxy).
    Netem { delay: Option<Duration>, jitter: Option<Duration>, loss: Option<f64> },
    /// Swallow the traffic of a proxied link: connections hang.
    Blackhole,
    /// Reset the connections of a proxied link.
    Reset,
}

impl ChaosError {
    /// A problem of the lab's definition or of the arguments (exit 2): asking
    /// again, or waiting, cannot help.
    pub fn is_definition(&self) -> bool {
        matches!(self, ChaosError::Usage(_) | ChaosError::NoTarget { .. } | ChaosError::NoLeaderProbe { .. } | ChaosError::Backend(BackendError::Unsupported { .. }))
    }
}

impl Fault {
    /// Parse a fault name and its options (as given on the command line or in a scenario).
    pub fn parse(name: &str, opts: &BTreeMap<String, String>) -> Result<Fault, ChaosError> {
        let dur = |k: &str| -> Result<Option<Duration>, ChaosError> { opts.get(k).map(|v| humantime::parse_duration(v).map_err(|e| ChaosError::Usage(format!("--{k} {v}: {e}")))).transpose() };
        Ok(match name {
            "kill" => Fault::Kill,
            "stop" => Fault::Stop,
            "pause" => Fault::Pause,
            "restart" => Fault::Restart,
            "outage" => Fault::Outage,
            "blackhole" => Fault::Blackhole,
            "reset" => Fault::Reset,
            "partition" => Fault::Partition(partition::Shape::parse(opts)?),
            "bandwidth" => Fault::Bandwidth { rate: opts.get("rate").cloned().ok_or_else(|| ChaosError::Usage("bandwidth needs --rate, e.g. --rate 1mbit".into()))? },
            "latency" | "jitter" | "loss" => {
                let loss = opts.get("loss").map(|v| v.trim_end_matches('%').parse::<f64>().map_err(|_| ChaosError::Usage(format!("--loss {v}: a percentage such as 10%")))).transpose()?;
                let f = Fault::Netem { delay: dur("delay")?, jitter: dur("jitter")?, loss };
                if let Fault::Netem { delay: None, jitter: None, loss: None } = f {
                    return Err(ChaosError::Usage(format!("{name} needs --delay, --jitter or --loss (e.g. --delay 200ms --jitter 50ms --loss 5%)")));
                }
                f
            }
            other => return Err(ChaosError::Usage(format!("unknown fault `{other}`; faults: kill, stop, pause, restart, partition, outage, bandwidth, latency, jitter, loss, blackhole, reset"))),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Pause => "pause",
            Fault::Restart => "restart",
            Fault::Partition(_) => "partition",
            Fault::Outage => "outage",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Netem { .. } => "netem",
            Fault::Blackhole => "blackhole",
            Fault::Reset => "reset",
        }
    }
}

/// What chaos acts on: a running instance.
pub struct Chaos<'a> {
    pub backend: &'a Backend,
    pub plan: &'a Plan,
    pub lab: &'a Lab,
    /// The image network helpers run (the instance's base image).
    pub helper_image: String,
}

impl<'a> Chaos<'a> {
    /// Inject a fault into the targets; returns its record (already stored, except
    /// for restart, which leaves nothing to revert).
    pub async fn inject(&self, fault: &Fault, targets: &[&ContainerSpec], duration: Option<Duration>) -> Result<FaultRecord, ChaosError> {
        self.inject_dir(fault, targets, duration, None, Engine::Lab).await
    }

    /// The same, with a direction for faults on proxied links and the engine that makes the fault.
    pub async fn inject_dir(&self, fault: &Fault, targets: &[&ContainerSpec], duration: Option<Duration>, direction: Option<proxy::Direction>, engine: Engine) -> Result<FaultRecord, ChaosError> {
        if targets.is_empty() {
            return Err(ChaosError::Usage("no targets".into()));
        }
        let names: Vec<String> = targets.iter().map(|c| c.name.clone()).collect();
        // Link faults go through the fault proxy: to a proxied dependency, or between peer nodes that reach each other through it.
        let proxied = targets.iter().all(|t| self.plan.proxied.contains(&t.service) || (self.plan.peer_proxy && t.role == crate::plan::Role::Service));
        let mut kind = fault.kind().to_string();
        let id = format!("{}-{:06x}", fault.kind(), rand::random::<u32>() & 0xffffff);
        let link_toxics = match fault {
            Fault::Netem { delay, jitter, loss } => Some(proxy::Toxics {
                latency_ms: delay.map(|d| d.as_millis() as u64).unwrap_or(0),
                jitter_ms: jitter.map(|d| d.as_millis() as u64).unwrap_or(0),
                loss: loss.unwrap_or(0.0) / 100.0,
                ..Default::default()
            }),
            Fault::Bandwidth { rate } => {
                Some(proxy::Toxics { bandwidth: link::rate_bytes(rate).ok_or_else(|| ChaosError::Usage(format!("--rate {rate}: a rate such as 1mbit, 512kbit, 10kbps")))?, ..Default::default() })
            }
            Fault::Blackhole => Some(proxy::Toxics { blackhole: true, ..Default::default() }),
            Fault::Reset => Some(proxy::Toxics { reset: true, ..Default::default() }),
            _ => None,
        };
        if matches!(fault, Fault::Blackhole | Fault::Reset) && !proxied {
            return Err(ChaosError::Usage(format!(
                "{} acts on the link to a dependency routed through lab's fault proxy; proxied here: {}",
                fault.kind(),
                match (self.plan.proxied.is_empty(), self.plan.peer_proxy) {
                    (true, false) => "none (mark a dependency `proxy: true`, or the service's `peers` `proxy: true`, in lab.yaml)".to_string(),
                    (_, true) => format!("{}the service's nodes", self.plan.proxied.iter().map(|p| format!("{p}, ")).collect::<String>()),
                    (false, false) => self.plan.proxied.join(", "),
                }
            )));
        }
        let via_link = link_toxics.is_some() && proxied && engine == Engine::Lab;
        if via_link {
            kind = "link".into();
        }
        // tc rules live in a node's network namespace, which a stopped node does not have.
        if matches!(fault, Fault::Netem { .. } | Fault::Bandwidth { .. }) && !via_link && engine == Engine::Lab && self.backend.edits_pod_network() {
            self.refuse_down(targets, if matches!(fault, Fault::Bandwidth { .. }) { "a bandwidth limit" } else { "latency, jitter and loss" }).await?;
        }
        // What the fault will change, worked out before anything changes.
        let spec = match (fault, link_toxics) {
            _ if engine != Engine::Lab => engine::prepare(self, engine, &id, fault, targets).await?,
            (_, Some(t)) if via_link => link::prepare(self, t, direction, targets),
            (Fault::Kill, _) => kill::SPEC.clone(),
            (Fault::Outage, _) => outage::prepare(targets)?,
            (Fault::Partition(shape), _) => partition::prepare(self, &id, shape, targets).await?,
            (Fault::Bandwidth { rate }, _) => bandwidth::prepare(rate)?,
            (Fault::Netem { delay, jitter, loss }, _) => netem::prepare(*delay, *jitter, *loss),
            (Fault::Stop | Fault::Pause | Fault::Restart, _) => serde_json::json!({}),
            (Fault::Blackhole | Fault::Reset, _) => unreachable!("refused above unless proxied"),
        };
        let now = crate::backend::unix_now();
        let mut rec = FaultRecord { id, instance: self.plan.instance.clone(), kind, targets: names, spec, since: now, until: duration.map(|d| now + d.as_secs().max(1)), applied: false };
        if *fault == Fault::Restart {
            // Leaves nothing to revert: no record.
            restart::inject(self, targets).await?;
            rec.applied = true;
            return Ok(rec);
        }
        // Write-ahead: the record exists before the fault does, so that a crash
        // (kill -9, a lost connection) at any point leaves something `heal`,
        // `down` and the next command revert from.
        self.backend.record_fault(&rec).await?;
        let applied = if engine != Engine::Lab {
            engine::apply(self, &rec.spec).await
        } else if via_link {
            link::apply(self, &rec.spec).await
        } else {
            match fault {
                Fault::Kill => kill::apply(self, targets).await,
                Fault::Stop => stop::apply(self, targets).await,
                Fault::Pause => pause::apply(self, targets).await,
                Fault::Outage => outage::apply(self, targets).await,
                Fault::Partition(_) => partition::apply(self, &rec.spec).await,
                Fault::Bandwidth { .. } => bandwidth::apply(self, &rec.spec, targets).await,
                Fault::Netem { .. } => netem::apply(self, &rec.spec, targets).await,
                Fault::Restart | Fault::Blackhole | Fault::Reset => unreachable!("handled above"),
            }
        };
        if let Err(e) = applied {
            // Take back whatever took effect, then the record.
            if let Err(undo) = self.undo(&rec).await {
                tracing::warn!("undoing the failed {} left its record {}: {undo}", rec.kind, rec.id);
                return Err(e);
            }
            let _ = self.backend.clear_fault(&rec).await;
            return Err(e);
        }
        rec.applied = true;
        self.backend.mark_applied(&rec).await?;
        Ok(rec)
    }

    /// Revert one fault and forget it.
    pub async fn revert(&self, rec: &FaultRecord) -> Result<(), ChaosError> {
        self.undo(rec).await?;
        self.backend.clear_fault(rec).await?;
        Ok(())
    }

    /// Revert a fault's effects, keeping its record. Works from the record
    /// alone, whether or not the fault was (wholly) applied.
    async fn undo(&self, rec: &FaultRecord) -> Result<(), ChaosError> {
        if rec.spec["engine"].as_str().is_some_and(|e| e != Engine::Lab.name()) {
            return engine::undo(self, rec).await;
        }
        match rec.kind.as_str() {
            "kill" | "stop" | "outage" => stop::revert(self, rec).await?,
            "pause" => pause::revert(self, rec).await?,
            "partition" => partition::revert(self, rec).await?,
            "bandwidth" | "netem" => bandwidth::revert(self, rec).await?,
            "link" => link::revert(self, rec).await?,
            _ => {}
        }
        Ok(())
    }

    /// Revert every fault of the instance, newest first.
    pub async fn heal(&self) -> Result<Vec<FaultRecord>, ChaosError> {
        let mut all = self.backend.faults(Some(&self.plan.instance)).await?;
        all.reverse();
        for rec in &all {
            self.revert(rec).await?;
        }
        Ok(all)
    }

    fn container(&self, name: &str) -> Option<&'a ContainerSpec> {
        self.plan.containers.iter().find(|c| c.name == name)
    }

    /// Whether a container is stopped (exited or dead): it has no network
    /// namespace and no address until it starts again.
    async fn is_down(&self, name: &str) -> bool {
        matches!(self.backend.exited(name).await, Ok(Some(_)))
    }

    /// Refuse a fault made in the targets' network namespaces when one of
    /// them is stopped, naming the fault that stopped it and what to do.
    async fn refuse_down(&self, targets: &[&ContainerSpec], what: &str) -> Result<(), ChaosError> {
        for t in targets {
            if !self.is_down(&t.name).await {
                continue;
            }
            let by =
                self.backend.faults(Some(&self.plan.instance)).await.unwrap_or_default().into_iter().find(|f| matches!(f.kind.as_str(), "kill" | "stop" | "outage") && f.targets.contains(&t.name));
            let short = if t.role == crate::plan::Role::Service { link::alias(t) } else { t.service.clone() };
            let (why, fix) = match by {
                Some(f) => (format!("fault {} ({}) stopped it and is in force", f.id, f.kind), format!("heal it first (`lab chaos {} heal`), or pick a running target", self.lab.name())),
                None => ("it was stopped outside lab's faults".to_string(), format!("start it again (`lab up {}`), or pick a running target", self.lab.name())),
            };
            return Err(ChaosError::Usage(format!("{what} would be set in {short}'s network namespace, which exists only while it runs, and {short} is not running ({why}): {fix}")));
        }
        Ok(())
    }

    /// Make again, after lab started `names`, what the faults in force kept
    /// in their network namespaces or keyed on their addresses: a container
    /// that stopped lost both (Docker gives it a new namespace when it
    /// starts, and an address that may differ from the old one). Partitions
    /// are cut again at both ends, tc faults put back, the proxy told their
    /// new addresses. Called as soon as they run, before they are ready.
    pub(crate) async fn after_start(&self, names: &[&str]) -> Result<(), ChaosError> {
        if names.is_empty() {
            return Ok(());
        }
        let faults = self.backend.faults(Some(&self.plan.instance)).await?;
        for rec in faults.iter().filter(|f| f.applied && f.spec["engine"].as_str().is_none_or(|e| e == Engine::Lab.name())) {
            match rec.kind.as_str() {
                "partition" => partition::reapply(self, rec, names).await?,
                "link" => link::reapply(self, rec, names).await?,
                "netem" | "bandwidth" if self.backend.edits_pod_network() => {
                    let script = if rec.kind == "netem" { netem::script(&rec.spec) } else { bandwidth::script(&rec.spec) };
                    for n in names.iter().filter(|n| rec.targets.iter().any(|t| t == *n)) {
                        self.backend.net_exec(n, &self.helper_image, &script).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Wait until a container is ready again (after start, unpause...).
    async fn wait_ready(&self, name: &str) -> Result<(), ChaosError> {
        let Some(c) = self.container(name) else {
            return Ok(());
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], c.port.host));
        crate::probe::wait_ready(&c.ready, addr, c.ready_timeout).await.map_err(|e| ChaosError::Backend(BackendError::Docker { op: format!("waiting for {name} to be ready again"), detail: e }))?;
        self.backend.wait_routed(name, c.ready_timeout).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
