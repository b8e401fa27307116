//! outage: a dependency (Redis, PostgreSQL, RabbitMQ...) goes away. Healing
//! starts it again and waits until it answers.

use std::time::Duration;

use super::{Chaos, ChaosError};
use crate::plan::{ContainerSpec, Role};

pub(super) fn prepare(targets: &[&ContainerSpec]) -> Result<serde_json::Value, ChaosError> {
    if let Some(t) = targets.iter().find(|t| t.role != Role::Dependency) {
        return Err(ChaosError::Usage(format!("outage is for dependencies; {} is the learner's service (use stop or kill)", t.name)));
    }
    Ok(serde_json::json!({}))
}

pub(super) async fn apply(c: &Chaos<'_>, targets: &[&ContainerSpec]) -> Result<(), ChaosError> {
    futures_util::future::try_join_all(targets.iter().map(|t| c.backend.stop(&t.name, Duration::from_secs(3)))).await?;
    Ok(())
}
