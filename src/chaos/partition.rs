//! partition: cut the network with iptables in the targets' network namespaces
//! (one chain per fault, so faults heal independently). Shapes: isolate the
//! targets from everything else in the instance; split the nodes into sides;
//! one way (the targets cannot open connections to `to`, answers still flow);
//! one link (targets and `to` cannot talk either way).

use std::collections::BTreeMap;

use super::link::{alias, Rule};
use super::proxy::Toxics;
use super::{resolve, Chaos, ChaosError};
use crate::backend::{BackendError, FaultRecord};
use crate::plan::ContainerSpec;

/// The shape of a partition, with targets still unresolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Isolate,
    /// Sides, each a list of targets: `--split "1,2|3"`.
    Split(Vec<Vec<String>>),
    /// `--to X --one-way`.
    OneWay(String),
    /// `--to X`.
    Link(String),
}

impl Shape {
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Shape, ChaosError> {
        if let Some(split) = opts.get("split") {
            let sides: Vec<Vec<String>> = split.split('|').map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).collect();
            if sides.len() < 2 || sides.iter().any(|s| s.is_empty()) {
                return Err(ChaosError::Usage(format!("--split {split}: give two or more sides separated by |, e.g. \"1,2|3\"")));
            }
            return Ok(Shape::Split(sides));
        }
        match (opts.get("to"), opts.contains_key("one-way")) {
            (Some(to), true) => Ok(Shape::OneWay(to.clone())),
            (Some(to), false) => Ok(Shape::Link(to.clone())),
            (None, true) => Err(ChaosError::Usage("--one-way needs --to TARGET".into())),
            (None, false) => Ok(Shape::Isolate),
        }
    }
}

fn chain(id: &str) -> String {
    let mut c = format!("LAB-{id}");
    c.truncate(28);
    c
}

/// Rules for one namespace: drop traffic with `both` (either way) and new
/// connections to `one_way`.
fn script(chain: &str, both: &[String], one_way: &[String]) -> String {
    let mut s = format!("set -e\niptables -w -N {chain}\niptables -w -I INPUT 1 -j {chain}\niptables -w -I OUTPUT 1 -j {chain}\n");
    for ip in both {
        s.push_str(&format!("iptables -w -A {chain} -s {ip} -j DROP\niptables -w -A {chain} -d {ip} -j DROP\n"));
    }
    for ip in one_way {
        s.push_str(&format!("iptables -w -A {chain} -d {ip} -m conntrack --ctstate NEW -j DROP\n"));
    }
    s
}

fn unscript(chain: &str) -> String {
    let mut s = String::new();
    // The chain, and the one a re-made cut is built in (left over if that was interrupted).
    for ch in [chain.to_string(), spare(chain)] {
        s.push_str(&format!("iptables -w -D INPUT -j {ch} 2>/dev/null; iptables -w -D OUTPUT -j {ch} 2>/dev/null; iptables -w -F {ch} 2>/dev/null; iptables -w -X {ch} 2>/dev/null; "));
    }
    s.push_str("true");
    s
}

/// The chain a cut is re-made in before it takes the place of the old one
/// (same length as `chain`, so within iptables' limit).
fn spare(chain: &str) -> String {
    match chain.strip_prefix("LAB-") {
        Some(rest) => format!("LABN{rest}"),
        None => format!("N{}", &chain[..chain.len().min(27)]),
    }
}

/// Re-make a cut in a namespace where its chain may already be, with the
/// addresses of now, without a moment uncut: the new rules go into a spare
/// chain that is hooked in before the old chain is unhooked and removed,
/// then takes the old chain's name (`iptables -E`; the hooks follow it), so
/// that heal, which removes the chain by its name, removes it.
fn rescript(chain: &str, both: &[String], one_way: &[String]) -> String {
    let sp = spare(chain);
    let mut s = format!("iptables -w -D INPUT -j {sp} 2>/dev/null; iptables -w -D OUTPUT -j {sp} 2>/dev/null; iptables -w -F {sp} 2>/dev/null; iptables -w -X {sp} 2>/dev/null\n");
    s.push_str(&script(&sp, both, one_way));
    s.push_str(&format!("iptables -w -D INPUT -j {chain} 2>/dev/null || true\niptables -w -D OUTPUT -j {chain} 2>/dev/null || true\niptables -w -F {chain} 2>/dev/null || true\niptables -w -X {chain} 2>/dev/null || true\niptables -w -E {sp} {chain}\n"));
    s
}

