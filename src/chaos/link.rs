//! Link faults through lab's fault proxy: latency, jitter, loss, bandwidth,
//! reset and blackhole on the link from the service to a dependency marked
//! `proxy: true`, per direction. Needs no privileges and no netem.

use std::net::SocketAddr;

use std::collections::BTreeMap;

use super::proxy::{control_all, Command, Direction, Toxics};
use super::{Chaos, ChaosError};
use crate::backend::FaultRecord;
use crate::plan::ContainerSpec;

/// A tc-style rate (`1mbit`, `512kbit`, `10mbps`, `2000bps`) in bytes per second.
pub(super) fn rate_bytes(rate: &str) -> Option<u64> {
    let i = rate.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = rate.split_at(i);
    let n: f64 = num.parse().ok()?;
    let bits = match unit.to_ascii_lowercase().as_str() {
        "bit" => n,
        "kbit" => n * 1e3,
        "mbit" => n * 1e6,
        "gbit" => n * 1e9,
        "bps" => n * 8.0,
        "kbps" => n * 8e3,
        "mbps" => n * 8e6,
        _ => return None,
    };
    Some((bits / 8.0).max(1.0) as u64)
}

/// Where the proxy's control port is reached from the host, and its token.
fn control_addr(c: &Chaos<'_>) -> Result<(SocketAddr, String), ChaosError> {
    let p = c.plan.containers.iter().find(|x| x.service == "proxy").ok_or_else(|| ChaosError::Usage("this instance runs no fault proxy".into()))?;
    Ok((SocketAddr::from(([127, 0, 0, 1], p.port.host)), super::proxy::token_for(&c.plan.secret)))
}

/// One toxic setting on the proxy: a link, the client it applies to (none: all), a direction (none: both).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Rule {
    pub link: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub direction: Option<Direction>,
}

/// A node's name on the instance network (its peer link is named after it).
pub(super) fn alias(c: &ContainerSpec) -> String {
    format!("{}-{}", c.service, c.node)
}

/// The rules that slow down what `targets` send: to a proxied dependency, the
/// link to it (in `direction`, default both); between proxied peers, what each
/// target node sends (its answers on its own link, its requests on the others').
pub(super) fn rules_for(c: &Chaos<'_>, direction: Option<Direction>, targets: &[&ContainerSpec]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for t in targets {
        if c.plan.proxied.contains(&t.service) {
            rules.push(Rule { link: t.service.clone(), from: None, direction });
        } else {
            rules.push(Rule { link: alias(t), from: None, direction: Some(Direction::Down) });
            for k in c.plan.replicas().filter(|k| k.name != t.name) {
                rules.push(Rule { link: alias(k), from: Some(alias(t)), direction: Some(Direction::Up) });
            }
        }
    }
    rules
}

/// Set `toxics` for every rule; on failure, clear what was set.
pub(super) async fn set(c: &Chaos<'_>, rules: &[Rule], toxics: &Toxics) -> Result<(), ChaosError> {
    let (addr, token) = control_addr(c)?;
    // Every address first, then all rules at once: a partition takes effect
    // on all its links together (a node cut on one link only for a second
    // would notice, and act, before the fault is whole).
    let mut known: BTreeMap<String, Option<Vec<std::net::IpAddr>>> = BTreeMap::new();
    for from in rules.iter().filter_map(|r| r.from.clone()) {
        if !known.contains_key(&from) {
            let a = client_addrs(c, &from).await?;
            known.insert(from, a);
        }
    }
    let cmds: Vec<Command> = rules
        .iter()
        .map(|r| Command::Set { link: r.link.clone(), direction: r.direction, toxics: toxics.clone(), from: r.from.clone(), addrs: r.from.as_ref().and_then(|f| known.get(f).cloned().flatten()) })
        .collect();
    let (done, err) = control_all(addr, &token, &cmds).await;
    if let Some(e) = err {
        clear(c, &rules[..done.len()]).await;
        return Err(ChaosError::Usage(format!("the fault proxy refused: {e}")));
    }
    Ok(())
}

