//! stop: a graceful stop (SIGTERM, then SIGKILL after a grace period). Its
//! revert, starting the targets and waiting until they are ready, also heals
//! kill and outage.

use std::time::Duration;

use super::{Chaos, ChaosError};
use crate::backend::{BackendError, FaultRecord};
use crate::plan::ContainerSpec;

pub(super) async fn apply(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.stop(&t.name, Duration::from_secs(3)))).await?;
    Ok(())
}

pub(super) async fn revert(c: &Chaos<'_>, rec: &FaultRecord) -> Result<(), ChaosError> {
    let mut started = Vec::new();
    for name in &rec.targets {
        match c.backend.start(name).await {
            Ok(()) => started.push(name),
            // Removed since (`down`, or by hand): nothing to start; `lab up` makes it again.
            Err(BackendError::NoContainer(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The faults in force that lived in their namespaces, at once: a node
    // partitioned while it was down must not talk to the others meanwhile.
    c.after_start(&started.iter().map(|n| n.as_str()).collect::<Vec<_>>()).await?;
    for name in started {
        c.wait_ready(name).await?;
    }
    Ok(())
}
