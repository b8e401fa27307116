//! `lab logs`: a service's or a dependency's log, optionally followed.

use std::io::Write;

use futures_util::StreamExt;

use super::{interrupted, session};
use crate::error::{exit, Error};
use crate::lab::Catalogue;

pub async fn run(cat: &Catalogue, lab: &str, service: Option<String>, follow: bool, tail: usize, student: Option<String>) -> Result<i32, Error> {
    let l = cat.find(lab)?;
    let s = session(true).await?;
    s.backend.ping().await?;
    let inst = s.find_instance(l.name(), student.as_deref()).await?.ok_or_else(|| Error::NotUp(l.name().to_string()))?;
    let svc = service.unwrap_or_else(|| l.def.service.name.clone());
    // A service (every node of it), or one node by its name in the instance (`app-2`).
    let node_name = |c: &&crate::backend::ContainerState| format!("{}-{}", c.service, c.node);
    let containers: Vec<_> = inst.containers.iter().filter(|c| c.service == svc || node_name(c) == svc).collect();
    if containers.is_empty() {
        let mut known: Vec<String> = Vec::new();
        for c in &inst.containers {
            if !known.contains(&c.service) {
                known.push(c.service.clone());
            }
            if inst.containers.iter().filter(|x| x.service == c.service).count() > 1 {
                known.push(node_name(&c));
            }
        }
        return Err(Error::Usage(format!("{} has no service or node `{svc}`; it has: {}", inst.instance, known.join(", "))));
    }
    let prefix = containers.len() > 1;
    let mut streams = Vec::new();
    for c in containers {
        let name = c.name.clone();
        let st = s.backend.logs(&c.name, tail, follow).await?;
        streams.push(st.map(move |r| (name.clone(), r)).boxed());
    }
    let mut all = futures_util::stream::select_all(streams);
    let print = async {
        let mut out = std::io::stdout();
        while let Some((name, chunk)) = all.next().await {
            let chunk = chunk?;
            if prefix {
                for line in chunk.lines() {
                    let _ = writeln!(out, "{name} | {line}");
                }
            } else {
                let _ = out.write_all(chunk.as_bytes());
            }
        }
        Ok::<(), Error>(())
    };
    tokio::select! {
        r = print => r?,
        _ = interrupted() => {}
    }
    Ok(exit::OK)
}
