use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::*;
use crate::backend::FakeBackend;
use crate::images::ImageSet;
use crate::lab::Catalogue;
use crate::plan::{self, PlanOptions, Solution};
use crate::probe::Readiness;

/// A student's plan options with a prebuilt program (and lab's own binary for helpers).
fn options(student: &str, lab_exe: Option<PathBuf>) -> PlanOptions {
    PlanOptions {
        student: Some(student.into()),
        images: ImageSet::Debian,
        solution: Solution::Binary { path: PathBuf::from("/x/app"), digest: "d".into(), root: None },
        ports: HashMap::new(),
        extra_env: BTreeMap::new(),
        ready_timeout: None,
        lab_exe,
        secret: String::new(),
    }
}

/// A running url-shortener instance on the fake backend, whose "containers" are
/// ready as soon as their port (a local listener) accepts.
async fn setup() -> (FakeBackend, Lab, Plan, Vec<std::net::TcpListener>) {
    let lab = Catalogue::new(vec![]).find("url-shortener").unwrap();
    let opts = options("chaos", None);
    let mut listeners = Vec::new();
    let mut p = plan::plan(&lab, &opts, || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        listeners.push(l);
        Ok(port)
    })
    .unwrap();
    for c in &mut p.containers {
        c.ready = Readiness::Tcp;
    }
    let fake = FakeBackend::new();
    fake.converge(&p).await.unwrap();
    for c in &p.containers {
        fake.start(&c.name).await.unwrap();
    }
    (fake, lab, p, listeners)
}

#[tokio::test]
async fn kill_is_recorded_and_heal_starts_it_again() {
    let (fake, lab, p, _l) = setup().await;
    let backend = Backend::Fake(fake.clone());
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let targets = resolve(&chaos, "1").await.unwrap();
    assert_eq!(targets[0].name, "lab-url-shortener--chaos-app-1");
    let rec = chaos.inject(&Fault::Kill, &targets, None).await.unwrap();
    assert_eq!(rec.kind, "kill");
    assert_eq!(backend.faults(Some(&p.instance)).await.unwrap(), vec![rec.clone()]);
    let healed = chaos.heal().await.unwrap();
    assert_eq!(healed.len(), 1);
    assert!(backend.faults(Some(&p.instance)).await.unwrap().is_empty());
    let calls = fake.calls();
    let kill = calls.iter().position(|c| c == "kill lab-url-shortener--chaos-app-1 SIGKILL").unwrap();
    let start = calls.iter().rposition(|c| c == "start lab-url-shortener--chaos-app-1").unwrap();
    assert!(kill < start, "{calls:?}");
}

#[tokio::test]
async fn restart_leaves_no_record_and_outage_refuses_the_service() {
    let (fake, lab, p, _l) = setup().await;
    let backend = Backend::Fake(fake.clone());
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let app = resolve(&chaos, "app").await.unwrap();
    chaos.inject(&Fault::Restart, &app, None).await.unwrap();
    assert!(backend.faults(None).await.unwrap().is_empty());
    assert!(matches!(chaos.inject(&Fault::Outage, &app, None).await, Err(ChaosError::Usage(_))));
    let redis = resolve(&chaos, "redis").await.unwrap();
    let rec = chaos.inject(&Fault::Outage, &redis, Some(std::time::Duration::from_secs(5))).await.unwrap();
    assert!(rec.until.unwrap() >= rec.since + 5);
}

#[tokio::test]
async fn partition_isolates_through_the_targets_namespace_and_heals() {
    let (fake, lab, p, _l) = setup().await;
    let backend = Backend::Fake(fake.clone());
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let app = resolve(&chaos, "app-1").await.unwrap();
    let rec = chaos.inject(&Fault::Partition(partition::Shape::Isolate), &app, None).await.unwrap();
    let redis_ip = backend.ip("lab-url-shortener--chaos-redis-1").await.unwrap();
    let calls = fake.calls();
    let exec = calls.iter().find(|c| c.starts_with("net_exec lab-url-shortener--chaos-app-1")).unwrap();
    assert!(exec.contains(&format!("-s {redis_ip} -j DROP")), "{exec}");
    chaos.revert(&rec).await.unwrap();
    assert!(fake.calls().last().unwrap().starts_with("clear partition-"));
    assert!(fake.calls().iter().any(|c| c.contains("-X LAB-partition-")));
}

#[tokio::test]
async fn a_kernel_without_netem_gets_a_plain_error() {
    let (fake, lab, p, _l) = setup().await;
    fake.fail_net_exec("exit 2: Error: Specified qdisc kind is unknown.");
    let backend = Backend::Fake(fake.clone());
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let app = resolve(&chaos, "all").await.unwrap();
    let f = Fault::parse("latency", &BTreeMap::from([("delay".to_string(), "200ms".to_string())])).unwrap();
    let err = chaos.inject(&f, &app, None).await.unwrap_err();
    assert!(matches!(err, ChaosError::NetemUnavailable { .. }));
    assert!(err.to_string().contains("sch_netem"));
    assert!(backend.faults(None).await.unwrap().is_empty(), "nothing recorded for a fault that did not happen");
}

