//! What a class costs the Kubernetes API server, with no pods: for each of N
//! students (default 30) lab's own calls make their namespace with its
//! NetworkPolicy, LimitRange and ResourceQuota (waiting for the quota to be
//! computed), their credentials (ServiceAccount, Role, RoleBinding and a
//! token from the TokenRequest API), and record a verdict; then `class
//! status` reads the class back, and the namespaces are removed all at once
//! as `class down` does (waiting until each is gone). Prints the wall time of each phase and the API calls
//! each student's step made, counted from kube-rs's own request spans.
//!
//! Run: `cargo bench --bench class_namespaces [N]` with the test cluster up
//! (`.ci/setup`; KUBECONFIG defaults to its kubeconfig). The students are
//! `nsbench1`..`nsbenchN` of url-shortener; any left by an earlier run are
//! removed first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::backend::kubernetes::KubeBackend;
use lab::class::{CheckMark, Verdict};
use lab::plan::{self, PlanOptions, Solution};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// Counts kube-rs's request spans (one per HTTP request it sends).
struct Requests(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Requests {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        if attrs.metadata().target().starts_with("kube_client") && attrs.metadata().name() == "HTTP" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// min / median / max of a list.
fn spread<T: Copy + PartialOrd + std::fmt::Debug>(mut v: Vec<T>) -> String {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!("{:?} / {:?} / {:?}", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let n: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(30);
    if std::env::var_os("KUBECONFIG").is_none() {
        std::env::set_var("KUBECONFIG", "/var/cache/lab-envtest/kubeconfig");
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(Requests(calls.clone()).with_filter(tracing_subscriber::filter::Targets::new().with_target("kube_client", tracing::Level::TRACE)));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let kube = KubeBackend::connect(None).await.expect("the test cluster (start it with .ci/setup)");
        let labs = lab::lab::Catalogue::new(vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("labs")]);
        let def = labs.find("url-shortener").unwrap();
        let students: Vec<String> = (1..=n).map(|k| format!("nsbench{k}")).collect();
        let plans: Vec<plan::Plan> = students
            .iter()
            .map(|s| {
                let opts = PlanOptions {
                    student: Some(s.clone()),
                    images: Default::default(),
                    solution: Solution::None,
                    ports: Default::default(),
                    extra_env: Default::default(),
                    ready_timeout: None,
                    lab_exe: None,
                    secret: plan::new_secret(),
                };
                let mut port = 40000u16;
                plan::plan(&def, &opts, || {
                    port += 1;
                    Ok(port)
                })
                .unwrap()
            })
            .collect();
        for p in &plans {
            kube.down(Some(&p.instance)).await.unwrap();
        }

        let count = |f: usize| calls.load(Ordering::Relaxed) - f;
        let (mut up_calls, mut up_times, mut cred_calls) = (vec![], vec![], vec![]);
        let t0 = Instant::now();
        for (s, p) in students.iter().zip(&plans) {
            let (c0, t) = (calls.load(Ordering::Relaxed), Instant::now());
            kube.ensure_namespace(p).await.unwrap();
            let verdict = Verdict {
                instance: p.instance.clone(),
                lab: "url-shortener".into(),
                student: s.clone(),
                at: lab::backend::unix_now(),
                passed: 1,
                failed: 0,
                skipped: 0,
                errors: 0,
                first_failed: None,
                summary: None,
                checks: vec![CheckMark { name: "healthz".into(), status: "passed".into(), summary: None, expected: None, sent: None, got: None, hint: None }],
            };
            kube.record_verdict(&verdict).await.unwrap();
            up_calls.push(count(c0));
            up_times.push(t.elapsed().as_millis() as u64);
            let c1 = calls.load(Ordering::Relaxed);
            kube.student_kubeconfig(&p.instance, "url-shortener", s, Duration::from_secs(3600)).await.unwrap();
            cred_calls.push(count(c1));
        }
        let made = t0.elapsed();

        let (c0, t) = (calls.load(Ordering::Relaxed), Instant::now());
        let verdicts = kube.verdicts("url-shortener").await.unwrap();
        let status = (count(c0), t.elapsed());
        assert_eq!(verdicts.iter().filter(|v| v.student.starts_with("nsbench")).count(), n, "every student's verdict is read back");

        // All at once, as `class down` does.
        let (c0, t1) = (calls.load(Ordering::Relaxed), Instant::now());
        let gone = futures_util::future::join_all(plans.iter().map(|p| kube.down(Some(&p.instance)))).await;
        for (p, removed) in plans.iter().zip(gone) {
            assert_eq!(removed.unwrap().networks, std::slice::from_ref(&p.instance));
        }
        let removed = t1.elapsed();
        let down_calls = count(c0);

        println!("{n} students' namespaces on the test cluster (no pods), made one after the other:");
        println!("  namespace + policy + limits + quota + verdict: {made:.1?} in all with credentials; each {} ms (min / median / max), API calls {}", spread(up_times), spread(up_calls));
        println!("  credentials (ServiceAccount, Role, RoleBinding, token): API calls {}", spread(cred_calls));
        println!("  class status (every verdict): {} API calls, {:.1?}", status.0, status.1);
        println!("  removal, all at once, waiting until each namespace is gone: {removed:.1?}; {down_calls} API calls, {} per student", down_calls / n);
    });
}
