//! `lab chaos`: inject a fault into a running lab, heal it, or show the faults
//! in force. With one lab up, its name may be left out.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;

use super::{interrupted, session};
use crate::backend::FaultRecord;
use crate::chaos::{resolve_for, Chaos, Fault};
use crate::error::{exit, Error};
use crate::lab::Catalogue;

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// [LAB] FAULT|SCENARIO|heal|status [TARGET]. Faults: kill, stop, pause, restart,
    /// partition, outage, bandwidth, latency, jitter, loss, and on links through lab's
    /// fault proxy also blackhole and reset. Targets: a node number,
    /// a name (app-2, redis), random, leader (the lab's `service.leader` says how to
    /// find it), minority, majority, all. Without a target (here, in a scenario or in
    /// the workload's nemesis alike): `partition --split` acts on all nodes (its sides
    /// name them), kill, stop, pause, restart, partition, bandwidth, latency, jitter
    /// and loss on one random node; outage, blackhole and reset need one named.
    #[arg(required = true, num_args = 1..=3, value_name = "ARGS")]
    pub args: Vec<String>,
    #[arg(long)]
    pub student: Option<String>,
    /// Revert the fault after this long (lab waits; Ctrl-C reverts early).
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// partition: sides, e.g. "1,2|3" (without a target it acts on all nodes).
    #[arg(long)]
    pub split: Option<String>,
    /// partition: cut only the link to this target (with --one-way: only connections opened towards it).
    #[arg(long)]
    pub to: Option<String>,
    /// partition with --to: the targets cannot open connections to --to; the other way still works.
    #[arg(long)]
    pub one_way: bool,
    /// latency: added delay, e.g. 200ms.
    #[arg(long)]
    pub delay: Option<String>,
    /// latency/jitter: variation, e.g. 50ms.
    #[arg(long)]
    pub jitter: Option<String>,
    /// loss: share of packets dropped, e.g. 10%.
    #[arg(long)]
    pub loss: Option<String>,
    /// bandwidth: a tc rate, e.g. 1mbit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Who makes the fault: `lab` (lab's own means: iptables/tc on Docker, its fault proxy
    /// everywhere), or on Kubernetes `network-policy` (partitions as NetworkPolicies, checked to
    /// be enforced) or `chaos-mesh` (Chaos Mesh's objects, where it is installed).
    #[arg(long, value_name = "ENGINE", env = "LAB_CHAOS_ENGINE", default_value = "lab", value_parser = ["lab", "network-policy", "chaos-mesh"])]
    pub chaos_engine: String,
    /// On a proxied link: only traffic towards the dependency (up) or back from it (down).
    #[arg(long, value_parser = ["up", "down"])]
    pub direction: Option<String>,
}

fn print_record(r: &FaultRecord) {
    let until = r.until.map(|u| format!(", until {}", humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(u)))).unwrap_or_default();
    let applying = if r.applied { "" } else { " (was being applied: may be in force in part)" };
    println!("  {:<18} {:<10} {}{until}{applying}", r.id, r.kind, r.targets.join(", "));
}

