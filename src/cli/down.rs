//! `lab down`: remove an instance, or every instance lab made.

use super::session;
use crate::error::{exit, Error};
use crate::lab::Catalogue;

pub async fn run(cat: &Catalogue, lab: Option<String>, student: Option<String>, all: bool, quiet: bool) -> Result<i32, Error> {
    // The same names `up` accepts: an instance name is also a folder in lab's cache.
    super::check_student(&student)?;
    if let Some(l) = lab.as_deref().filter(|l| cat.find(l).is_err()) {
        if !crate::plan::is_name(l, 40) {
            return Err(Error::Usage(format!("{l}: not a lab name (lower-case letters and digits with single dashes between them); `lab status` lists what is up")));
        }
    }
    let s = session(quiet).await?;
    s.backend.ping().await?;
    let instance = if all {
        None
    } else {
        let name = lab.expect("clap requires lab without --all");
        // Accept a lab that is no longer defined: the labels say what to remove.
        let lab_name = cat.find(&name).map(|l| l.name().to_string()).unwrap_or(name);
        Some(crate::plan::instance_name(&lab_name, student.as_deref()))
    };
    // A command-line lab leaves only its built program in lab's cache.
    let built = instance.as_deref().map(crate::build::out_dir).filter(|d| d.is_dir());
    let _lock = match instance.as_deref() {
        Some(i) => Some(crate::session::InstanceLock::acquire(i, "down", &s.ui).await?),
        None => None,
    };
    let removed = s.down(instance.as_deref()).await?;
    if let (Some(dir), true) = (built, removed.containers.is_empty() && removed.networks.is_empty()) {
        println!("removed the built program in {}", dir.display());
    } else if removed.containers.is_empty() && removed.networks.is_empty() {
        println!("nothing to remove{}", instance.map(|i| format!(" for {i}")).unwrap_or_default());
    } else if s.backend.name() == "kubernetes" {
        // An instance on a cluster is its namespace: deleting it removed the pods with it.
        println!("removed {} pods, namespace {}", removed.containers.len(), removed.networks.join(", "));
    } else {
        println!("removed {} containers, {} networks, {} volumes", removed.containers.len(), removed.networks.len(), removed.volumes.len());
    }
    Ok(exit::OK)
}