#[tokio::test]
async fn unknown_targets_and_faults_say_what_exists() {
    let (fake, lab, p, _l) = setup().await;
    let backend = Backend::Fake(fake);
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let err = resolve(&chaos, "7").await.unwrap_err();
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(shown.contains("app-1, redis") || shown.contains("redis, app-1"), "{shown}");
    // A lab that does not say how to find its leader: a definition problem (exit 2), said at once.
    let t = std::time::Instant::now();
    let err = resolve(&chaos, "leader").await.unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(1), "no waiting for an election: {:?}", t.elapsed());
    assert!(matches!(err, ChaosError::NoLeaderProbe { .. }), "{err:?}");
    assert!(err.to_string().contains("lab url-shortener does not say how to find its service's leader"), "{err}");
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(shown.contains("service.leader") && shown.contains("pointer: /leader") && shown.contains("metric"), "{shown}");
    let err = resolve(&chaos, "leader").await.unwrap_err();
    assert_eq!(crate::error::Error::Chaos(Box::new(err)).exit_code(), crate::error::exit::BAD_INPUT);
    // A fault without a target takes its default, or says it needs one.
    let split = Fault::parse("partition", &BTreeMap::from([("split".to_string(), "1|redis".to_string())])).unwrap();
    assert_eq!(resolve_for(&chaos, &split, None).await.unwrap().len(), 1, "all the nodes (one here)");
    assert!(resolve_for(&chaos, &Fault::Outage, None).await.unwrap_err().to_string().contains("outage needs a target"));
    assert_eq!(resolve_for(&chaos, &Fault::Outage, Some("redis")).await.unwrap()[0].service, "redis");
    assert!(Fault::parse("melt", &BTreeMap::new()).unwrap_err().to_string().contains("unknown fault `melt`"));
    assert!(Fault::parse("bandwidth", &BTreeMap::new()).is_err());
}

#[tokio::test]
async fn a_kill_that_fails_leaves_no_record() {
    let (fake, lab, p, _l) = setup().await;
    let backend = Backend::Fake(fake.clone());
    let chaos = Chaos { backend: &backend, plan: &p, lab: &lab, helper_image: "base".into() };
    let targets = resolve(&chaos, "1").await.unwrap();
    fake.down(Some(&p.instance)).await.unwrap();
    assert!(chaos.inject(&Fault::Kill, &targets, None).await.is_err());
    assert!(backend.faults(Some(&p.instance)).await.unwrap().is_empty(), "the record was taken back");
}

fn plan_of(lab_name: &str) -> Plan {
    let lab = Catalogue::new(vec![]).find(lab_name).unwrap();
    let opts = options("cuts", Some(PathBuf::from("/x/lab")));
    let mut port = 20000;
    plan::plan(&lab, &opts, || {
        port += 1;
        Ok(port)
    })
    .unwrap()
}

#[test]
fn without_pod_network_control_a_partition_cuts_proxied_links_and_names_the_rest() {
    let p = plan_of("raft");
    let by = |n: &str| p.containers.iter().find(|c| c.name.ends_with(n)).unwrap();
    let others: Vec<&ContainerSpec> = p.containers.iter().filter(|c| !c.name.ends_with("app-1")).collect();
    // Isolating node 1: both directions of its peer links to 2 and 3, nothing left uncut.
    let (rules, uncut) = partition::proxy_cuts(&p, &[(by("app-1"), others, vec![])]);
    assert!(uncut.is_empty(), "{uncut:?}");
    let mut got: Vec<(String, String)> = rules.iter().map(|r| (r.link.clone(), r.from.clone().unwrap())).collect();
    got.sort();
    let want: Vec<(String, String)> = [("app-1", "app-2"), ("app-1", "app-3"), ("app-2", "app-1"), ("app-3", "app-1")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(got, want);
    // One way: only what node 1 opens towards node 2.
    let (rules, _) = partition::proxy_cuts(&p, &[(by("app-1"), vec![], vec![by("app-2")])]);
    assert_eq!(rules.len(), 1);
    assert_eq!((rules[0].link.as_str(), rules[0].from.as_deref()), ("app-2", Some("app-1")));

    // url-shortener: the service reaches Redis through the proxy, so cutting
    // them is a rule on the redis link for the app node's connections.
    let p = plan_of("url-shortener");
    let app = p.containers.iter().find(|c| c.service == "app").unwrap();
    let redis = p.containers.iter().find(|c| c.service == "redis").unwrap();
    let (rules, uncut) = partition::proxy_cuts(&p, &[(redis, vec![app], vec![])]);
    assert!(uncut.is_empty(), "{uncut:?}");
    assert_eq!((rules[0].link.as_str(), rules[0].from.as_deref()), ("redis", Some("app-1")));
    // A link no proxy carries is named, not silently left open.
    let p = plan_of("orders");
    let app = p.containers.iter().find(|c| c.service == "app").unwrap();
    let deps: Vec<&ContainerSpec> = p.dependencies().filter(|c| !p.proxied.contains(&c.service) && c.service != "proxy").collect();
    assert!(!deps.is_empty(), "orders has a dependency not behind the proxy");
    let (_, uncut) = partition::proxy_cuts(&p, &[(app, deps.clone(), vec![])]);
    assert_eq!(uncut.len(), deps.len(), "{uncut:?}");
    assert!(uncut[0].contains("app-1 <-> "), "{uncut:?}");
}
