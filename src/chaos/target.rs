//! Choosing targets: a node number, a name, random, the leader, a minority, a
//! majority, or all replicas of the learner's service.

use rand::seq::SliceRandom;

use super::{Chaos, ChaosError};
use crate::plan::{ContainerSpec, Role};

/// The containers a target selector names.
pub async fn resolve<'a>(c: &Chaos<'a>, sel: &str) -> Result<Vec<&'a ContainerSpec>, ChaosError> {
    let replicas: Vec<&'a ContainerSpec> = c.plan.containers.iter().filter(|x| x.role == Role::Service).collect();
    let n = replicas.len();
    let mut rng = rand::thread_rng();
    let found: Vec<&'a ContainerSpec> = match sel {
        "all" => replicas.clone(),
        "random" => replicas.choose(&mut rng).copied().into_iter().collect(),
        "minority" => replicas.choose_multiple(&mut rng, n.saturating_sub(1) / 2).copied().collect(),
        "majority" => replicas.choose_multiple(&mut rng, n / 2 + 1).copied().collect(),
        "leader" => {
            // During an election nobody leads for a moment: ask again for a few seconds.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match leader(c, &replicas).await {
                    Ok(l) => break vec![l],
                    Err(e) if std::time::Instant::now() >= until => return Err(e),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
        s => {
            if let Ok(k) = s.parse::<u32>() {
                replicas.iter().copied().filter(|x| x.node == k).collect()
            } else {
                c.plan.containers.iter().filter(|x| x.name == s || format!("{}-{}", x.service, x.node) == s || x.service == s).collect()
            }
        }
    };
    if found.is_empty() {
        let mut known: Vec<String> = c.plan.containers.iter().map(|x| if x.role == Role::Service { format!("{}-{}", x.service, x.node) } else { x.service.clone() }).collect();
        known.dedup();
        return Err(ChaosError::NoTarget { target: sel.to_string(), instance: c.plan.instance.clone(), nodes: n as u32, known: known.join(", ") });
    }
    Ok(found)
}

/// The node that leads now: named as leader by some node, and naming itself.
pub async fn leader<'a>(c: &Chaos<'a>, replicas: &[&'a ContainerSpec]) -> Result<&'a ContainerSpec, ChaosError> {
    let probe = c.lab.def.service.leader.as_ref().ok_or_else(|| ChaosError::NoLeader(format!("lab {} does not say how to find a leader (service.leader)", c.lab.name())))?;
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().expect("static client");
    let mut seen = Vec::new();
    for r in replicas {
        let path = probe.path.as_deref().unwrap_or("/");
        let pointer = probe.pointer.as_deref().unwrap_or("");
        let url = format!("http://127.0.0.1:{}{}", r.port.host, path);
        let Ok(resp) = client.get(&url).send().await else {
            seen.push(format!("{}: no answer", r.name));
            continue;
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            seen.push(format!("{}: not JSON", r.name));
            continue;
        };
        let id = match body.pointer(pointer) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            other => {
                seen.push(format!("{}: {pointer} = {:?}", r.name, other));
                continue;
            }
        };
        if let Some(l) = replicas.iter().find(|x| x.id.as_deref() == Some(id.as_str())) {
            // A dead or cut-off leader is still named by followers for a while: ask it too.
            let own = format!("http://127.0.0.1:{}{}", l.port.host, path);
            let confirmed = match client.get(&own).send().await {
                Ok(resp) => resp.json::<serde_json::Value>().await.ok().and_then(|b| b.pointer(pointer).cloned()).is_some_and(|v| v.as_str() == Some(id.as_str()) || v.to_string() == id),
                Err(_) => false,
            };
            if confirmed {
                return Ok(l);
            }
            seen.push(format!("{}: names `{id}`, which does not confirm", r.name));
            continue;
        }
        seen.push(format!("{}: leader `{id}` matches no node's id", r.name));
    }
    Err(ChaosError::NoLeader(seen.join("; ")))
}
