//! lab's webhook sink and its reader. The sink (`lab proxy webhook`) runs as a
//! container of lab's own binary inside the instance's network, so that a
//! dependency there (Alertmanager) can deliver notifications to it by name
//! (`http://webhook:9095/notify`); lab reads what arrived through the sink's
//! port published on 127.0.0.1. Notifications are numbered from 1 in the
//! order they arrived, so a check can mark where it starts (`next`) and look
//! only at what came after.
//!
//! The sink keeps the last [`KEEP`] notifications of at most [`MAX_NOTIFICATION`]
//! bytes each; the reader gives up after its timeout and reads at most
//! [`super::http::MAX_BODY`] bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::http::{self as lhttp, HttpRequest};

/// The port the sink listens on inside its container.
pub const PORT: u16 = 9095;
/// The most notifications kept (older ones are dropped; numbers keep counting).
pub const KEEP: usize = 1000;
/// The largest notification body accepted.
pub const MAX_NOTIFICATION: usize = 256 * 1024;
/// The most notifications one read returns.
const PAGE: usize = 200;

/// One notification as received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// 1, 2, ... in arrival order.
    pub seq: u64,
    /// Seconds since the epoch when it arrived.
    pub at: f64,
    /// The path it was posted to.
    pub path: String,
    /// The body, parsed as JSON (a string when it was not JSON).
    pub body: serde_json::Value,
}

/// What a read of the sink gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    /// The number the next notification will get (a mark for `since`).
    pub next: u64,
    /// Notifications numbered `since` or later, oldest first.
    pub notifications: Vec<Received>,
}

#[derive(Default)]
struct Store {
    next: u64,
    kept: VecDeque<Received>,
}

type Shared = Arc<Mutex<Store>>;

/// Serve the sink until the process ends.
pub async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let store: Shared = Arc::new(Mutex::new(Store { next: 1, kept: VecDeque::new() }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (sock, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, store.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
        });
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>, json: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if json {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    }
    r
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

async fn handle(req: Request<Incoming>, store: Shared) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    Ok(match (req.method().clone(), path.as_str()) {
        (Method::GET, "/healthz") => answer(StatusCode::OK, "ok\n", false),
        (Method::GET, "/received") => {
            let since: u64 = query.split('&').find_map(|kv| kv.strip_prefix("since=")).and_then(|v| v.parse().ok()).unwrap_or(1);
            let page = {
                let st = store.lock().unwrap();
                Page { next: st.next, notifications: st.kept.iter().filter(|r| r.seq >= since).take(PAGE).cloned().collect() }
            };
            answer(StatusCode::OK, serde_json::to_vec(&page).expect("a page serializes"), true)
        }
        (Method::POST, _) => match Limited::new(req.into_body(), MAX_NOTIFICATION).collect().await {
            Err(e) => answer(StatusCode::PAYLOAD_TOO_LARGE, format!("not kept: {e}\n"), false),
            Ok(b) => {
                let bytes = b.to_bytes();
                let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                let mut st = store.lock().unwrap();
                let seq = st.next;
                st.next += 1;
                st.kept.push_back(Received { seq, at: now(), path, body });
                while st.kept.len() > KEEP {
                    st.kept.pop_front();
                }
                answer(StatusCode::OK, "kept\n", false)
            }
        },
        _ => answer(StatusCode::NOT_FOUND, "POST a notification to any path; GET /received?since=N reads them\n", false),
    })
}

/// Read the notifications numbered `since` or later from the sink at `base` (http://host:port).
pub async fn read(base: &str, since: u64, timeout: Duration) -> Result<Page, String> {
    let req = HttpRequest { method: "GET".into(), url: format!("{}/received?since={since}", base.trim_end_matches('/')), headers: Default::default(), body: None, json: false, timeout };
    let resp = lhttp::send(&lhttp::client(), &req).await.map_err(|e| format!("lab's webhook sink at {base}: {e}"))?;
    if resp.status != 200 || resp.truncated {
        return Err(format!("lab's webhook sink at {base} answered HTTP {}{}", resp.status, if resp.truncated { " with too large a body" } else { "" }));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("lab's webhook sink at {base} answered something that is not a page of notifications: {e}"))
}

