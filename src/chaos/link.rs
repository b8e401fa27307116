//! Link faults through lab's fault proxy: latency, jitter, loss, bandwidth,
//! reset and blackhole on the link from the service to a dependency marked
//! `proxy: true`, per direction. Needs no privileges and no netem.

use std::net::SocketAddr;

use super::proxy::{control, Command, Direction, Toxics};
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

fn control_addr(c: &Chaos<'_>) -> Result<SocketAddr, ChaosError> {
    let p = c.plan.containers.iter().find(|x| x.service == "proxy").ok_or_else(|| ChaosError::Usage("this instance runs no fault proxy".into()))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], p.port.host)))
}

pub(super) async fn inject(c: &Chaos<'_>, toxics: Toxics, direction: Option<Direction>, targets: &[&ContainerSpec]) -> Result<serde_json::Value, ChaosError> {
    let addr = control_addr(c)?;
    let links: Vec<String> = targets.iter().map(|t| t.service.clone()).collect();
    for link in &links {
        control(addr, &Command::Set { link: link.clone(), direction, toxics: toxics.clone() }).await.map_err(|e| ChaosError::Usage(format!("the fault proxy refused: {e}")))?;
    }
    Ok(serde_json::json!({"links": links, "direction": direction, "toxics": toxics}))
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    let addr = control_addr(c)?;
    let direction: Option<Direction> = serde_json::from_value(rec.spec["direction"].clone()).unwrap_or(None);
    for link in rec.spec["links"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
        // A proxy that restarted has no toxics left: nothing to clear.
        let _ = control(addr, &Command::Clear { link: link.to_string(), direction }).await;
    }
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
