//! pause: freeze every process of the targets (cgroup freezer): alive but
//! silent, like a long GC pause or a stalled VM. Healing thaws them.

use super::{Chaos, ChaosError};
use crate::backend::{BackendError, FaultRecord};
use crate::plan::ContainerSpec;

pub(super) async fn apply(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.pause(&t.name, true))).await?;
    Ok(())
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    for name in &rec.targets {
        match c.backend.pause(name, false).await {
            // Already running (restarted since): nothing to thaw.
            Ok(()) | Err(BackendError::Docker { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
