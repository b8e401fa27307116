//! lab's programmable HTTP upstream (`lab proxy upstream`): an HTTP/1.1 server
//! run as a dependency of a lab (the `upstream` template, a container of lab's
//! own binary) that the learner's service calls, and whose behaviour the
//! checks set: answer with a status after a delay, hang, trickle the body a
//! byte at a time, or reset the connection. It counts what the service did to
//! it: calls, calls in flight, TCP connections (a client that reuses its
//! connections opens few), and calls whose client went away before the answer
//! was complete (a cancelled request, or a client timeout).
//!
//! Control, under `/_lab/` on the same port (lab reaches it on the published port):
//! - `PUT /_lab/mode` with JSON `{"status": 200, "body": "...", "delay_ms": 0,
//!   "hang": false, "trickle_ms": 0, "reset": false}` (what is left out takes
//!   these defaults) sets how every later call is answered, and answers the mode;
//! - `GET /_lab/stats`: `{"calls", "in_flight", "max_in_flight", "connections",
//!   "open_connections", "cancelled", "completed", "mode"}`;
//! - `DELETE /_lab/stats` zeroes the counters (what is open stays counted as open);
//! - `GET /_lab/healthz`: 200.
//!
//! Only connections that carry a call count in `connections`, so lab's own
//! control requests never do. Requests are read with a 64 KiB cap on the head
//! and 1 MiB on the body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The port the upstream listens on inside its container.
pub const PORT: u16 = 9096;
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1 << 20;

/// How calls are answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mode {
    pub status: u16,
    /// The body; `{n}` becomes the call's number. Default a small JSON object.
    pub body: Option<String>,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// Never answer (until the client goes away).
    pub hang: bool,
    /// Send the body one byte every this many milliseconds.
    pub trickle_ms: u64,
    /// Close the connection with a TCP reset instead of answering.
    pub reset: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Mode { status: 200, body: None, delay_ms: 0, hang: false, trickle_ms: 0, reset: false }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
struct Stats {
    calls: u64,
    in_flight: u64,
    max_in_flight: u64,
    connections: u64,
    open_connections: u64,
    cancelled: u64,
    completed: u64,
}

#[derive(Default)]
struct State {
    mode: Mode,
    stats: Stats,
}

type Shared = Arc<Mutex<State>>;

/// Serve until the process is stopped.
pub async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let state: Shared = Arc::new(Mutex::new(State::default()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        tokio::spawn(connection(sock, state.clone()));
    }
}

/// One request's head and body.
struct Req {
    method: String,
    path: String,
    close: bool,
    body: Vec<u8>,
}

/// Read one request; `None` when the client closed the connection (or sent garbage).
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Req> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let method = r.method.unwrap_or("GET").to_string();
                let path = r.path.unwrap_or("/").to_string();
                let header = |name: &str| r.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value).to_string());
                let len: usize = header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || r.version == Some(0);
                if len > MAX_BODY {
                    return None;
                }
                buf.drain(..n);
                while buf.len() < len {
                    let mut chunk = [0u8; 8192];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return None,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                let body = buf.drain(..len).collect();
                return Some(Req { method, path, close, body });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                let mut chunk = [0u8; 8192];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            _ => return None,
        }
    }
}

fn head(status: u16, len: usize, content_type: &str, close: bool) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {len}\r\n{}\r\n", if close { "connection: close\r\n" } else { "" }).into_bytes()
}

async fn reply(sock: &mut TcpStream, status: u16, body: &[u8], close: bool) -> bool {
    let mut out = head(status, body.len(), "application/json", close);
    out.extend_from_slice(body);
    sock.write_all(&out).await.is_ok()
}

