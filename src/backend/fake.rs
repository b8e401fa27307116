//! A backend that keeps containers in memory and records every call, for
//! testing sessions, `up`/`down` logic and actions without an engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{BackendError, ContainerState, Converged, FaultRecord, InstanceState, Removed};
use crate::plan::{labels, Plan};

#[derive(Default)]
struct State {
    containers: BTreeMap<String, (ContainerState, String)>,
    networks: BTreeMap<String, BTreeMap<String, String>>,
    calls: Vec<String>,
    missing: Vec<String>,
    faults: Vec<FaultRecord>,
    verdicts: Vec<crate::class::Verdict>,
    net_error: Option<String>,
}

/// The fake backend. Clones share state.
#[derive(Clone, Default)]
pub struct FakeBackend {
    state: Arc<Mutex<State>>,
}

impl FakeBackend {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every call so far, as `op name` strings.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
    /// Pretend these images are not present.
    pub fn set_missing(&self, images: Vec<String>) {
        self.state.lock().unwrap().missing = images;
    }
    /// Make every net_exec fail with this tool output.
    pub fn fail_net_exec(&self, output: &str) {
        self.state.lock().unwrap().net_error = Some(output.to_string());
    }
    fn call(&self, s: String) {
        self.state.lock().unwrap().calls.push(s);
    }
    fn set_state(&self, name: &str, state: &str) -> Result<(), BackendError> {
        let mut st = self.state.lock().unwrap();
        let c = st.containers.get_mut(name).ok_or_else(|| BackendError::NoContainer(name.into()))?;
        c.0.state = state.into();
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    pub async fn converge(&self, plan: &Plan) -> Result<Vec<(String, Converged)>, BackendError> {
        self.call(format!("converge {}", plan.instance));
        let mut st = self.state.lock().unwrap();
        st.networks.entry(plan.network.clone()).or_insert_with(|| plan.labels.clone());
        let stale: Vec<String> =
            st.containers.iter().filter(|(n, (c, _))| c.labels.get(labels::INSTANCE) == Some(&plan.instance) && !plan.containers.iter().any(|p| &p.name == *n)).map(|(n, _)| n.clone()).collect();
        for n in stale {
            st.containers.remove(&n);
        }
        let mut out = Vec::new();
        for spec in &plan.containers {
            let digest = spec.digest(&plan.network);
            let outcome = match st.containers.get(&spec.name) {
                Some((_, d)) if *d == digest => Converged::Kept,
                Some(_) => Converged::Recreated,
                None => Converged::Created,
            };
            if outcome != Converged::Kept {
                let state = ContainerState {
                    name: spec.name.clone(),
                    service: spec.service.clone(),
                    node: spec.node,
                    role: spec.role,
                    state: "created".into(),
                    image: spec.image.clone(),
                    host_port: Some(spec.port.host),
                    container_port: Some(spec.port.container),
                    labels: spec.labels.clone(),
                };
                st.containers.insert(spec.name.clone(), (state, digest));
            }
            out.push((spec.name.clone(), outcome));
        }
        Ok(out)
    }

    pub async fn start(&self, name: &str) -> Result<(), BackendError> {
        self.call(format!("start {name}"));
        self.set_state(name, "running")
    }
    pub async fn stop(&self, name: &str, _grace: Duration) -> Result<(), BackendError> {
        self.call(format!("stop {name}"));
        self.set_state(name, "exited")
    }
    pub async fn restart(&self, name: &str, _grace: Duration) -> Result<(), BackendError> {
        self.call(format!("restart {name}"));
        self.set_state(name, "running")
    }

    pub async fn instances(&self, instance: Option<&str>) -> Result<Vec<InstanceState>, BackendError> {
        let st = self.state.lock().unwrap();
        let mut out: BTreeMap<String, InstanceState> = BTreeMap::new();
        for (c, _) in st.containers.values() {
            let inst = c.labels.get(labels::INSTANCE).cloned().unwrap_or_default();
            if instance.is_some_and(|i| i != inst) {
                continue;
            }
            out.entry(inst.clone())
                .or_insert_with(|| InstanceState {
                    instance: inst.clone(),
                    lab: c.labels.get(labels::LAB).cloned().unwrap_or_default(),
                    student: c.labels.get(labels::STUDENT).cloned(),
                    target: c.labels.get(labels::TARGET).cloned(),
                    containers: vec![],
                    networks: vec![],
                })
                .containers
                .push(c.clone());
        }
        for (n, l) in &st.networks {
            let inst = l.get(labels::INSTANCE).cloned().unwrap_or_default();
            if let Some(i) = out.get_mut(&inst) {
                i.networks.push(n.clone());
            }
        }
        Ok(out.into_values().collect())
    }

    pub async fn down(&self, instance: Option<&str>) -> Result<Removed, BackendError> {
        self.call(format!("down {}", instance.unwrap_or("--all")));
        let mut st = self.state.lock().unwrap();
        let matches = |l: &BTreeMap<String, String>| instance.is_none_or(|i| l.get(labels::INSTANCE).map(String::as_str) == Some(i));
        let names: Vec<String> = st.containers.iter().filter(|(_, (c, _))| matches(&c.labels)).map(|(n, _)| n.clone()).collect();
        let nets: Vec<String> = st.networks.iter().filter(|(_, l)| matches(l)).map(|(n, _)| n.clone()).collect();
        for n in &names {
            st.containers.remove(n);
        }
        for n in &nets {
            st.networks.remove(n);
        }
        st.faults.retain(|f| instance.is_some_and(|i| f.instance != i));
        Ok(Removed { containers: names, networks: nets, volumes: vec![] })
    }

    pub async fn logs(&self, name: &str, _tail: usize, _follow: bool) -> Result<BoxStream<'static, Result<String, BackendError>>, BackendError> {
        self.call(format!("logs {name}"));
        Ok(futures_util::stream::iter(vec![Ok(format!("fake log of {name}\n"))]).boxed())
    }

