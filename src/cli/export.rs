//! `lab export compose` and `lab export k8s`: what `up` creates, as a
//! docker-compose.yml or as Kubernetes manifests, made from the same plan (and
//! so from the same templates).

use std::path::PathBuf;

use clap::Subcommand;
use serde_yaml::{Mapping, Value};

use crate::error::{exit, Error};
use crate::images;
use crate::lab::Catalogue;
use crate::plan::{self, Plan, PlanOptions, Solution};

/// What both exports take.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    lab: String,
    /// A built binary of the learner's service to include (mounted like `up` does; on Kubernetes its pods wait for it to be uploaded).
    #[arg(long)]
    binary: Option<PathBuf>,
    #[arg(long)]
    student: Option<String>,
    #[arg(long, value_parser = super::image_set())]
    images: Option<images::ImageSet>,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Print a docker-compose.yml for a lab.
    #[command(after_help = "Examples:\n  lab export compose url-shortener > docker-compose.yml\n  lab export compose url-shortener --binary ./shortener --images debian")]
    Compose(ExportArgs),
    /// Print the Kubernetes manifests `lab up --backend kubernetes` applies (multi-document YAML, for `kubectl apply --server-side`).
    #[command(
        after_help = "Examples:\n  lab export k8s raft --student alice > raft.yaml\n  lab export k8s url-shortener --binary ./shortener | kubectl apply --server-side -f -\n\nThe learner's program (and lab's own, for its fault proxy) is not in an image: the pods wait until it is uploaded, which `lab up --backend kubernetes` does. Pods reach each other by Service name; on a cluster without DNS `lab up` also writes the Services' ClusterIPs into each pod's /etc/hosts."
    )]
    K8s(ExportArgs),
}

