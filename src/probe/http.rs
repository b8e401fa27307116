//! HTTP requests to the learner's service: no redirects followed, a timeout on
//! the whole exchange, and at most `MAX_BODY` bytes of body read.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// The most body bytes kept from one answer.
pub const MAX_BODY: usize = 1 << 20;

/// A request, fully rendered.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Vec<u8>>,
    pub json: bool,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Why no answer came.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpFailure {
    #[error("no answer within {0:?} (the request timed out)")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// A client that never follows redirects (checks look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(0).build().expect("a client with static settings builds")
}

/// The whole chain of an error, joined (reqwest hides the interesting part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Send one request.
pub async fn send(client: &reqwest::Client, req: &HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let start = Instant::now();
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| HttpFailure::Other(e.to_string()))?;
    let mut rb = client.request(method, &req.url);
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    if req.json {
        rb = rb.header("content-type", "application/json");
    }
    if let Some(b) = &req.body {
        rb = rb.body(b.clone());
    }
    let fut = async {
        let resp = rb.send().await.map_err(classify)?;
        let status = resp.status();
        let headers = resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).to_string())).collect();
        let mut body = Vec::new();
        let mut truncated = false;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            let room = MAX_BODY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status: status.as_u16(), reason: status.canonical_reason().unwrap_or("").to_string(), headers, body, truncated, elapsed: start.elapsed() })
    };
    match tokio::time::timeout(req.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(HttpFailure::Timeout(req.timeout)),
    }
}

fn classify(e: reqwest::Error) -> HttpFailure {
    if e.is_timeout() {
        HttpFailure::Timeout(Duration::ZERO)
    } else if e.is_connect() {
        HttpFailure::Connect(error_chain(&e))
    } else {
        HttpFailure::Other(error_chain(&e))
    }
}

impl HttpResponse {
    /// Header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text, shortened for messages.
    pub fn body_excerpt(&self, max: usize) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let s = s.trim();
        if s.chars().count() > max {
            format!("{}…", s.chars().take(max).collect::<String>())
        } else {
            s.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve(answer: &'static [u8], delay: Duration) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(delay).await;
            let _ = s.write_all(answer).await;
            if answer.is_empty() {
                // A flood: far more than MAX_BODY.
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4000000\r\n\r\n").await;
                let chunk = vec![b'x'; 65536];
                for _ in 0..62 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        });
        format!("http://{addr}/")
    }

    fn get(url: String, timeout: Duration) -> HttpRequest {
        HttpRequest { method: "GET".into(), url, headers: BTreeMap::new(), body: None, json: false, timeout }
    }

    #[tokio::test]
    async fn a_hanging_service_times_out() {
        let url = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Duration::from_secs(10)).await;
        let err = send(&client(), &get(url, Duration::from_millis(200))).await.unwrap_err();
        assert!(matches!(err, HttpFailure::Timeout(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_flood_is_capped() {
        let url = serve(b"", Duration::ZERO).await;
        let resp = send(&client(), &get(url, Duration::from_secs(5))).await.unwrap();
        assert_eq!(resp.body.len(), MAX_BODY);
        assert!(resp.truncated);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let url = serve(b"HTTP/1.1 302 Found\r\nlocation: http://example.invalid/\r\ncontent-length: 0\r\n\r\n", Duration::ZERO).await;
        let resp = send(&client(), &get(url, Duration::from_secs(5))).await.unwrap();
        assert_eq!(resp.status, 302);
        assert_eq!(resp.header("Location"), Some("http://example.invalid/"));
    }
}
