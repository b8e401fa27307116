//! `lab status`: running instances, read back from the backend's labels.

use super::session;
use crate::error::{exit, Error};

pub async fn run(lab: Option<String>, student: Option<String>, json: bool) -> Result<i32, Error> {
    let s = session(true)?;
    s.backend.ping().await?;
    let filter = lab.as_deref().map(|l| crate::plan::instance_name(l, student.as_deref()));
    let all = s.backend.instances(filter.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all).expect("serializes"));
        return Ok(exit::OK);
    }
    if all.is_empty() {
        println!("no lab instances are running{}", lab.map(|l| format!(" for {l}")).unwrap_or_default());
        return Ok(exit::OK);
    }
    for i in all {
        println!(
            "{} (lab {}{}{})",
            i.instance,
            i.lab,
            i.student.as_ref().map(|s| format!(", student {s}")).unwrap_or_default(),
            i.target.as_ref().map(|t| format!(", your service at {t}")).unwrap_or_default()
        );
        for c in &i.containers {
            let addr = c.host_port.map(|p| format!("127.0.0.1:{p}")).unwrap_or_else(|| "-".into());
            println!("  {:<36} {:<10} {:<22} {}", c.name, c.state, addr, c.image);
        }
    }
    Ok(exit::OK)
}