pub fn run(cat: &Catalogue, cmd: ExportCommand) -> Result<i32, Error> {
    let (k8s, ExportArgs { lab, binary, student, images }) = match cmd {
        ExportCommand::Compose(a) => (false, a),
        ExportCommand::K8s(a) => (true, a),
    };
    let lab = cat.find(&lab)?;
    super::check_student(&student)?;
    let (set, _) = images::choose(images).map_err(Error::Usage)?;
    let solution = match binary {
        Some(b) => {
            let abs = b.canonicalize().map_err(|e| Error::Usage(format!("--binary {}: {e}", b.display())))?;
            Solution::Binary { path: abs, digest: String::new(), root: None }
        }
        None => Solution::None,
    };
    let mut held = Vec::new();
    let opts = PlanOptions {
        student,
        images: set,
        solution,
        ports: Default::default(),
        extra_env: Default::default(),
        ready_timeout: None,
        lab_exe: std::env::current_exe().ok(),
        secret: crate::plan::new_secret(),
    };
    let plan = plan::plan(&lab, &opts, || {
        if k8s {
            // Ports on this machine are no part of a cluster's objects.
            return Ok(0);
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let p = l.local_addr().map_err(|e| e.to_string())?.port();
        held.push(l);
        Ok(p)
    })?;
    if k8s {
        let objects = crate::backend::kubernetes::objects::all_objects(&plan, &super::chosen_limits().unwrap_or_else(crate::backend::kubernetes::limits::Limits::defaults), &Default::default());
        print!(
            "# Made by `lab export k8s {}`: the objects `lab up --backend kubernetes` applies (field manager `lab`).\n{}",
            plan.lab,
            quote_yaml11_words(&crate::backend::kubernetes::objects::to_yaml(&objects))
        );
    } else {
        print!("{}", compose(&plan));
    }
    Ok(exit::OK)
}

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// The compose file of a plan.
pub fn compose(plan: &Plan) -> String {
    let mut services = Mapping::new();
    for c in &plan.containers {
        let mut svc = Mapping::new();
        svc.insert(s("image"), s(&c.image));
        svc.insert(s("container_name"), s(&c.name));
        // Compose substitutes `$VAR` in these; `$$` is a literal `$`.
        let lit = |x: &str| s(&x.replace('$', "$$"));
        if let Some(cmd) = &c.entrypoint {
            svc.insert(s("entrypoint"), Value::Sequence(cmd.iter().map(|x| lit(x)).collect()));
        }
        if let Some(cmd) = &c.command {
            svc.insert(s("command"), Value::Sequence(cmd.iter().map(|x| lit(x)).collect()));
        }
        if !c.env.is_empty() {
            svc.insert(s("environment"), Value::Mapping(c.env.iter().map(|(k, v)| (s(k), lit(v))).collect()));
        }
        if !c.extra_hosts.is_empty() {
            svc.insert(s("extra_hosts"), Value::Sequence(c.extra_hosts.iter().map(|x| s(x)).collect()));
        }
        svc.insert(s("ports"), Value::Sequence(vec![s(&format!("127.0.0.1:{}:{}", c.port.host, c.port.container))]));
        if !c.mounts.is_empty() {
            svc.insert(s("volumes"), Value::Sequence(c.mounts.iter().map(|m| s(&format!("{}:{}{}", m.host.display(), m.container, if m.read_only { ":ro" } else { "" }))).collect()));
        }
        svc.insert(s("labels"), Value::Mapping(c.labels.iter().map(|(k, v)| (s(k), s(v))).collect()));
        let mut net = Mapping::new();
        net.insert(s("aliases"), Value::Sequence(c.aliases.iter().map(|a| s(a)).collect()));
        let mut nets = Mapping::new();
        nets.insert(s("lab"), Value::Mapping(net));
        svc.insert(s("networks"), Value::Mapping(nets));
        if c.role == plan::Role::Service {
            let deps: Vec<Value> = plan.dependencies().map(|d| s(&d.service)).collect();
            if !deps.is_empty() {
                svc.insert(s("depends_on"), Value::Sequence(deps));
            }
        }
        let key = if c.role == plan::Role::Service { format!("{}-{}", c.service, c.node) } else { c.service.clone() };
        services.insert(s(&key), Value::Mapping(svc));
    }
    let mut root = Mapping::new();
    root.insert(s("version"), s("3.8"));
    root.insert(s("services"), Value::Mapping(services));
    let mut net = Mapping::new();
    net.insert(s("name"), s(&format!("{}-compose", plan.network)));
    net.insert(s("labels"), Value::Mapping(Mapping::new()));
    let mut nets = Mapping::new();
    nets.insert(s("lab"), Value::Mapping(net));
    root.insert(s("networks"), Value::Mapping(nets));
    let text = serde_yaml::to_string(&Value::Mapping(root)).expect("YAML serializes");
    format!("# Made by `lab export compose {}`: the same containers `lab up` creates.\n{}", plan.lab, quote_yaml11(&text))
}

/// docker-compose and kubectl read YAML 1.1, where a bare `no` or `on` is a boolean; every
/// value in the file is a string, so quote those words.
fn quote_yaml11(text: &str) -> String {
    let re = regex::Regex::new(r"(?mi)^(\s*(?:- |[^:\n]+: ))(yes|no|on|off|y|n|true|false|null|~)$").expect("static regex");
    re.replace_all(text, "$1'$2'").to_string()
}

/// The same for a file with real booleans (serde_yaml already quotes the
/// strings `true`, `false` and `null`): only YAML 1.1's other boolean words.
fn quote_yaml11_words(text: &str) -> String {
    let re = regex::Regex::new(r"(?mi)^(\s*(?:- |[^:\n]+: ))(yes|no|on|off|y|n)$").expect("static regex");
    re.replace_all(text, "$1'$2'").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_11_booleans_are_quoted() {
        assert_eq!(super::quote_yaml11("command:\n- --protected-mode\n- no\nA: on\nB: only\n"), "command:\n- --protected-mode\n- 'no'\nA: 'on'\nB: only\n");
    }
}