/// Wait `d`, or until the client goes away (true).
async fn gone_within(sock: &mut TcpStream, d: Option<Duration>) -> bool {
    let mut byte = [0u8; 1];
    let wait = async {
        loop {
            // A client that sends more before its answer is pipelining: keep waiting.
            match sock.peek(&mut byte).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    match d {
        Some(d) => tokio::time::timeout(d, wait).await.unwrap_or(false),
        None => wait.await,
    }
}

async fn connection(mut sock: TcpStream, state: Shared) {
    let mut buf = Vec::new();
    let mut counted = false;
    while let Some(req) = read_request(&mut sock, &mut buf).await {
        if let Some(ctl) = req.path.strip_prefix("/_lab/") {
            let (status, body) = control(&state, &req.method, ctl.split('?').next().unwrap_or(""), &req.body);
            if !reply(&mut sock, status, body.as_bytes(), req.close).await || req.close {
                break;
            }
            continue;
        }
        let (mode, n) = {
            let mut st = state.lock().expect("state");
            if !counted {
                counted = true;
                st.stats.connections += 1;
                st.stats.open_connections += 1;
            }
            st.stats.calls += 1;
            st.stats.in_flight += 1;
            st.stats.max_in_flight = st.stats.max_in_flight.max(st.stats.in_flight);
            (st.mode.clone(), st.stats.calls)
        };
        let outcome = answer(&mut sock, &mode, n, req.close).await;
        {
            let mut st = state.lock().expect("state");
            st.stats.in_flight -= 1;
            match outcome {
                Outcome::Completed => st.stats.completed += 1,
                Outcome::Cancelled => st.stats.cancelled += 1,
                Outcome::Reset => {}
            }
        }
        if outcome != Outcome::Completed || req.close {
            break;
        }
    }
    if counted {
        state.lock().expect("state").stats.open_connections -= 1;
    }
}

#[derive(PartialEq)]
enum Outcome {
    Completed,
    Cancelled,
    Reset,
}

async fn answer(sock: &mut TcpStream, mode: &Mode, n: u64, close: bool) -> Outcome {
    if mode.hang {
        gone_within(sock, None).await;
        return Outcome::Cancelled;
    }
    if mode.delay_ms > 0 && gone_within(sock, Some(Duration::from_millis(mode.delay_ms))).await {
        return Outcome::Cancelled;
    }
    if mode.reset {
        let _ = sock.set_zero_linger();
        return Outcome::Reset;
    }
    let body = mode.body.clone().unwrap_or_else(|| r#"{"upstream": "lab", "call": {n}}"#.to_string()).replace("{n}", &n.to_string());
    if mode.trickle_ms == 0 {
        return if reply(sock, mode.status, body.as_bytes(), close).await { Outcome::Completed } else { Outcome::Cancelled };
    }
    if sock.write_all(&head(mode.status, body.len(), "application/json", close)).await.is_err() {
        return Outcome::Cancelled;
    }
    for b in body.as_bytes() {
        if gone_within(sock, Some(Duration::from_millis(mode.trickle_ms))).await || sock.write_all(&[*b]).await.is_err() {
            return Outcome::Cancelled;
        }
    }
    Outcome::Completed
}

fn control(state: &Shared, method: &str, what: &str, body: &[u8]) -> (u16, String) {
    let mut st = state.lock().expect("state");
    let stats = |st: &State| {
        serde_json::json!({
            "calls": st.stats.calls, "in_flight": st.stats.in_flight, "max_in_flight": st.stats.max_in_flight,
            "connections": st.stats.connections, "open_connections": st.stats.open_connections,
            "cancelled": st.stats.cancelled, "completed": st.stats.completed, "mode": st.mode,
        })
        .to_string()
    };
    match (method, what) {
        ("GET", "healthz") => (200, r#"{"ok": true}"#.into()),
        ("GET", "stats") => (200, stats(&st)),
        ("DELETE", "stats") => {
            let open = st.stats.open_connections;
            let in_flight = st.stats.in_flight;
            st.stats = Stats { open_connections: open, in_flight, ..Default::default() };
            (200, stats(&st))
        }
        ("PUT", "mode") => match serde_json::from_slice::<Mode>(body) {
            Ok(m) if (100..=599).contains(&m.status) => {
                st.mode = m;
                (200, serde_json::to_string(&st.mode).expect("a mode serializes"))
            }
            Ok(m) => (400, serde_json::json!({"error": format!("status {} is not an HTTP status", m.status)}).to_string()),
            Err(e) => (400, serde_json::json!({"error": format!("a mode is JSON {{status, body, delay_ms, hang, trickle_ms, reset}}: {e}")}).to_string()),
        },
        _ => (404, r#"{"error": "control: PUT /_lab/mode, GET or DELETE /_lab/stats, GET /_lab/healthz"}"#.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::http::{self as lhttp, HttpRequest};

    async fn start() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        tokio::spawn(serve(addr));
        for _ in 0..50 {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        format!("http://{addr}")
    }

    fn req(method: &str, url: String, body: Option<&str>, timeout: Duration) -> HttpRequest {
        HttpRequest { method: method.into(), url, headers: Default::default(), body: body.map(|b| b.as_bytes().to_vec()), json: body.is_some(), timeout }
    }

    async fn stats(base: &str) -> serde_json::Value {
        let r = lhttp::send(&lhttp::client(), &req("GET", format!("{base}/_lab/stats"), None, Duration::from_secs(2))).await.unwrap();
        serde_json::from_slice(&r.body).unwrap()
    }

    #[tokio::test]
    async fn the_checks_set_the_answer_and_read_what_the_caller_did() {
        let base = start().await;
        let c = lhttp::client();
        let t = Duration::from_secs(2);
        let r = lhttp::send(&c, &req("GET", format!("{base}/quote"), None, t)).await.unwrap();
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).to_string()), (200, r#"{"upstream": "lab", "call": 1}"#.to_string()));
        let m = lhttp::send(&c, &req("PUT", format!("{base}/_lab/mode"), Some(r#"{"status": 503, "delay_ms": 150}"#), t)).await.unwrap();
        assert_eq!(m.status, 200);
        let r = lhttp::send(&c, &req("GET", format!("{base}/quote"), None, t)).await.unwrap();
        assert_eq!(r.status, 503);
        assert!(r.elapsed >= Duration::from_millis(150), "{:?}", r.elapsed);
        // A client that gives up on a hanging call is seen to go.
        lhttp::send(&c, &req("PUT", format!("{base}/_lab/mode"), Some(r#"{"hang": true}"#), t)).await.unwrap();
        let e = lhttp::send(&c, &req("GET", format!("{base}/quote"), None, Duration::from_millis(200))).await.unwrap_err();
        assert!(matches!(e, lhttp::HttpFailure::Timeout(_)), "{e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = stats(&base).await;
        assert_eq!((s["calls"].as_u64(), s["cancelled"].as_u64(), s["completed"].as_u64(), s["in_flight"].as_u64()), (Some(3), Some(1), Some(2), Some(0)), "{s}");
        // lab's client opens a connection per request; control requests are not counted.
        assert_eq!(s["connections"], 3, "{s}");
        let z = lhttp::send(&c, &req("DELETE", format!("{base}/_lab/stats"), None, t)).await.unwrap();
        let z: serde_json::Value = serde_json::from_slice(&z.body).unwrap();
        assert_eq!(z["calls"], 0, "{z}");
        let bad = lhttp::send(&c, &req("PUT", format!("{base}/_lab/mode"), Some(r#"{"stauts": 500}"#), t)).await.unwrap();
        assert_eq!(bad.status, 400);
        assert!(String::from_utf8_lossy(&bad.body).contains("stauts"));
    }

    #[tokio::test]
    async fn a_kept_alive_connection_counts_once_and_a_reset_closes_it() {
        let base = start().await;
        let addr = base.trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        for _ in 0..3 {
            s.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
        }
        let st = stats(&base).await;
        assert_eq!((st["calls"].as_u64(), st["connections"].as_u64(), st["open_connections"].as_u64()), (Some(3), Some(1), Some(1)), "{st}");
        let c = lhttp::client();
        lhttp::send(&c, &req("PUT", format!("{base}/_lab/mode"), Some(r#"{"reset": true}"#), Duration::from_secs(2))).await.unwrap();
        s.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 64];
        let r = s.read(&mut buf).await;
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
}
