//! stop: a graceful stop (SIGTERM, then SIGKILL after a grace period). Its
//! revert, starting the targets and waiting until they are ready, also heals
//! kill and outage.

use std::time::Duration;

use super::{Chaos, ChaosError};
use crate::backend::FaultRecord;
use crate::plan::ContainerSpec;

pub(super) async fn inject(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<serde_json::Value, ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.stop(&t.name, Duration::from_secs(3)))).await?;
    Ok(serde_json::json!({}))
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    for name in &rec.targets {
        c.backend.start(name).await?;
    }
    for name in &rec.targets {
        c.wait_ready(name).await?;
    }
    Ok(())
}
