//! A client of Prometheus' and Alertmanager's HTTP APIs for checks: what
//! Prometheus scraped from the learner's service (instant queries, metric
//! metadata, scrape targets), the state of its alert rules, and the alerts
//! Alertmanager holds. Answers are small JSON objects keyed by what a learner
//! recognises (the series `http_requests_total{method="GET"}`, the metric
//! `active_users_count`, the alert `HighErrorRate`), so that a failed
//! expectation names the metric, what Prometheus returned and what was
//! expected.
//!
//! Every request has the probe's timeout and reads at most
//! [`super::http::MAX_BODY`] bytes; an answer cut there (a service exporting
//! far too many series) is a failure, not a partial result.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::http::{self as lhttp, HttpRequest};
use super::Answer;

/// What to ask.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// An instant PromQL query. Series are keyed `name{label="value",...}`
    /// (labels sorted), `name` being the series' `__name__`, else `name` given
    /// here, else `value`.
    Query { query: String, name: Option<String> },
    /// The type and help of a metric, as scraped: `{"<metric>": {"type", "help", "unit"}}`.
    Metadata(String),
    /// The state of an alert rule: `{"<alert>": "inactive" | "pending" | "firing"}`.
    Alert(String),
    /// The alert as Alertmanager holds it: `{"<alert>": "active" | "suppressed" | "unprocessed" | "absent"}`.
    Alertmanager(String),
    /// The health of a scrape job's targets: `{"<job>": "up" | "down" | "unknown", "targets": {"<instance>": "<health>"}}`.
    Targets(String),
}

/// A rendered probe.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Prometheus' base URL, e.g. http://127.0.0.1:9090.
    pub prometheus: String,
    /// Alertmanager's base URL (for [`Op::Alertmanager`]).
    pub alertmanager: Option<String>,
    pub op: Op,
    /// First wait for a scrape of every target that began after the probe started.
    pub fresh: bool,
    pub timeout: Duration,
}

/// Why the probe has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PromError {
    /// Prometheus or Alertmanager did not answer usefully (down, restarting, timed out, flooded).
    #[error("{0}")]
    NoAnswer(String),
    /// The question itself is wrong (a bad query, an alert rule the lab does not define).
    #[error("{0}")]
    Lab(String),
}

/// What the probe sent, as a learner reads it.
pub fn sent(spec: &Spec) -> String {
    let fresh = if spec.fresh { " (after a fresh scrape)" } else { "" };
    match &spec.op {
        Op::Query { query, .. } => format!("Prometheus query{fresh}: {query}"),
        Op::Metadata(m) => format!("Prometheus metadata{fresh} of {m}"),
        Op::Alert(a) => format!("Prometheus alert rule {a}{fresh}"),
        Op::Alertmanager(a) => format!("Alertmanager alerts named {a}{fresh}"),
        Op::Targets(j) => format!("Prometheus scrape targets of job {j}{fresh}"),
    }
}

async fn get(base: &str, path: &str, params: &[(&str, &str)], timeout: Duration) -> Result<Value, PromError> {
    let url = reqwest::Url::parse_with_params(&format!("{}{path}", base.trim_end_matches('/')), params).map_err(|e| PromError::Lab(format!("{base}{path}: {e}")))?;
    let req = HttpRequest { method: "GET".into(), url: url.to_string(), headers: BTreeMap::new(), body: None, json: false, timeout };
    let resp = lhttp::send(&lhttp::client(), &req).await.map_err(|e| PromError::NoAnswer(format!("GET {path} at {base}: {e}")))?;
    if resp.truncated {
        return Err(PromError::NoAnswer(format!("GET {path} at {base}: the answer is larger than {} bytes (does the service export far too many series?)", lhttp::MAX_BODY)));
    }
    let v: Value =
        serde_json::from_slice(&resp.body).map_err(|e| PromError::NoAnswer(format!("GET {path} at {base}: HTTP {} with a body that is not JSON ({e}): {}", resp.status, resp.body_excerpt(200))))?;
    // Prometheus: {"status": "error", "errorType": "bad_data", "error": "..."}.
    if v.get("status").and_then(Value::as_str) == Some("error") {
        let msg = format!("{}: {}", v.get("errorType").and_then(Value::as_str).unwrap_or("error"), v.get("error").and_then(Value::as_str).unwrap_or("?"));
        return Err(if resp.status == 400 || resp.status == 422 {
            PromError::Lab(format!("Prometheus refused the question: {msg}"))
        } else {
            PromError::NoAnswer(format!("Prometheus answered HTTP {}: {msg}", resp.status))
        });
    }
    if resp.status != 200 {
        return Err(PromError::NoAnswer(format!("GET {path} at {base}: HTTP {} {}", resp.status, resp.body_excerpt(200))));
    }
    Ok(v)
}

