//! latency, jitter and loss through the kernel's netem queueing discipline,
//! where the kernel has it. Detected on the first target: a kernel without
//! sch_netem gives a plain error naming the missing module.

use std::time::Duration;

use super::{Chaos, ChaosError};
use crate::backend::BackendError;
use crate::plan::ContainerSpec;

/// The tc arguments of a netem fault.
pub(super) fn args(delay: Option<Duration>, jitter: Option<Duration>, loss: Option<f64>) -> String {
    let mut a = String::from("netem");
    match (delay, jitter) {
        (Some(d), Some(j)) => a.push_str(&format!(" delay {}ms {}ms", d.as_millis(), j.as_millis())),
        (Some(d), None) => a.push_str(&format!(" delay {}ms", d.as_millis())),
        // Jitter alone varies around a small base delay.
        (None, Some(j)) => a.push_str(&format!(" delay {}ms {}ms", j.as_millis(), j.as_millis())),
        (None, None) => {}
    }
    if let Some(l) = loss {
        a.push_str(&format!(" loss {l}%"));
    }
    a
}

/// Whether tc's answer means the kernel lacks netem.
pub(super) fn is_missing_netem(detail: &str) -> bool {
    detail.contains("Specified qdisc kind is unknown") || detail.contains("qdisc kind is unknown") || detail.contains("No such file or directory") && detail.contains("netem")
}

pub(super) fn prepare(delay: Option<Duration>, jitter: Option<Duration>, loss: Option<f64>) -> serde_json::Value {
    serde_json::json!({"tc": args(delay, jitter, loss)})
}

/// Applies the qdisc to each target; a kernel without netem fails on the
/// first one, before anything changed (the caller undoes earlier targets).
/// The command that puts a netem fault in a namespace.
pub(super) fn script(spec: &serde_json::Value) -> String {
    format!("tc qdisc replace dev eth0 root {}", spec["tc"].as_str().unwrap_or_default())
}

pub(super) async fn apply(c: &Chaos<'_>, spec: &serde_json::Value, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    for t in targets {
        match c.backend.net_exec(&t.name, &c.helper_image, &script(spec)).await {
            Ok(_) => {}
            Err(BackendError::Docker { detail, .. }) if is_missing_netem(&detail) => {
                return Err(ChaosError::NetemUnavailable { detail: detail.lines().last().unwrap_or_default().to_string() });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_arguments() {
        assert_eq!(args(Some(Duration::from_millis(200)), Some(Duration::from_millis(50)), None), "netem delay 200ms 50ms");
        assert_eq!(args(None, None, Some(5.0)), "netem loss 5%");
        assert!(is_missing_netem("exit 2: Error: Specified qdisc kind is unknown."));
        assert!(!is_missing_netem("exit 1: RTNETLINK answers: Operation not permitted"));
    }
}
