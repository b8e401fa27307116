//! kill: SIGKILL, the way a machine dies. Healing starts the container again.

use super::{Chaos, ChaosError};
use crate::plan::ContainerSpec;

/// What a kill's record holds.
pub(super) static SPEC: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| serde_json::json!({"signal": "SIGKILL"}));

pub(super) async fn apply(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.kill(&t.name, "SIGKILL"))).await?;
    Ok(())
}