/// The addresses a node's connections come from, where the proxy's resolver
/// does not know them: on Kubernetes a node's name resolves to its Service's
/// ClusterIP, but its connections come from its pod's IP.
async fn client_addrs(c: &Chaos<'_>, from: &str) -> Result<Option<Vec<std::net::IpAddr>>, ChaosError> {
    let Some(node) = c.plan.containers.iter().find(|x| alias(x) == from) else {
        return Ok(None);
    };
    if c.backend.names_are_sources() {
        // A stopped node has no address (its name does not resolve): no
        // connection comes from it until it starts, and then lab sets its
        // rules again with its new address (`Chaos::after_start`).
        return Ok(c.is_down(&node.name).await.then(Vec::new));
    }
    let ip = c.backend.ip(&node.name).await?;
    let ip = ip.parse().map_err(|_| ChaosError::Usage(format!("{}: not an IP address: {ip}", node.name)))?;
    Ok(Some(vec![ip]))
}

/// Clear the rules (a proxy that restarted has none left: nothing to clear).
pub(super) async fn clear(c: &Chaos<'_>, rules: &[Rule]) {
    let Ok((addr, token)) = control_addr(c) else {
        return;
    };
    let cmds: Vec<Command> = rules.iter().map(|r| Command::Clear { link: r.link.clone(), direction: r.direction, from: r.from.clone() }).collect();
    let _ = control_all(addr, &token, &cmds).await;
}

pub(super) fn prepare(c: &Chaos<'_>, toxics: Toxics, direction: Option<Direction>, targets: &[&ContainerSpec]) -> serde_json::Value {
    let rules = rules_for(c, direction, targets);
    let links: Vec<String> = rules.iter().map(|r| r.link.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    serde_json::json!({"links": links, "rules": rules, "direction": direction, "toxics": toxics})
}

pub(super) async fn apply(c: &Chaos<'_>, spec: &serde_json::Value) -> Result<(), ChaosError> {
    let rules: Vec<Rule> = serde_json::from_value(spec["rules"].clone()).map_err(|e| ChaosError::Usage(format!("a link fault's rules: {e}")))?;
    let toxics: Toxics = serde_json::from_value(spec["toxics"].clone()).map_err(|e| ChaosError::Usage(format!("a link fault's toxics: {e}")))?;
    set(c, &rules, &toxics).await
}

/// Set again, after lab started `started`, the rules of a link fault for
/// their connections: the proxy tells a node's connections by its address,
/// which a stopped node loses and a started one may get anew.
pub(super) async fn reapply(c: &Chaos<'_>, rec: &FaultRecord, started: &[&str]) -> Result<(), ChaosError> {
    let aliases: Vec<String> = started.iter().filter_map(|n| c.container(n)).map(alias).collect();
    let rules: Vec<Rule> = serde_json::from_value::<Vec<Rule>>(rec.spec["rules"].clone()).unwrap_or_default().into_iter().filter(|r| r.from.as_ref().is_some_and(|f| aliases.contains(f))).collect();
    if rules.is_empty() {
        return Ok(());
    }
    let toxics: Toxics = serde_json::from_value(rec.spec["toxics"].clone()).map_err(|e| ChaosError::Usage(format!("a link fault's toxics: {e}")))?;
    set(c, &rules, &toxics).await
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    let rules: Vec<Rule> = match serde_json::from_value(rec.spec["rules"].clone()) {
        Ok(r) => r,
        // Records written before rules existed name links only.
        Err(_) => {
            let direction: Option<Direction> = serde_json::from_value(rec.spec["direction"].clone()).unwrap_or(None);
            rec.spec["links"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).map(|l| Rule { link: l.to_string(), from: None, direction }).collect()
        }
    };
    clear(c, &rules).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates() {
        assert_eq!(super::rate_bytes("1mbit"), Some(125_000));
        assert_eq!(super::rate_bytes("512kbit"), Some(64_000));
        assert_eq!(super::rate_bytes("10kbps"), Some(10_000));
        assert_eq!(super::rate_bytes("fast"), None);
        assert_eq!(super::rate_bytes("10furlongs"), None);
    }
}
