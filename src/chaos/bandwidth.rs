//! bandwidth: limit the targets' outgoing traffic with the tbf queueing
//! discipline. Its revert (removing the root qdisc) also heals netem.

use super::{Chaos, ChaosError};
use crate::backend::{BackendError, FaultRecord};
use crate::plan::ContainerSpec;

pub(super) fn prepare(rate: &str) -> Result<serde_json::Value, ChaosError> {
    if !rate.chars().next().is_some_and(|c| c.is_ascii_digit()) || !rate.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return Err(ChaosError::Usage(format!("--rate {rate}: a tc rate such as 1mbit, 512kbit, 10mbps")));
    }
    Ok(serde_json::json!({"rate": rate}))
}

/// The command that puts a bandwidth limit in a namespace.
pub(super) fn script(spec: &serde_json::Value) -> String {
    format!("tc qdisc replace dev eth0 root tbf rate {} burst 32kbit latency 400ms", spec["rate"].as_str().unwrap_or_default())
}

pub(super) async fn apply(c: &Chaos<'_>, spec: &serde_json::Value, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    for t in targets {
        c.backend.net_exec(&t.name, &c.helper_image, &script(spec)).await?;
    }
    Ok(())
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    for name in &rec.targets {
        match c.backend.net_exec(name, &c.helper_image, "tc qdisc del dev eth0 root 2>/dev/null; true").await {
            // Gone since, or a backend that could not have applied it: nothing to revert.
            Ok(_) | Err(BackendError::Docker { .. } | BackendError::NoContainer(_) | BackendError::Unsupported { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
