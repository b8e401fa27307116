//! The burst probe: many HTTP requests to the learner's service at once,
//! spread over its nodes, judged by their counts. A limit shared by several
//! instances, a check-then-set race at the edge of a limit, a balance that must
//! survive concurrent transfers: each shows only when requests overlap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{self, HttpRequest};
use super::Answer;

/// One request of the burst, rendered, with the node it goes to.
#[derive(Debug, Clone)]
pub struct Shot {
    pub node: u32,
    pub request: HttpRequest,
}

/// A burst: `count` requests, the k-th being `shots(k)`, `concurrency` in flight.
pub struct BurstSpec {
    /// The k-th request (from 0) is `kinds[k % kinds.len()]`, each kind a list
    /// of one request per node, taken in turn: `kinds[j][(k / kinds.len()) % len]`.
    pub kinds: Vec<Vec<Shot>>,
    pub count: usize,
    pub concurrency: usize,
}

impl BurstSpec {
    fn shot(&self, k: usize) -> (usize, &Shot) {
        let j = k % self.kinds.len();
        let per = &self.kinds[j];
        (j, &per[(k / self.kinds.len()) % per.len()])
    }
}

#[derive(Default)]
struct Tally {
    status: BTreeMap<u16, usize>,
    by_node: BTreeMap<u32, BTreeMap<u16, usize>>,
    by_request: Vec<BTreeMap<u16, usize>>,
    latencies: Vec<Duration>,
    no_answer: usize,
    no_answer_example: Option<String>,
}

fn classes(status: &BTreeMap<u16, usize>) -> serde_json::Value {
    let mut c = serde_json::Map::new();
    for k in 2..=5u16 {
        let n: usize = status.iter().filter(|(s, _)| **s / 100 == k).map(|(_, n)| n).sum();
        c.insert(format!("{k}xx"), n.into());
    }
    serde_json::Value::Object(c)
}

fn statuses(status: &BTreeMap<u16, usize>) -> serde_json::Value {
    serde_json::Value::Object(status.iter().map(|(s, n)| (s.to_string(), (*n).into())).collect())
}