async fn ips(c: &Chaos<'_>, cs: &[&ContainerSpec]) -> Result<Vec<String>, ChaosError> {
    let mut out = Vec::new();
    for x in cs {
        match c.backend.ips(&x.name).await {
            Ok(ips) => out.extend(ips),
            // A stopped container has no address and nothing to cut.
            Err(BackendError::Docker { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Every cut of a partition: (owner of the rules, peers cut both ways, peers cut one way).
pub(super) type Cuts<'a> = Vec<(&'a ContainerSpec, Vec<&'a ContainerSpec>, Vec<&'a ContainerSpec>)>;

/// The cuts a shape makes between the instance's containers.
pub(super) async fn cuts<'a>(c: &Chaos<'a>, shape: &Shape, targets: &[&'a ContainerSpec]) -> Result<Cuts<'a>, ChaosError> {
    let mut plan: Cuts<'a> = Vec::new();
    match shape {
        Shape::Isolate => {
            for t in targets {
                let others: Vec<&ContainerSpec> = c.plan.containers.iter().filter(|x| !targets.iter().any(|t| t.name == x.name)).collect();
                plan.push((t, others, vec![]));
            }
        }
        Shape::Link(to) | Shape::OneWay(to) => {
            let peers = resolve(c, to).await?;
            for t in targets {
                let p: Vec<&ContainerSpec> = peers.iter().copied().filter(|p| p.name != t.name).collect();
                if matches!(shape, Shape::Link(_)) {
                    plan.push((t, p, vec![]));
                } else {
                    plan.push((t, vec![], p));
                }
            }
        }
        Shape::Split(sides) => {
            let mut resolved = Vec::new();
            for side in sides {
                let mut v: Vec<&ContainerSpec> = Vec::new();
                for sel in side {
                    v.extend(resolve(c, sel).await?);
                }
                resolved.push(v);
            }
            // Rules on every node but those of the largest side: each cut is enforced at one end.
            let largest = (0..resolved.len()).max_by_key(|i| resolved[*i].len()).unwrap_or(0);
            for (i, side) in resolved.iter().enumerate() {
                if i == largest {
                    continue;
                }
                let others: Vec<&ContainerSpec> = resolved.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, s)| s.iter().copied()).collect();
                for t in side {
                    plan.push((t, others.clone(), vec![]));
                }
            }
        }
    }
    Ok(plan)
}

/// Work out every cut (addresses, rules) without changing anything: the
/// result is the fault's record, written before `apply` runs.
pub(super) async fn prepare(c: &Chaos<'_>, id: &str, shape: &Shape, targets: &[&ContainerSpec]) -> Result<serde_json::Value, ChaosError> {
    let ch = chain(id);
    let plan = cuts(c, shape, targets).await?;
    if !c.backend.edits_pod_network() {
        return through_proxy(c, shape, &plan);
    }
    // A stopped node has no network namespace to put rules in, and no
    // address for the others' rules to name: Docker releases its address when
    // it stops, and gives it one when it starts that may differ (another
    // container may have taken the old one meanwhile). So rules cannot be
    // made from the running side ahead of its start either. While it is down
    // nothing reaches it anyway; when lab starts it again (healing the kill or
    // stop, a restart), `reapply` makes every cut it is part of: its own
    // rules in its new namespace, and the rules of the running nodes cut from
    // it with its new address. Both directions of a cut are in each of those
    // rule sets (-s and -d), so either end alone keeps it whole.
    let mut cuts = Vec::new();
    let mut waiting = Vec::new();
    for (owner, both, one) in &plan {
        if c.is_down(&owner.name).await {
            waiting.push(owner.name.clone());
        }
        let names = |v: &Vec<&ContainerSpec>| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        cuts.push(serde_json::json!({"owner": owner.name, "both": ips(c, both).await?, "one_way": ips(c, one).await?, "both_peers": names(both), "one_way_peers": names(one)}));
    }
    for (_, both, one) in &plan {
        for p in both.iter().chain(one.iter()) {
            if !waiting.contains(&p.name) && c.is_down(&p.name).await {
                waiting.push(p.name.clone());
            }
        }
    }
    // Links through the fault proxy (peers, dependencies marked `proxy`)
    // bypass the rules above (their packets go to the proxy): cut those links
    // in the proxy too. An isolated node is cut from the proxy itself.
    let rules = if matches!(shape, Shape::Isolate) { Vec::new() } else { proxy_cuts(c.plan, &plan).0 };
    let namespaces: Vec<&str> = plan.iter().map(|(o, _, _)| o.name.as_str()).collect();
    let mut spec = serde_json::json!({"chain": ch, "namespaces": namespaces, "cuts": cuts, "shape": format!("{shape:?}"), "proxy_rules": rules});
    if !waiting.is_empty() {
        let short: Vec<String> = waiting.iter().map(|n| c.container(n).map(super::link::alias).unwrap_or_else(|| n.clone())).collect();
        spec["note"] = serde_json::json!(format!(
            "{} not running: cut from the others as soon as lab starts it again (healing the fault that stopped it, or a restart); started by other means (docker start), it would come back uncut",
            short.join(", ") + if short.len() == 1 { " is" } else { " are" }
        ));
    }
    Ok(spec)
}

/// Make the cuts `prepare` recorded. On failure the caller reverts from the
/// record (which names every namespace, applied or not).
pub(super) async fn apply(c: &Chaos<'_>, spec: &serde_json::Value) -> Result<(), ChaosError> {
    let ch = spec["chain"].as_str().unwrap_or_default();
    let strings = |v: &serde_json::Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect() };
    for cut in spec["cuts"].as_array().into_iter().flatten() {
        let owner = cut["owner"].as_str().unwrap_or_default();
        // A stopped node gets its rules when lab starts it (`reapply`).
        if c.is_down(owner).await {
            continue;
        }
        match c.backend.net_exec(owner, &c.helper_image, &script(ch, &strings(&cut["both"]), &strings(&cut["one_way"]))).await {
            Ok(_) => {}
            // Stopped since it was asked (by another fault, at this moment): the same.
            Err(BackendError::Docker { .. }) if c.is_down(owner).await => {}
            Err(e) => return Err(e.into()),
        }
    }
    let rules: Vec<Rule> = serde_json::from_value(spec["proxy_rules"].clone()).unwrap_or_default();
    if !rules.is_empty() {
        super::link::set(c, &rules, &Toxics { blackhole: true, ..Default::default() }).await?;
    }
    Ok(())
}

/// A partition where lab cannot change the pods' network (Kubernetes): every
/// cut link must go through lab's fault proxy, where it becomes a black hole
/// for the connections of the cut node; a link that does not is refused
/// (exit 2), never silently left open.
fn through_proxy(c: &Chaos<'_>, shape: &Shape, plan: &[(&ContainerSpec, Vec<&ContainerSpec>, Vec<&ContainerSpec>)]) -> Result<serde_json::Value, ChaosError> {
    let (rules, uncut) = proxy_cuts(c.plan, plan);
    if !uncut.is_empty() {
        return Err(BackendError::Unsupported {
            what: format!("cutting {} on {}", uncut.join(", "), c.backend.name()),
            why: "lab's pods may not change their own network (no NET_ADMIN), and these links do not go through lab's fault proxy".into(),
            hint: "route the link through the proxy: mark the dependency `proxy: true`, or the service's `peers` `proxy: true`, in lab.yaml; links through the proxy are cut on every cluster".into(),
        }
        .into());
    }
    let links: std::collections::BTreeSet<&str> = rules.iter().map(|r| r.link.as_str()).collect();
    let note = format!("cut through lab's fault proxy (links {}); connections that do not go through it are not cut", links.into_iter().collect::<Vec<_>>().join(", "));
    Ok(serde_json::json!({"chain": "", "namespaces": [], "cuts": [], "shape": format!("{shape:?}"), "proxy_rules": rules, "note": note}))
}

/// The proxy rules that cut each (owner, peers) pair, and the pairs no proxy link carries.
pub(super) fn proxy_cuts(p: &crate::plan::Plan, plan: &[(&ContainerSpec, Vec<&ContainerSpec>, Vec<&ContainerSpec>)]) -> (Vec<Rule>, Vec<String>) {
    use crate::plan::Role;
    let node = |x: &ContainerSpec| x.role == Role::Service;
    let proxied = |x: &ContainerSpec| x.role == Role::Dependency && p.proxied.contains(&x.service);
    let is_proxy = |x: &ContainerSpec| x.role == Role::Dependency && x.service == "proxy";
    let mut rules: Vec<Rule> = Vec::new();
    let mut uncut = Vec::new();
    let mut add = |r: Rule| {
        if !rules.contains(&r) {
            rules.push(r);
        }
    };
    for (owner, both, one) in plan {
        for (peer, two_way) in both.iter().map(|x| (x, true)).chain(one.iter().map(|x| (x, false))) {
            let (a, b) = (*owner, *peer);
            if is_proxy(a) || is_proxy(b) {
                // The proxy is the medium: cutting the links through it covers it.
                continue;
            }
            if node(a) && node(b) && p.peer_proxy {
                add(Rule { link: alias(b), from: Some(alias(a)), direction: None });
                if two_way {
                    add(Rule { link: alias(a), from: Some(alias(b)), direction: None });
                }
            } else if node(a) && proxied(b) {
                add(Rule { link: b.service.clone(), from: Some(alias(a)), direction: None });
            } else if proxied(a) && node(b) && two_way {
                add(Rule { link: a.service.clone(), from: Some(alias(b)), direction: None });
            } else {
                uncut.push(format!("{} {} {}", a.name, if two_way { "<->" } else { "->" }, b.name));
            }
        }
    }
    (rules, uncut)
}

/// Make again the cuts of a partition in force that `started` (containers
/// lab has just started) are part of: the rules in their own new namespaces,
/// and, in the namespaces of the running nodes cut from them, rules with their
/// new addresses; and the proxy's rules for their connections, which it knew
/// by their old address (or none). Heal removes all of it as before: the same
/// chain, in the namespaces the record names.
pub(super) async fn reapply(c: &Chaos<'_>, rec: &FaultRecord, started: &[&str]) -> Result<(), ChaosError> {
    let aliases: Vec<String> = started.iter().filter_map(|n| c.container(n)).map(super::link::alias).collect();
    let rules: Vec<Rule> =
        serde_json::from_value::<Vec<Rule>>(rec.spec["proxy_rules"].clone()).unwrap_or_default().into_iter().filter(|r| r.from.as_ref().is_some_and(|f| aliases.contains(f))).collect();
    if !rules.is_empty() {
        super::link::set(c, &rules, &Toxics { blackhole: true, ..Default::default() }).await?;
    }
    let ch = rec.spec["chain"].as_str().unwrap_or_default();
    if ch.is_empty() {
        return Ok(());
    }
    let strings = |v: &serde_json::Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect() };
    for cut in rec.spec["cuts"].as_array().into_iter().flatten() {
        let owner = cut["owner"].as_str().unwrap_or_default();
        let (both_peers, one_peers) = (strings(&cut["both_peers"]), strings(&cut["one_way_peers"]));
        let touched = started.contains(&owner) || both_peers.iter().chain(one_peers.iter()).any(|p| started.contains(&p.as_str()));
        if !touched || c.is_down(owner).await {
            continue;
        }
        // Records made before peers were named hold addresses only: use those.
        let known = cut.get("both_peers").is_some();
        let specs = |names: &[String]| names.iter().filter_map(|n| c.container(n)).collect::<Vec<&ContainerSpec>>();
        let (both, one) = if known { (ips(c, &specs(&both_peers)).await?, ips(c, &specs(&one_peers)).await?) } else { (strings(&cut["both"]), strings(&cut["one_way"])) };
        c.backend.net_exec(owner, &c.helper_image, &rescript(ch, &both, &one)).await.map_err(|e| match e {
            BackendError::Docker { op, detail } => BackendError::Docker { op: format!("making partition {} again in {owner} after it started ({op})", rec.id), detail },
            e => e,
        })?;
    }
    Ok(())
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    let ch = rec.spec["chain"].as_str().unwrap_or_default().to_string();
    let owners: Vec<String> = rec.spec["namespaces"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    if let Ok(rules) = serde_json::from_value::<Vec<Rule>>(rec.spec["proxy_rules"].clone()) {
        super::link::clear(c, &rules).await;
    }
    for name in owners {
        match c.backend.net_exec(&name, &c.helper_image, &unscript(&ch)).await {
            Ok(_) => {}
            // Stopped or gone since: its namespace, and the rules, went with it.
            Err(BackendError::Docker { .. } | BackendError::NoContainer(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_from_options() {
        let o = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert_eq!(Shape::parse(&o(&[])).unwrap(), Shape::Isolate);
        assert_eq!(Shape::parse(&o(&[("split", "1,2|3")])).unwrap(), Shape::Split(vec![vec!["1".into(), "2".into()], vec!["3".into()]]));
        assert_eq!(Shape::parse(&o(&[("to", "2"), ("one-way", "")])).unwrap(), Shape::OneWay("2".into()));
        assert_eq!(Shape::parse(&o(&[("to", "redis")])).unwrap(), Shape::Link("redis".into()));
        assert!(Shape::parse(&o(&[("split", "1,2")])).is_err());
        assert!(Shape::parse(&o(&[("one-way", "")])).is_err());
    }

    #[test]
    fn scripts_use_one_chain_per_fault() {
        let s = script("LAB-x", &["10.0.0.2".into()], &["10.0.0.3".into()]);
        assert!(s.contains("iptables -w -A LAB-x -s 10.0.0.2 -j DROP"));
        assert!(s.contains("-d 10.0.0.3 -m conntrack --ctstate NEW -j DROP"));
        assert!(unscript("LAB-x").contains("-X LAB-x") && unscript("LAB-x").contains("-X LABNx"));
        // Re-made in a spare chain that then takes the old one's name: never a moment uncut.
        let r = rescript("LAB-x", &["10.0.0.9".into()], &[]);
        let (add, drop_old, rename) = (r.find("-A LABNx -s 10.0.0.9 -j DROP").unwrap(), r.find("-D INPUT -j LAB-x").unwrap(), r.find("-E LABNx LAB-x").unwrap());
        assert!(add < drop_old && drop_old < rename, "{r}");
        assert!(r.find("-I INPUT 1 -j LABNx").unwrap() < drop_old, "{r}");
        assert!(chain("partition-abcdef0123456789abcdef").len() <= 28);
    }
}