pub async fn run(cat: &Catalogue, a: ChaosArgs, quiet: bool) -> Result<i32, Error> {
    let s = session(quiet).await?;
    s.backend.ping().await?;
    // Is the first word a lab?
    let (lab, rest) = match cat.find(&a.args[0]) {
        Ok(l) if a.args.len() >= 2 => (l, &a.args[1..]),
        Ok(l) if l.def.service.run == crate::lab::RunKind::Cli => {
            return Err(Error::Usage(format!("{} is a command-line lab: your program runs only while a check runs it, so chaos has nothing to break", l.name())));
        }
        _ => {
            let running = s.backend.instances(None).await?;
            let mine: Vec<_> = running.iter().filter(|i| i.student == a.student).collect();
            match mine.as_slice() {
                [one] => (cat.find(&one.lab)?, &a.args[..]),
                [] => {
                    return Err(Error::Usage(format!(
                        "no lab is up{}; name the lab: lab chaos <lab> {}",
                        a.student.as_ref().map(|s| format!(" for student {s}")).unwrap_or_default(),
                        a.args.join(" ")
                    )))
                }
                many => {
                    return Err(Error::Usage(format!("several labs are up ({}); name one: lab chaos <lab> {}", many.iter().map(|i| i.lab.as_str()).collect::<Vec<_>>().join(", "), a.args.join(" "))));
                }
            }
        }
    };
    let action = rest[0].as_str();
    let target = rest.get(1).cloned();
    if lab.def.service.run == crate::lab::RunKind::Cli {
        // Nothing runs between the checks of a command-line lab: there is nothing to break.
        return match action {
            "status" | "heal" => {
                println!("{} is a command-line lab: nothing runs, so there are no faults{}", lab.name(), if action == "heal" { " to heal" } else { "" });
                Ok(exit::OK)
            }
            _ => Err(Error::Usage(format!(
                "{} is a command-line lab: your program runs only while a check runs it, so chaos has nothing to break. Its checks feed it bad input instead (a corrupt data file, a write that fails); see lab show {}",
                lab.name(),
                lab.name()
            ))),
        };
    }
    // `status` only reads; faults wait for the instance's other commands.
    let lock = if action == "status" { None } else { Some(crate::session::InstanceLock::acquire(&crate::plan::instance_name(lab.name(), a.student.as_deref()), "chaos", &s.ui).await?) };
    let plan = s.running_plan(&lab, a.student.as_deref()).await?;
    if action != "heal" {
        s.revert_faults(&lab, &plan, true).await?;
    }
    let chaos = Chaos { backend: &s.backend, plan: &plan, lab: &lab, helper_image: plan.helper_image() };
    let err = |e: crate::chaos::ChaosError| Error::Chaos(Box::new(e));

    match action {
        "status" => {
            let faults = s.backend.faults(Some(&plan.instance)).await?;
            if faults.is_empty() {
                println!("no faults in force in {}", plan.instance);
            } else {
                println!("faults in force in {}:", plan.instance);
                faults.iter().for_each(print_record);
            }
            return Ok(exit::OK);
        }
        "heal" => {
            let healed = chaos.heal().await.map_err(err)?;
            if healed.is_empty() {
                println!("nothing to heal in {}", plan.instance);
            } else {
                println!("healed {} fault(s) in {}:", healed.len(), plan.instance);
                healed.iter().for_each(print_record);
            }
            return Ok(exit::OK);
        }
        _ => {}
    }

    // A named scenario of the lab, or a fault.
    let mut opts = BTreeMap::new();
    let (fault_name, target, duration) = match lab.def.chaos.get(action) {
        Some(sc) => {
            opts = sc.options.clone();
            (sc.fault.clone(), target.or(sc.target.clone()), a.duration.or(sc.duration))
        }
        None => (action.to_string(), target, a.duration),
    };
    for (k, v) in [("split", &a.split), ("to", &a.to), ("delay", &a.delay), ("jitter", &a.jitter), ("loss", &a.loss), ("rate", &a.rate)] {
        if let Some(v) = v {
            opts.insert(k.to_string(), v.clone());
        }
    }
    if a.one_way {
        opts.insert("one-way".into(), String::new());
    }
    let fault = Fault::parse(&fault_name, &opts).map_err(err)?;
    // Without a target, the fault's default: the same for scenarios and the workload's nemesis.
    let targets = resolve_for(&chaos, &fault, target.as_deref()).await.map_err(err)?;
    let direction = match a.direction.as_deref() {
        Some("up") => Some(crate::chaos::proxy::Direction::Up),
        Some("down") => Some(crate::chaos::proxy::Direction::Down),
        _ => None,
    };
    let engine = crate::chaos::Engine::parse(&a.chaos_engine).expect("clap checked the value");
    let rec = chaos.inject_dir(&fault, &targets, duration, direction, engine).await.map_err(err)?;
    println!("{} {} on {}", rec.id, rec.kind, rec.targets.join(", "));
    if let Some(note) = rec.spec["note"].as_str() {
        s.ui.line(note);
    }
    if let (Some(d), true) = (duration, rec.kind != "restart") {
        // Other commands (`heal` from another terminal) need not wait for the timer.
        drop(lock);
        s.ui.line(&format!("reverting in {} (Ctrl-C reverts now)", humantime::format_duration(d)));
        let stopped = tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = interrupted() => true,
        };
        chaos.revert(&rec).await.map_err(err)?;
        println!("{} reverted", rec.id);
        if stopped {
            // Exit 130: interrupted, and what this run did is undone.
            return Err(Error::Interrupted);
        }
    }
    Ok(exit::OK)
}