    pub async fn missing_images(&self, images: &[String]) -> Result<Vec<String>, BackendError> {
        let st = self.state.lock().unwrap();
        Ok(images.iter().filter(|i| st.missing.contains(i)).cloned().collect())
    }

    pub async fn kill(&self, name: &str, signal: &str) -> Result<(), BackendError> {
        self.call(format!("kill {name} {signal}"));
        self.set_state(name, "exited")
    }
    pub async fn pause(&self, name: &str, pause: bool) -> Result<(), BackendError> {
        self.call(format!("{} {name}", if pause { "pause" } else { "unpause" }));
        self.set_state(name, if pause { "paused" } else { "running" })
    }
    pub async fn net_exec(&self, name: &str, _image: &str, script: &str) -> Result<String, BackendError> {
        self.call(format!("net_exec {name} {script}"));
        match self.state.lock().unwrap().net_error.clone() {
            Some(out) => Err(BackendError::Docker { op: format!("network change in {name}"), detail: out }),
            None => Ok(String::new()),
        }
    }
    pub async fn ip(&self, name: &str) -> Result<String, BackendError> {
        let st = self.state.lock().unwrap();
        let idx = st.containers.keys().position(|n| n == name).ok_or_else(|| BackendError::NoContainer(name.into()))?;
        Ok(format!("10.99.0.{}", idx + 2))
    }
    pub async fn record_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        self.call(format!("record {} {}", f.kind, f.id));
        self.state.lock().unwrap().faults.push(f.clone());
        Ok(())
    }
    pub async fn exited(&self, _name: &str) -> Result<Option<(i64, bool)>, BackendError> {
        Ok(None)
    }

    pub async fn image_command(&self, _image: &str) -> Result<(Vec<String>, Vec<String>), BackendError> {
        Ok((vec!["/app".into()], vec![]))
    }

    pub async fn mark_applied(&self, f: &FaultRecord) -> Result<(), BackendError> {
        let mut st = self.state.lock().unwrap();
        st.faults.retain(|x| x.id != f.id);
        st.faults.push(FaultRecord { applied: true, ..f.clone() });
        Ok(())
    }

    pub async fn faults(&self, instance: Option<&str>) -> Result<Vec<FaultRecord>, BackendError> {
        Ok(self.state.lock().unwrap().faults.iter().filter(|f| instance.is_none_or(|i| f.instance == i)).cloned().collect())
    }
    pub async fn record_verdict(&self, v: &crate::class::Verdict) -> Result<(), BackendError> {
        self.call(format!("verdict {}", v.instance));
        let mut st = self.state.lock().unwrap();
        st.verdicts.retain(|x| x.instance != v.instance);
        st.verdicts.push(v.clone());
        Ok(())
    }
    pub async fn verdicts(&self, lab: &str) -> Result<Vec<crate::class::Verdict>, BackendError> {
        Ok(self.state.lock().unwrap().verdicts.iter().filter(|v| v.lab == lab).cloned().collect())
    }
    pub async fn clear_fault(&self, f: &FaultRecord) -> Result<(), BackendError> {
        self.call(format!("clear {}", f.id));
        self.state.lock().unwrap().faults.retain(|x| x.id != f.id);
        Ok(())
    }

    pub async fn pull(&self, image: &str, _progress: &(dyn Fn(&str) + Sync)) -> Result<(), BackendError> {
        self.call(format!("pull {image}"));
        Err(BackendError::Pull { image: image.into(), detail: "the fake backend has no registry".into() })
    }
}
