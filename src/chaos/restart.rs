//! restart: stop and start the targets, then wait until they are ready. Leaves
//! nothing to revert.

use std::time::Duration;

use super::{Chaos, ChaosError};
use crate::plan::ContainerSpec;

pub(super) async fn inject(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<serde_json::Value, ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.restart(&t.name, Duration::from_secs(3)))).await?;
    // A restart gives each a new network namespace: make the faults in force there again.
    c.after_start(&targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()).await?;
    for t in targets {
        c.wait_ready(&t.name).await?;
    }
    Ok(serde_json::json!({}))
}