/// A series' key: `name{a="x",b="y"}`.
pub fn series_key(metric: &serde_json::Map<String, Value>, name: Option<&str>) -> String {
    let n = metric.get("__name__").and_then(Value::as_str).or(name).unwrap_or("value");
    let labels: BTreeMap<&str, &str> = metric.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect();
    if labels.is_empty() {
        n.to_string()
    } else {
        format!("{n}{{{}}}", labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(","))
    }
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Wait until every target has been scraped by a scrape that began at or after `since_ms`.
async fn wait_fresh(spec: &Spec, since_ms: f64, deadline: Instant) -> Result<(), PromError> {
    let mut last = String::from("no scrape yet");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PromError::NoAnswer(format!("Prometheus did not finish a new scrape of its targets within {:?} ({last})", spec.timeout)));
        }
        let v = get(&spec.prometheus, "/api/v1/query", &[("query", "min(timestamp(up))")], left).await?;
        match v.pointer("/data/result/0/value/1").and_then(Value::as_str).and_then(|s| s.parse::<f64>().ok()) {
            Some(ts) if ts * 1000.0 >= since_ms => return Ok(()),
            Some(ts) => last = format!("the oldest last scrape began {:.1} s before the probe", (since_ms - ts * 1000.0) / 1000.0),
            None => last = "Prometheus has no targets".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run the probe.
pub async fn run(spec: &Spec) -> Result<Answer, PromError> {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    if spec.fresh {
        wait_fresh(spec, now_ms(), deadline).await?;
    }
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    let base = spec.prometheus.as_str();
    let (value, shown) = match &spec.op {
        Op::Query { query, name } => {
            let v = get(base, "/api/v1/query", &[("query", query)], left()).await?;
            query_answer(&v, name.as_deref())?
        }
        Op::Metadata(metric) => {
            let v = get(base, "/api/v1/metadata", &[("metric", metric)], left()).await?;
            metadata_answer(&v, metric)
        }
        Op::Alert(alert) => {
            let v = get(base, "/api/v1/rules", &[("type", "alert")], left()).await?;
            alert_answer(&v, alert)?
        }
        Op::Alertmanager(alert) => {
            let am = spec.alertmanager.as_deref().ok_or_else(|| PromError::Lab("this lab has no Alertmanager (no dependency from the alertmanager template); give `alertmanager_url`".into()))?;
            let filter = format!("alertname={alert:?}");
            let v = get(am, "/api/v2/alerts", &[("filter", &filter)], left()).await?;
            alertmanager_answer(&v, alert)
        }
        Op::Targets(job) => {
            let v = get(base, "/api/v1/targets", &[("state", "active")], left()).await?;
            targets_answer(&v, job)
        }
    };
    Ok(Answer { value, shown, elapsed: start.elapsed() })
}

fn query_answer(v: &Value, name: Option<&str>) -> Result<(Value, String), PromError> {
    let data = v.get("data").ok_or_else(|| PromError::NoAnswer(format!("Prometheus answered without data: {}", super::excerpt(&v.to_string(), 200))))?;
    let mut out = serde_json::Map::new();
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            for s in data.get("result").and_then(Value::as_array).into_iter().flatten() {
                let empty = serde_json::Map::new();
                let metric = s.get("metric").and_then(Value::as_object).unwrap_or(&empty);
                let val = s.pointer("/value/1").cloned().unwrap_or(Value::Null);
                out.insert(series_key(metric, name), val);
            }
        }
        Some("scalar") | Some("string") => {
            out.insert(name.unwrap_or("value").to_string(), data.pointer("/result/1").cloned().unwrap_or(Value::Null));
        }
        other => return Err(PromError::Lab(format!("the query gives a {} result; use an instant vector or scalar query", other.unwrap_or("missing")))),
    }
    let shown = if out.is_empty() {
        "Prometheus returned no series (nothing it scraped matches the query)".to_string()
    } else {
        let mut lines: Vec<String> = out.iter().take(20).map(|(k, v)| format!("{k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect();
        if out.len() > 20 {
            lines.push(format!("… and {} more series", out.len() - 20));
        }
        format!("Prometheus returned:\n{}", lines.join("\n"))
    };
    Ok((Value::Object(out), shown))
}

fn metadata_answer(v: &Value, metric: &str) -> (Value, String) {
    match v.pointer(&format!("/data/{}/0", metric.replace('~', "~0").replace('/', "~1"))) {
        Some(m) => {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("?");
            let help = m.get("help").and_then(Value::as_str).unwrap_or("");
            (json!({ metric: {"type": ty, "help": help, "unit": m.get("unit").cloned().unwrap_or(Value::Null)} }), format!("Prometheus scraped {metric} as a {ty} (help {help:?})"))
        }
        None => (json!({}), format!("Prometheus has scraped no metric called {metric} (it knows no type for it)")),
    }
}

fn alert_answer(v: &Value, alert: &str) -> Result<(Value, String), PromError> {
    let mut names = Vec::new();
    for g in v.pointer("/data/groups").and_then(Value::as_array).into_iter().flatten() {
        for r in g.get("rules").and_then(Value::as_array).into_iter().flatten() {
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            if name != alert {
                names.push(name.to_string());
                continue;
            }
            let state = r.get("state").and_then(Value::as_str).unwrap_or("inactive");
            let mut shown = format!("alert rule {alert} is {state} (expr: {})", r.get("query").and_then(Value::as_str).unwrap_or("?"));
            for a in r.get("alerts").and_then(Value::as_array).into_iter().flatten().take(5) {
                shown.push_str(&format!(
                    "\n  {} since {}, value {}",
                    a.get("state").and_then(Value::as_str).unwrap_or("?"),
                    a.get("activeAt").and_then(Value::as_str).unwrap_or("?"),
                    a.get("value").and_then(Value::as_str).unwrap_or("?")
                ));
            }
            if let Some(e) = r.get("lastError").and_then(Value::as_str).filter(|e| !e.is_empty()) {
                shown.push_str(&format!("\n  last evaluation error: {e}"));
            }
            return Ok((json!({ alert: state }), shown));
        }
    }
    if names.is_empty() {
        // Nothing loaded (yet): Prometheus is starting, or lost its rules.
        return Err(PromError::NoAnswer(format!("Prometheus has no alert rules loaded (looking for {alert})")));
    }
    Err(PromError::Lab(format!("Prometheus has no alert rule {alert}; its rules: {}", names.join(", "))))
}

fn alertmanager_answer(v: &Value, alert: &str) -> (Value, String) {
    let alerts = v.as_array().cloned().unwrap_or_default();
    let states: Vec<String> = alerts.iter().map(|a| a.pointer("/status/state").and_then(Value::as_str).unwrap_or("?").to_string()).collect();
    let state = if states.iter().any(|s| s == "active") {
        "active"
    } else if let Some(s) = states.first() {
        s.as_str()
    } else {
        "absent"
    };
    let shown = if alerts.is_empty() {
        format!("Alertmanager holds no alert {alert}")
    } else {
        format!(
            "Alertmanager holds {alert}: {}",
            alerts
                .iter()
                .map(|a| format!("{} since {}", a.pointer("/status/state").and_then(Value::as_str).unwrap_or("?"), a.get("startsAt").and_then(Value::as_str).unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    (json!({ alert: state }), shown)
}

fn targets_answer(v: &Value, job: &str) -> (Value, String) {
    let mut per = serde_json::Map::new();
    let mut lines = Vec::new();
    for t in v.pointer("/data/activeTargets").and_then(Value::as_array).into_iter().flatten() {
        let tjob = t.pointer("/labels/job").and_then(Value::as_str).or_else(|| t.get("scrapePool").and_then(Value::as_str)).unwrap_or("");
        if tjob != job {
            continue;
        }
        let instance = t.pointer("/labels/instance").and_then(Value::as_str).unwrap_or("?").to_string();
        let health = t.get("health").and_then(Value::as_str).unwrap_or("unknown").to_string();
        let err = t.get("lastError").and_then(Value::as_str).unwrap_or("");
        lines.push(format!("{instance} {health}{}", if err.is_empty() { String::new() } else { format!(": {err}") }));
        per.insert(instance, Value::String(health));
    }
    let all: Vec<&str> = per.values().filter_map(Value::as_str).collect();
    let overall = if all.is_empty() {
        "absent"
    } else if all.iter().any(|h| *h == "down") {
        "down"
    } else if all.iter().all(|h| *h == "up") {
        "up"
    } else {
        "unknown"
    };
    let shown = if lines.is_empty() { format!("Prometheus has no target in job {job}") } else { format!("targets of job {job}:\n{}", lines.join("\n")) };
    (json!({ job: overall, "targets": per }), shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake Prometheus answering every request with `answer` after `delay`.
    async fn fake(answer: &'static str, delay: Duration) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    if answer == "FLOOD" {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4000000\r\n\r\n{\"data\":\"").await;
                        let chunk = vec![b'x'; 65536];
                        for _ in 0..62 {
                            if s.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                        return;
                    }
                    let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}", answer.len()).as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn spec(base: String, op: Op) -> Spec {
        Spec { prometheus: base, alertmanager: None, op, fresh: false, timeout: Duration::from_millis(500) }
    }

    #[tokio::test]
    async fn series_are_keyed_by_name_and_sorted_labels() {
        let body =
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"method":"GET","code":"200"},"value":[1.5,"7"]},{"metric":{"__name__":"up","job":"app"},"value":[1.5,"1"]}]}}"#;
        let a = run(&spec(fake(body, Duration::ZERO).await, Op::Query { query: "q".into(), name: Some("http_requests_total".into()) })).await.unwrap();
        assert_eq!(a.value[r#"http_requests_total{code="200",method="GET"}"#], "7");
        assert_eq!(a.value[r#"up{job="app"}"#], "1");
        assert!(a.shown.contains(r#"http_requests_total{code="200",method="GET"} = 7"#), "{}", a.shown);
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let a = run(&spec(fake(empty, Duration::ZERO).await, Op::Query { query: "q".into(), name: None })).await.unwrap();
        assert_eq!(a.value, json!({}));
        assert!(a.shown.contains("no series"), "{}", a.shown);
    }

    #[tokio::test]
    async fn metadata_alerts_and_targets_answer_by_name() {
        let md = r#"{"status":"success","data":{"http_requests_total":[{"type":"gauge","help":"Requests.","unit":""}]}}"#;
        let a = run(&spec(fake(md, Duration::ZERO).await, Op::Metadata("http_requests_total".into()))).await.unwrap();
        assert_eq!(a.value["http_requests_total"]["type"], "gauge");
        let a = run(&spec(fake(md, Duration::ZERO).await, Op::Metadata("active_users_count".into()))).await.unwrap();
        assert_eq!(a.value, json!({}));
        assert!(a.shown.contains("no metric called active_users_count"), "{}", a.shown);

        let rules =
            r#"{"status":"success","data":{"groups":[{"name":"g","rules":[{"name":"HighErrorRate","query":"x > 1","state":"pending","alerts":[{"state":"pending","activeAt":"t","value":"3"}]}]}]}}"#;
        let a = run(&spec(fake(rules, Duration::ZERO).await, Op::Alert("HighErrorRate".into()))).await.unwrap();
        assert_eq!(a.value["HighErrorRate"], "pending");
        let err = run(&spec(fake(rules, Duration::ZERO).await, Op::Alert("Nope".into()))).await.unwrap_err();
        assert!(matches!(err, PromError::Lab(ref m) if m.contains("no alert rule Nope; its rules: HighErrorRate")), "{err:?}");

        let targets = r#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"app","instance":"app-1:8080"},"health":"down","lastError":"connection refused"},{"labels":{"job":"other","instance":"x"},"health":"up","lastError":""}]}}"#;
        let a = run(&spec(fake(targets, Duration::ZERO).await, Op::Targets("app".into()))).await.unwrap();
        assert_eq!(a.value["app"], "down");
        assert_eq!(a.value["targets"]["app-1:8080"], "down");
        assert!(a.shown.contains("app-1:8080 down: connection refused"), "{}", a.shown);

        let am = r#"[{"labels":{"alertname":"HighErrorRate"},"status":{"state":"active"},"startsAt":"t"}]"#;
        let mut s = spec(String::new(), Op::Alertmanager("HighErrorRate".into()));
        s.alertmanager = Some(fake(am, Duration::ZERO).await);
        assert_eq!(run(&s).await.unwrap().value["HighErrorRate"], "active");
    }

    #[tokio::test]
    async fn a_hanging_flooding_or_garbled_prometheus_is_no_answer() {
        let t = Instant::now();
        let err = run(&spec(fake("{}", Duration::from_secs(10)).await, Op::Metadata("m".into()))).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "the timeout holds");
        assert!(matches!(err, PromError::NoAnswer(ref m) if m.contains("timed out")), "{err:?}");
        let err = run(&spec(fake("FLOOD", Duration::ZERO).await, Op::Metadata("m".into()))).await.unwrap_err();
        assert!(matches!(err, PromError::NoAnswer(ref m) if m.contains("larger than")), "{err:?}");
        let err = run(&spec(fake("<html>", Duration::ZERO).await, Op::Metadata("m".into()))).await.unwrap_err();
        assert!(matches!(err, PromError::NoAnswer(ref m) if m.contains("not JSON")), "{err:?}");
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let err = run(&spec(fake(bad, Duration::ZERO).await, Op::Query { query: "(".into(), name: None })).await.unwrap_err();
        assert!(matches!(err, PromError::NoAnswer(ref m) if m.contains("parse error")), "HTTP 200 with an error is Prometheus' trouble: {err:?}");
    }

    #[tokio::test]
    async fn fresh_waits_for_a_newer_scrape_and_gives_up_in_time() {
        // The only scrape it ever reports began long ago.
        let old = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"1000"]}]}}"#;
        let mut s = spec(fake(old, Duration::ZERO).await, Op::Metadata("m".into()));
        s.fresh = true;
        let t = Instant::now();
        let err = run(&s).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, PromError::NoAnswer(ref m) if m.contains("did not finish a new scrape")), "{err:?}");
    }
}