fn group(status: &BTreeMap<u16, usize>) -> serde_json::Value {
    serde_json::json!({"status": statuses(status), "class": classes(status)})
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Send the burst. Never fails: requests without an answer are counted.
pub async fn run(spec: &BurstSpec) -> Answer {
    let started = Instant::now();
    let client = http::client();
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally { by_request: vec![BTreeMap::new(); spec.kinds.len()], ..Default::default() }));
    let workers = spec.concurrency.clamp(1, spec.count.max(1));
    let mut set = tokio::task::JoinSet::new();
    let shots: Arc<Vec<(usize, Shot)>> = Arc::new(
        (0..spec.count)
            .map(|k| {
                let (j, s) = spec.shot(k);
                (j, s.clone())
            })
            .collect(),
    );
    for _ in 0..workers {
        let (next, tally, shots, client) = (next.clone(), tally.clone(), shots.clone(), client.clone());
        set.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((j, shot)) = shots.get(k) else { break };
                let res = http::send(&client, &shot.request).await;
                let mut t = tally.lock().expect("tally");
                match res {
                    Ok(r) => {
                        *t.status.entry(r.status).or_default() += 1;
                        *t.by_node.entry(shot.node).or_default().entry(r.status).or_default() += 1;
                        *t.by_request[*j].entry(r.status).or_default() += 1;
                        t.latencies.push(r.elapsed);
                    }
                    Err(f) => {
                        t.no_answer += 1;
                        if t.no_answer_example.is_none() {
                            t.no_answer_example = Some(format!("{} {} (node {}): {f}", shot.request.method, shot.request.url, shot.node));
                        }
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let mut t = std::mem::take(&mut *tally.lock().expect("tally"));
    t.latencies.sort();
    let pct = |p: f64| t.latencies.get(((t.latencies.len() as f64 - 1.0) * p).round() as usize).copied().map(millis);
    let answered: usize = t.status.values().sum();
    let value = serde_json::json!({
        "sent": spec.count,
        "answered": answered,
        "no_answer": t.no_answer,
        "no_answer_example": t.no_answer_example,
        "status": statuses(&t.status),
        "class": classes(&t.status),
        "by_node": serde_json::Value::Object(t.by_node.iter().map(|(n, s)| (n.to_string(), group(s))).collect()),
        "by_request": t.by_request.iter().map(group).collect::<Vec<_>>(),
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": t.latencies.last().copied().map(millis)},
    });
    let mut shown: Vec<String> = t.status.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
    if t.no_answer > 0 {
        shown.push(format!("no answer ×{} ({})", t.no_answer, t.no_answer_example.clone().unwrap_or_default()));
    }
    let lat = match (pct(0.5), t.latencies.last()) {
        (Some(p50), Some(max)) => format!(" (latency p50 {p50} ms, max {} ms)", millis(*max)),
        _ => String::new(),
    };
    Answer { value, shown: format!("{}{lat}", shown.join(", ")), elapsed: started.elapsed() }
}

/// The burst as a learner reads it.
pub fn sent(spec: &BurstSpec, first: &str) -> String {
    let mut nodes: Vec<u32> = spec.kinds.iter().flatten().map(|s| s.node).collect();
    nodes.sort();
    nodes.dedup();
    let over = match nodes.as_slice() {
        [n] => format!("node {n}"),
        ns => format!("nodes {}", ns.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
    };
    let kinds = if spec.kinds.len() > 1 { format!(" ({} kinds of request in turn)", spec.kinds.len()) } else { String::new() };
    format!("{} requests, {} at a time, round robin over {over}{kinds}: {first}", spec.count, spec.concurrency.min(spec.count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server admitting the first `admit` requests (200), refusing the rest
    /// (429), that holds each answer for `hold` so requests overlap, and counts
    /// how many were in flight at once at most.
    async fn server(admit: usize, hold: Duration) -> (String, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let (inflight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let peak2 = peak.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let (seen, inflight, peak) = (seen.clone(), inflight.clone(), peak.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let now = inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let k = seen.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    inflight.fetch_sub(1, Ordering::SeqCst);
                    let answer: &[u8] = if k < admit { b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n" } else { b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n" };
                    let _ = s.write_all(answer).await;
                });
            }
        });
        (format!("http://{addr}"), peak2)
    }

    fn shot(node: u32, base: &str, timeout: Duration) -> Shot {
        Shot { node, request: HttpRequest { method: "GET".into(), url: format!("{base}/x"), headers: BTreeMap::new(), body: None, json: false, timeout } }
    }

    #[tokio::test]
    async fn a_burst_counts_each_status_per_node_and_overlaps_as_asked() {
        let (a, peak_a) = server(3, Duration::from_millis(50)).await;
        let (b, peak_b) = server(3, Duration::from_millis(50)).await;
        let t = Duration::from_secs(5);
        let spec = BurstSpec { kinds: vec![vec![shot(1, &a, t), shot(2, &b, t)]], count: 20, concurrency: 10 };
        let ans = run(&spec).await;
        let v = &ans.value;
        assert_eq!(v["answered"], 20, "{v}");
        assert_eq!(v["class"]["2xx"], 6, "{v}");
        assert_eq!(v["class"]["4xx"], 14, "{v}");
        assert_eq!(v["class"]["5xx"], 0, "{v}");
        assert_eq!(v["by_node"]["1"]["status"]["200"], 3, "{v}");
        assert_eq!(v["by_node"]["2"]["class"]["4xx"], 7, "{v}");
        // Ten in flight over two servers: five at once on each.
        assert_eq!(peak_a.load(Ordering::SeqCst) + peak_b.load(Ordering::SeqCst), 10);
        assert!(ans.shown.contains("200 ×6, 429 ×14"), "{}", ans.shown);
    }

    #[tokio::test]
    async fn requests_without_an_answer_are_counted_not_waited_for() {
        // Nobody listens on a closed port: every request is refused at once.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let spec = BurstSpec { kinds: vec![vec![shot(1, &dead, Duration::from_secs(1))]], count: 8, concurrency: 4 };
        let v = run(&spec).await.value;
        assert_eq!(v["no_answer"], 8, "{v}");
        assert_eq!(v["class"]["2xx"], 0, "{v}");
        assert!(v["no_answer_example"].as_str().unwrap().contains("node 1"), "{v}");
    }
}