/// One alert of an Alertmanager notification: its name and status.
pub fn alerts_of(body: &serde_json::Value) -> Vec<(String, String)> {
    body.get("alerts")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .map(|x| {
                    let name = x.pointer("/labels/alertname").and_then(|v| v.as_str()).unwrap_or("?").to_string();
                    let status = x.get("status").and_then(|v| v.as_str()).unwrap_or("?").to_string();
                    (name, status)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A notification in one line, as a learner reads it.
pub fn describe(r: &Received) -> String {
    let alerts = alerts_of(&r.body);
    let status = r.body.get("status").and_then(|v| v.as_str()).unwrap_or("?");
    let receiver = r.body.get("receiver").and_then(|v| v.as_str()).unwrap_or("?");
    if alerts.is_empty() {
        return format!("#{} {}: {}", r.seq, r.path, super::excerpt(&r.body.to_string(), 120));
    }
    format!("#{} {status} to {receiver}: {}", r.seq, alerts.iter().map(|(n, s)| format!("{n} {s}")).collect::<Vec<_>>().join(", "))
}

/// The answer of a webhook probe: `{"next": N, "received": k, "notifications": [...],
/// "<alert>": {"firing": a, "resolved": b}}` (the alert's counts only when one is named).
pub fn answer_of(page: &Page, alert: Option<&str>) -> (serde_json::Value, String) {
    let summaries: Vec<serde_json::Value> = page
        .notifications
        .iter()
        .map(|r| {
            serde_json::json!({
                "seq": r.seq,
                "status": r.body.get("status").cloned().unwrap_or(serde_json::Value::Null),
                "receiver": r.body.get("receiver").cloned().unwrap_or(serde_json::Value::Null),
                "alerts": alerts_of(&r.body).into_iter().map(|(n, s)| serde_json::json!({"alertname": n, "status": s})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut v = serde_json::json!({"next": page.next, "received": page.notifications.len(), "notifications": summaries});
    if let Some(a) = alert {
        let (mut firing, mut resolved) = (0u64, 0u64);
        for r in &page.notifications {
            for (n, s) in alerts_of(&r.body) {
                if n == a {
                    match s.as_str() {
                        "firing" => firing += 1,
                        "resolved" => resolved += 1,
                        _ => {}
                    }
                }
            }
        }
        v[a] = serde_json::json!({"firing": firing, "resolved": resolved});
    }
    let shown = if page.notifications.is_empty() {
        "lab's webhook received no notification in this check".to_string()
    } else {
        format!("lab's webhook received:\n{}", page.notifications.iter().map(describe).collect::<Vec<_>>().join("\n"))
    };
    (v, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sink() -> String {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        tokio::spawn(serve(addr));
        let base = format!("http://{addr}");
        for _ in 0..100 {
            if read(&base, 1, Duration::from_millis(200)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        base
    }

    async fn post(base: &str, body: &str) -> u16 {
        let req = HttpRequest { method: "POST".into(), url: format!("{base}/notify"), headers: Default::default(), body: Some(body.as_bytes().to_vec()), json: true, timeout: Duration::from_secs(2) };
        lhttp::send(&lhttp::client(), &req).await.unwrap().status
    }

    const FIRING: &str = r#"{"receiver":"lab","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate"}}]}"#;
    const RESOLVED: &str = r#"{"receiver":"lab","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"HighErrorRate"}}]}"#;

    #[tokio::test]
    async fn notifications_are_numbered_and_read_since_a_mark() {
        let base = sink().await;
        assert_eq!(read(&base, 1, Duration::from_secs(1)).await.unwrap().next, 1);
        assert_eq!(post(&base, FIRING).await, 200);
        let mark = read(&base, 1, Duration::from_secs(1)).await.unwrap().next;
        assert_eq!(mark, 2);
        assert_eq!(post(&base, RESOLVED).await, 200);
        assert_eq!(post(&base, FIRING).await, 200);
        let page = read(&base, mark, Duration::from_secs(1)).await.unwrap();
        assert_eq!(page.notifications.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
        let (v, shown) = answer_of(&page, Some("HighErrorRate"));
        assert_eq!(v["HighErrorRate"], serde_json::json!({"firing": 1, "resolved": 1}));
        assert_eq!(v["received"], 2);
        assert!(shown.contains("#2 resolved to lab: HighErrorRate resolved"), "{shown}");
        let (v, shown) = answer_of(&read(&base, 4, Duration::from_secs(1)).await.unwrap(), Some("Other"));
        assert_eq!(v["Other"]["firing"], 0);
        assert!(shown.contains("no notification"), "{shown}");
    }

    #[tokio::test]
    async fn oversized_and_odd_bodies_do_not_break_the_sink() {
        let base = sink().await;
        let huge = "x".repeat(MAX_NOTIFICATION + 10);
        assert_eq!(post(&base, &huge).await, 413);
        assert_eq!(post(&base, "not json").await, 200);
        let page = read(&base, 1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(page.notifications.len(), 1);
        assert_eq!(page.notifications[0].body, "not json");
        assert!(describe(&page.notifications[0]).contains("not json"));
    }

    #[tokio::test]
    async fn a_sink_that_does_not_answer_is_an_error_not_a_hang() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let t = std::time::Instant::now();
        let err = read(&format!("http://{addr}"), 1, Duration::from_millis(300)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(err.contains("timed out"), "{err}");
    }
}
