//! The ws probe: many WebSocket clients of the learner's service at once,
//! spread over its nodes, running one whole scenario and summing it up as JSON.
//!
//! Scenarios:
//! - `fanout`: clients spread round robin over the nodes; the first `senders`
//!   clients send `messages` messages each; every client must receive every
//!   message exactly once, in order per sender.
//! - `origin`: one handshake with a given `Origin`; the answer is its status.
//! - `silent-client`: one client stops reading (so it never answers a ping)
//!   next to an idle client that reads (and so answers pings) but never sends;
//!   the server should drop the first and keep the second.
//! - `slow-client`: a fanout while one more client, with a tiny receive
//!   buffer, never reads: the others must still get everything, promptly.
//!   Where lab runs the service it connects that client to the node's own
//!   address in the lab's network: Docker's published port has a proxy in
//!   between whose socket buffers (up to tcp_rmem's maximum, 32 MB on some
//!   machines) would take the data in the service's stead, and a hub that
//!   blocks on the client would go unseen.
//!
//! A `redis://host:port/<channel>` entry of `urls` is not a node: it is the
//! Pub/Sub broker the nodes share (fanout and slow-client only). The probe
//! subscribes to `<channel>` itself before anyone sends, so it sees which
//! messages the nodes published, and a failure says which side broke: a
//! node that did not publish a message, or a node whose subscription did not
//! hand on messages that reached the broker. Without a broker the probe still
//! tells them apart where the deliveries allow (a node whose clients get other
//! senders' messages but not its own sender's did not publish them).
//!
//! Every message a sender sends carries a token `m~<probe>~<sender>~<seq>~`;
//! a receiver counts every token of this probe found in any frame it gets, so
//! the service may wrap the text in whatever JSON its protocol says.
//!
//! Limits: every connection and handshake has a timeout, each frame and
//! message a size cap, each client a cap on frames it reads, and the whole
//! scenario a deadline. A server that hangs, floods or sends malformed frames
//! gets a failing answer, never a hung or crashed probe.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::Answer;

/// How long a TCP connect plus WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one send may take (a server that stops reading blocks sends).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// The most raw bytes the silent client reads.
pub const SILENT_READ_CAP: usize = 1024 * 1024;
/// The receive buffer asked for the slow client's socket (the kernel may round it up).
pub const SLOW_RECV_BUFFER: u32 = 4096;
/// The most bytes the probe reads from its own subscription to the broker.
pub const BROKER_READ_CAP: usize = 64 * 1024 * 1024;

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Fanout,
    Origin,
    SilentClient,
    SlowClient,
}

/// A scenario with its templates rendered.
#[derive(Debug, Clone)]
pub struct WsSpec {
    pub scenario: Scenario,
    /// Base URLs of the nodes (`http://`, `https://`, `ws://` or `wss://`), clients go round robin.
    pub urls: Vec<String>,
    /// slow-client: the first node's own address, when lab knows it; the slow
    /// client connects there (falling back to the first URL), so that no proxy
    /// in between reads on its behalf and the service's socket does fill up.
    pub slow_url: Option<String>,
    /// Path and query; `{client}` becomes the client's name (c1, c2, ...).
    pub path: String,
    /// The text frame a sender sends; `{token}` becomes the message's token, `{pad}` `size` bytes of filler.
    pub message: String,
    /// The Origin header of every handshake (none when absent).
    pub origin: Option<String>,
    pub clients: usize,
    pub senders: usize,
    pub messages: usize,
    pub size: usize,
    /// Pause between two messages of one sender.
    pub interval: Duration,
    /// Pause after every client connected, before the first message (silent-client: how long the idle client must outlive the silent one).
    pub settle: Duration,
    /// How long to wait for deliveries after the last send (silent-client: for the server to drop the silent client).
    pub wait: Duration,
    /// The whole scenario's deadline.
    pub timeout: Duration,
    /// The largest frame or message accepted from the server.
    pub max_message: usize,
    /// The most frames one client reads; more is a flood.
    pub max_frames: usize,
}

/// Why a scenario gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum WsFailure {
    /// The spec cannot run (lab's side).
    #[error("{0}")]
    Spec(String),
    #[error("client {client} could not connect to {url}: {why}")]
    Connect { client: String, url: String, why: String },
    #[error("the scenario did not finish within {0:?} (the service hung or flooded)")]
    Timeout(Duration),
}

type Ws = WebSocketStream<TcpStream>;

/// A node's base URL turned into a WebSocket URL with the path.
pub fn ws_url(base: &str, path: &str) -> Result<String, WsFailure> {
    let base = base.trim_end_matches('/');
    let b = if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        return Err(WsFailure::Spec(format!("{base:?} is not an http:// or ws:// URL")));
    };
    if b.starts_with("wss://") {
        return Err(WsFailure::Spec(format!("{b}: TLS is not supported by the ws probe")));
    }
    let p = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    Ok(format!("{b}{p}"))
}

fn config(spec: &WsSpec) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(spec.max_message)).max_frame_size(Some(spec.max_message)).read_buffer_size(16 * 1024).write_buffer_size(0)
}

/// How a handshake went when it did not give a WebSocket.
enum Refused {
    /// The server answered the upgrade with an HTTP status other than 101.
    Status(u16, String),
    /// No answer (refused, reset, timeout, malformed).
    Broken(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Status(s, body) if body.is_empty() => write!(f, "the upgrade got HTTP {s} instead of 101 Switching Protocols"),
            Refused::Status(s, body) => write!(f, "the upgrade got HTTP {s} instead of 101 Switching Protocols: {body}"),
            Refused::Broken(w) => f.write_str(w),
        }
    }
}

/// Connect one client: TCP (optionally with a small receive buffer), then the handshake, under one timeout.
async fn connect(url: &str, origin: Option<&str>, cfg: WebSocketConfig, recv_buffer: Option<u32>) -> Result<Ws, Refused> {
    let mut req = url.into_client_request().map_err(|e| Refused::Broken(format!("bad URL {url}: {e}")))?;
    if let Some(o) = origin {
        let v = o.parse().map_err(|_| Refused::Broken(format!("origin {o:?} is not a header value")))?;
        req.headers_mut().insert("Origin", v);
    }
    let host = req.uri().host().unwrap_or("127.0.0.1").trim_start_matches('[').trim_end_matches(']').to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let work = async {
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Refused::Broken(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| Refused::Broken(format!("{host} has no address")))?;
        let sock = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| Refused::Broken(e.to_string()))?;
        if let Some(b) = recv_buffer {
            let _ = sock.set_recv_buffer_size(b);
        }
        let tcp = sock.connect(addr).await.map_err(|e| Refused::Broken(format!("TCP connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg)).await {
            Ok((ws, _)) => Ok(ws),
            Err(WsError::Http(resp)) => {
                let body = resp.body().as_ref().map(|b| super::excerpt(String::from_utf8_lossy(b).trim(), 200)).unwrap_or_default();
                Err(Refused::Status(resp.status().as_u16(), body))
            }
            Err(e) => Err(Refused::Broken(format!("handshake: {e}"))),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(Refused::Broken(format!("no handshake within {} ms (the service hung)", CONNECT_TIMEOUT.as_millis()))),
    }
}

/// The Pub/Sub broker the nodes share (a `redis://host:port/<channel>` entry of `urls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// `host:port`.
    pub addr: String,
    pub channel: String,
}

/// The nodes' URLs, and the broker if `urls` names one.
pub fn split_urls(urls: &[String]) -> Result<(Vec<String>, Option<Broker>), WsFailure> {
    let mut nodes = Vec::new();
    let mut broker = None;
    for u in urls {
        let Some(rest) = u.strip_prefix("redis://") else {
            nodes.push(u.clone());
            continue;
        };
        let (addr, channel) = rest.split_once('/').unwrap_or((rest, ""));
        if addr.is_empty() || channel.is_empty() || addr.contains('@') {
            return Err(WsFailure::Spec(format!("{u:?}: a broker is written redis://host:port/<channel> (no password)")));
        }
        if broker.is_some() {
            return Err(WsFailure::Spec("the ws probe takes at most one redis:// URL in `urls`".into()));
        }
        let addr = if addr.contains(':') { addr.to_string() } else { format!("{addr}:6379") };
        broker = Some(Broker { addr, channel: channel.to_string() });
    }
    Ok((nodes, broker))
}

/// The probe's own subscription to the broker: the tokens of this probe published on the channel.
struct Watch {
    seen: Arc<Mutex<BTreeSet<(usize, usize)>>>,
    /// How the subscription ended early, if it did.
    ended: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// SUBSCRIBE to the broker's channel and wait for the confirmation, then record every token of this probe.
async fn watch_broker(b: &Broker, re: Arc<regex::Regex>) -> Result<Watch, String> {
    let work = async {
        let mut tcp = TcpStream::connect(&b.addr).await.map_err(|e| format!("connecting: {e}"))?;
        tcp.write_all(&resp(&["SUBSCRIBE", &b.channel])).await.map_err(|e| format!("sending SUBSCRIBE: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.map_err(|e| format!("reading: {e}"))?;
            if n == 0 {
                return Err("the broker closed the connection".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.first() == Some(&b'-') {
                return Err(format!("the broker refused SUBSCRIBE: {}", String::from_utf8_lossy(&buf).trim()));
            }
            // *3 $9 subscribe $<n> <channel> :<count>
            let text = String::from_utf8_lossy(&buf);
            if let Some(at) = text.find("subscribe\r\n") {
                if text[at..].contains("\r\n:") && text.ends_with("\r\n") {
                    // What came with the confirmation may already hold a message.
                    return Ok((tcp, buf));
                }
            }
            if buf.len() > 4096 {
                return Err("an unexpected answer to SUBSCRIBE".to_string());
            }
        }
    };
    let (mut tcp, first) = match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
        Ok(r) => r?,
        Err(_) => return Err(format!("no answer to SUBSCRIBE within {} ms", CONNECT_TIMEOUT.as_millis())),
    };
    let seen: Arc<Mutex<BTreeSet<(usize, usize)>>> = Arc::default();
    let ended: Arc<Mutex<Option<String>>> = Arc::default();
    let (s, e) = (seen.clone(), ended.clone());
    let task = tokio::spawn(async move {
        let mut chunk = vec![0u8; 16 * 1024];
        // The end of the previous read, so that a token cut in two is still found.
        let mut tail: Vec<u8> = first;
        let mut total = 0usize;
        let scan = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let mut set = s.lock().unwrap();
            for c in re.captures_iter(&text) {
                if let (Ok(sender), Ok(seq)) = (c[1].parse::<usize>(), c[2].parse::<usize>()) {
                    set.insert((sender, seq));
                }
            }
        };
        scan(&tail);
        loop {
            let n = match tcp.read(&mut chunk).await {
                Ok(0) => {
                    *e.lock().unwrap() = Some("the broker closed the connection".into());
                    return;
                }
                Ok(n) => n,
                Err(err) => {
                    *e.lock().unwrap() = Some(format!("connection error: {err}"));
                    return;
                }
            };
            total += n;
            if total > BROKER_READ_CAP {
                *e.lock().unwrap() = Some(format!("more than {BROKER_READ_CAP} bytes"));
                return;
            }
            tail.extend_from_slice(&chunk[..n]);
            scan(&tail);
            let keep = tail.len().min(128);
            tail.drain(..tail.len() - keep);
        }
    });
    Ok(Watch { seen, ended, task })
}

/// Run a scenario.
pub async fn run(spec: &WsSpec) -> Result<Answer, WsFailure> {
    let (nodes, broker) = split_urls(&spec.urls)?;
    if broker.is_some() && !matches!(spec.scenario, Scenario::Fanout | Scenario::SlowClient) {
        return Err(WsFailure::Spec("a redis:// URL in `urls` is for the fanout and slow-client scenarios".into()));
    }
    let spec = &WsSpec { urls: nodes, ..spec.clone() };
    if spec.urls.is_empty() {
        return Err(WsFailure::Spec("the ws probe needs at least one URL in `urls`".into()));
    }
    let started = Instant::now();
    let work = async {
        match spec.scenario {
            Scenario::Fanout => fanout(spec, false, broker.as_ref()).await,
            Scenario::SlowClient => fanout(spec, true, broker.as_ref()).await,
            Scenario::Origin => origin(spec).await,
            Scenario::SilentClient => silent(spec).await,
        }
    };
    let (value, shown) = match tokio::time::timeout(spec.timeout, work).await {
        Ok(r) => r?,
        Err(_) => return Err(WsFailure::Timeout(spec.timeout)),
    };
    Ok(Answer { value, shown, elapsed: started.elapsed() })
}

async fn origin(spec: &WsSpec) -> Result<(serde_json::Value, String), WsFailure> {
    let url = ws_url(&spec.urls[0], &spec.path.replace("{client}", "c1"))?;
    let origin = spec.origin.as_deref();
    let shown_origin = origin.map(|o| format!("Origin: {o}")).unwrap_or_else(|| "no Origin".into());
    match connect(&url, origin, config(spec), None).await {
        Ok(mut ws) => {
            let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
            Ok((serde_json::json!({"status": 101, "accepted": true}), format!("the handshake with {shown_origin} was accepted (101 Switching Protocols)")))
        }
        Err(Refused::Status(s, body)) => Ok((
            serde_json::json!({"status": s, "accepted": false, "body": body}),
            format!("the handshake with {shown_origin} was refused with HTTP {s}{}", if body.is_empty() { String::new() } else { format!(": {body}") }),
        )),
        Err(Refused::Broken(why)) => Err(WsFailure::Connect { client: "c1".into(), url, why }),
    }
}

/// One delivery a receiver saw.
#[derive(Debug, Clone, Copy)]
struct Got {
    sender: usize,
    seq: usize,
    at: Instant,
}

#[derive(Debug, Default)]
struct Log {
    got: Vec<Got>,
    frames: usize,
    /// How the connection ended early, if it did.
    ended: Option<String>,
}

struct Client {
    name: String,
    node: usize,
    log: Arc<Mutex<Log>>,
}

/// Read frames until the connection ends or the task is aborted, recording every token of this probe.
async fn read_loop(mut stream: futures_util::stream::SplitStream<Ws>, log: Arc<Mutex<Log>>, re: Arc<regex::Regex>, max_frames: usize, delivered: Arc<AtomicUsize>, notify: Arc<Notify>) {
    while let Some(item) = stream.next().await {
        let text = match item {
            Ok(Message::Text(t)) => t.as_str().to_string(),
            Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Message::Close(c)) => {
                log.lock().unwrap().ended = Some(match c {
                    Some(c) => format!("closed by the server (code {}, {:?})", u16::from(c.code), c.reason.as_str()),
                    None => "closed by the server".into(),
                });
                notify.notify_one();
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                log.lock().unwrap().ended = Some(describe_error(&e));
                notify.notify_one();
                return;
            }
        };
        let at = Instant::now();
        let mut l = log.lock().unwrap();
        l.frames += 1;
        if l.frames > max_frames {
            l.ended = Some(format!("flooded: more than {max_frames} frames"));
            notify.notify_one();
            return;
        }
        for c in re.captures_iter(&text) {
            let (Ok(sender), Ok(seq)) = (c[1].parse::<usize>(), c[2].parse::<usize>()) else { continue };
            l.got.push(Got { sender, seq, at });
            delivered.fetch_add(1, Ordering::SeqCst);
        }
        drop(l);
        notify.notify_one();
    }
    log.lock().unwrap().ended.get_or_insert_with(|| "the connection ended without a close frame".into());
    notify.notify_one();
}

fn describe_error(e: &WsError) -> String {
    match e {
        WsError::Capacity(c) => format!("a frame over the size cap ({c})"),
        WsError::Protocol(p) => format!("a malformed frame ({p})"),
        WsError::Utf8 => "a text frame that is not UTF-8".into(),
        WsError::Io(io) => format!("connection error: {io}"),
        other => other.to_string(),
    }
}

fn probe_id() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..8).map(|_| format!("{:x}", r.gen_range(0..16u8))).collect()
}

async fn fanout(spec: &WsSpec, slow: bool, broker: Option<&Broker>) -> Result<(serde_json::Value, String), WsFailure> {
    let n_nodes = spec.urls.len();
    let clients = spec.clients.max(1);
    let senders = spec.senders.clamp(1, clients);
    let cfg = config(spec);
    let id = probe_id();
    let re = Arc::new(regex::Regex::new(&format!("m~{id}~([0-9]+)~([0-9]+)~")).expect("a fixed pattern"));

    // The slow client first, on the first node: it never reads.
    let mut slow_conn = None;
    if slow {
        let path = spec.path.replace("{client}", "slow");
        let url = ws_url(&spec.urls[0], &path)?;
        // Not reachable from here (Docker Desktop, a remote engine): the published port it is.
        let direct = match spec.slow_url.as_deref().map(|d| ws_url(d, &path)) {
            Some(Ok(d)) => tokio::time::timeout(Duration::from_secs(1), connect(&d, spec.origin.as_deref(), cfg, Some(SLOW_RECV_BUFFER))).await.ok().and_then(Result::ok),
            _ => None,
        };
        let ws = match direct {
            Some(ws) => ws,
            None => connect(&url, spec.origin.as_deref(), cfg, Some(SLOW_RECV_BUFFER)).await.map_err(|r| WsFailure::Connect { client: "slow".into(), url, why: r.to_string() })?,
        };
        slow_conn = Some(ws);
    }

    // Everybody else, concurrently.
    let mut pending = Vec::new();
    for k in 0..clients {
        let name = format!("c{}", k + 1);
        let node = k % n_nodes;
        let url = ws_url(&spec.urls[node], &spec.path.replace("{client}", &name))?;
        let origin = spec.origin.clone();
        pending.push(tokio::spawn(async move {
            let r = connect(&url, origin.as_deref(), cfg, None).await;
            (name, node, url, r)
        }));
    }
    let delivered = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let mut list = Vec::new();
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    let mut failure = None;
    for p in pending {
        let (name, node, url, r) = p.await.map_err(|e| WsFailure::Spec(e.to_string()))?;
        match r {
            Ok(ws) => {
                let (sink, stream) = ws.split();
                let log = Arc::new(Mutex::new(Log::default()));
                readers.push(tokio::spawn(read_loop(stream, log.clone(), re.clone(), spec.max_frames, delivered.clone(), notify.clone())));
                if list.len() < senders {
                    sinks.push(sink);
                }
                list.push(Client { name, node, log });
            }
            Err(why) => {
                failure.get_or_insert(WsFailure::Connect { client: format!("{name} (node {})", node + 1), url, why: why.to_string() });
            }
        }
    }
    let abort_all = |readers: &Vec<tokio::task::JoinHandle<()>>| readers.iter().for_each(|r| r.abort());
    if let Some(f) = failure {
        abort_all(&readers);
        return Err(f);
    }
    // The probe's own subscription, before anyone sends.
    let watch = match broker {
        Some(b) => Some((b, watch_broker(b, re.clone()).await)),
        None => None,
    };
    tokio::time::sleep(spec.settle).await;

    // Send.
    let pad = "x".repeat(spec.size);
    let sent_at: Arc<Mutex<BTreeMap<(usize, usize), Instant>>> = Arc::default();
    let mut send_tasks = Vec::new();
    for (s, mut sink) in sinks.into_iter().enumerate() {
        let sent_at = sent_at.clone();
        let (template, pad, id, interval, m) = (spec.message.clone(), pad.clone(), id.clone(), spec.interval, spec.messages);
        send_tasks.push(tokio::spawn(async move {
            for seq in 1..=m {
                let token = format!("m~{id}~{}~{seq}~", s + 1);
                let text = template.replace("{token}", &token).replace("{pad}", &pad);
                sent_at.lock().unwrap().insert((s + 1, seq), Instant::now());
                match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::text(text))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("sending message {seq}: {}", describe_error(&e))),
                    Err(_) => return Err(format!("sending message {seq} did not finish within {} ms (the server stopped reading)", SEND_TIMEOUT.as_millis())),
                }
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
            }
            Ok(sink)
        }));
    }
    let mut send_errors = Vec::new();
    let mut kept_sinks = Vec::new();
    for (s, t) in send_tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(sink)) => kept_sinks.push(sink),
            Ok(Err(e)) => send_errors.push(format!("{} (node {}): {e}", list[s].name, list[s].node + 1)),
            Err(e) => send_errors.push(e.to_string()),
        }
    }
    let last_send = Instant::now();

    // Wait for every delivery, or until `wait` has passed since the last send.
    let expected = clients * senders * spec.messages;
    let until = last_send + spec.wait;
    loop {
        let notified = notify.notified();
        if delivered.load(Ordering::SeqCst) >= expected {
            break;
        }
        if tokio::time::timeout_at(until.into(), notified).await.is_err() {
            break;
        }
    }
    // A moment more, so that duplicates right behind the last delivery are seen.
    if delivered.load(Ordering::SeqCst) >= expected {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    abort_all(&readers);
    drop(kept_sinks);
    drop(slow_conn);
    let seen = watch.map(|(b, w)| match w {
        Ok(w) => {
            w.task.abort();
            let seen = w.seen.lock().unwrap().clone();
            let ended = w.ended.lock().unwrap().clone();
            BrokerSeen { channel: b.channel.clone(), seen: Ok(seen), ended }
        }
        Err(why) => BrokerSeen { channel: b.channel.clone(), seen: Err(why), ended: None },
    });

    let sent_at = sent_at.lock().unwrap().clone();
    Ok(summarize(spec, &list, senders, &sent_at, &send_errors, slow, seen.as_ref()))
}

/// What the probe's own subscription to the broker saw.
struct BrokerSeen {
    channel: String,
    /// The messages (sender, seq) published on the channel, or why the probe could not subscribe.
    seen: Result<BTreeSet<(usize, usize)>, String>,
    ended: Option<String>,
}

/// Which side of the Pub/Sub lost messages, as sentences: a node that did not
/// publish its sender's messages, or a node whose subscription did not hand on
/// what others published. `got[c][s]` is the set of messages of sender `s`
/// (from 1) that client `c` got.
fn diagnose(list: &[Client], senders: usize, m: usize, got: &[Vec<BTreeSet<usize>>], broker: Option<&BrokerSeen>) -> Vec<String> {
    let nodes: BTreeSet<usize> = list.iter().map(|c| c.node).collect();
    let node_got = |n: usize, s: usize| -> BTreeSet<usize> { list.iter().enumerate().filter(|(_, c)| c.node == n).flat_map(|(k, _)| got[k][s - 1].iter().copied()).collect() };
    let anyone_got = |s: usize| -> BTreeSet<usize> { nodes.iter().flat_map(|n| node_got(*n, s)).collect() };
    let mut out = Vec::new();
    if let Some(b) = broker {
        let seen = match &b.seen {
            Ok(seen) => seen,
            Err(why) => {
                out.push(format!("lab could not subscribe to {} itself to tell which side failed: {why}", b.channel));
                return out;
            }
        };
        for s in 1..=senders {
            let sender = &list[s - 1];
            let published = (1..=m).filter(|q| seen.contains(&(s, *q))).count();
            if published < m {
                let reached = anyone_got(s).len();
                out.push(format!(
                    "{} of the {m} messages {} sent to node {} never reached Redis (lab's own SUBSCRIBE to {} saw {published}): node {} did not PUBLISH them, its publishing side is broken{}",
                    m - published,
                    sender.name,
                    sender.node + 1,
                    b.channel,
                    sender.node + 1,
                    if reached <= published { "" } else { " (yet some reached clients: does it deliver locally as well?)" }
                ));
            }
        }
        for n in &nodes {
            let (mut reached_redis, mut got_here) = (0, 0);
            for s in 1..=senders {
                for q in 1..=m {
                    if seen.contains(&(s, q)) {
                        reached_redis += 1;
                        if list.iter().enumerate().filter(|(_, c)| c.node == *n).all(|(k, _)| got[k][s - 1].contains(&q)) {
                            got_here += 1;
                        }
                    }
                }
            }
            if got_here < reached_redis {
                out.push(if got_here == 0 {
                    format!("node {}'s clients got none of the {reached_redis} messages that reached Redis: node {}'s subscription does not work (did it subscribe again?)", n + 1, n + 1)
                } else {
                    format!("node {}'s clients did not all get {} of the {reached_redis} messages that reached Redis: node {}'s subscription lost them", n + 1, reached_redis - got_here, n + 1)
                });
            }
        }
        if let Some(e) = &b.ended {
            out.push(format!("lab's own subscription to {} ended early: {e}", b.channel));
        }
        return out;
    }
    // No broker to ask: infer what the deliveries allow.
    let total: usize = (1..=senders).map(|s| anyone_got(s).len()).sum();
    if total == 0 {
        if m > 0 {
            out.push("no client on any node got any message, not even on the sender's own node: either the nodes do not publish, or no node's subscription works (or both)".into());
        }
        return out;
    }
    for s in 1..=senders {
        let sender = &list[s - 1];
        let own_works = (1..=senders).any(|o| o != s && !node_got(sender.node, o).is_empty());
        if anyone_got(s).is_empty() && own_works {
            out.push(format!(
                "none of the messages {} sent to node {} reached any client, not even on node {}, whose subscription works (its clients got other senders' messages): node {} did not publish them",
                sender.name,
                sender.node + 1,
                sender.node + 1,
                sender.node + 1
            ));
        }
    }
    for n in &nodes {
        let here: usize = (1..=senders).map(|s| node_got(*n, s).len()).sum();
        if here == 0 {
            out.push(format!("node {}'s clients got no message at all while other nodes' clients did: node {}'s subscription does not work", n + 1, n + 1));
        }
    }
    out
}

fn summarize(
    spec: &WsSpec,
    list: &[Client],
    senders: usize,
    sent_at: &BTreeMap<(usize, usize), Instant>,
    send_errors: &[String],
    slow: bool,
    broker: Option<&BrokerSeen>,
) -> (serde_json::Value, String) {
    let m = spec.messages;
    let (mut missing, mut missing_cross, mut dups, mut ooo, mut delivered) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut latencies: Vec<u128> = Vec::new();
    let mut examples: Vec<String> = Vec::new();
    let mut ended = Vec::new();
    let mut per_client = Vec::new();
    let mut got_sets: Vec<Vec<BTreeSet<usize>>> = Vec::new();
    for c in list {
        let log = c.log.lock().unwrap();
        let mut c_missing = 0;
        let mut c_sets = Vec::new();
        for s in 1..=senders {
            let seqs: Vec<(usize, Instant)> = log.got.iter().filter(|g| g.sender == s).map(|g| (g.seq, g.at)).collect();
            let mut seen = std::collections::BTreeSet::new();
            let mut last = 0usize;
            let (mut d, mut o) = (0, 0);
            for (seq, at) in &seqs {
                if !seen.insert(*seq) {
                    d += 1;
                    if examples.len() < 6 {
                        examples.push(format!("{} (node {}) got message {seq} of {} twice", c.name, c.node + 1, list[s - 1].name));
                    }
                    continue;
                }
                if let Some(t0) = sent_at.get(&(s, *seq)) {
                    latencies.push(at.saturating_duration_since(*t0).as_millis());
                }
                // Order is judged on first arrivals: a late duplicate is counted once, as a duplicate.
                if *seq < last {
                    o += 1;
                    if examples.len() < 6 {
                        examples.push(format!("{} (node {}) got message {seq} of {} after message {last}", c.name, c.node + 1, list[s - 1].name));
                    }
                }
                last = last.max(*seq);
            }
            let got = seen.iter().filter(|q| **q >= 1 && **q <= m).count();
            c_sets.push(seen.iter().copied().filter(|q| *q >= 1 && *q <= m).collect::<BTreeSet<usize>>());
            let miss = m - got;
            if miss > 0 {
                let sender = &list[s - 1];
                if examples.len() < 6 {
                    examples.push(if got == 0 {
                        format!("{} (node {}) got none of the {m} messages of {} (node {})", c.name, c.node + 1, sender.name, sender.node + 1)
                    } else {
                        format!("{} (node {}) got {got} of the {m} messages of {} (node {})", c.name, c.node + 1, sender.name, sender.node + 1)
                    });
                }
                if sender.node != c.node {
                    missing_cross += miss;
                }
            }
            c_missing += miss;
            dups += d;
            ooo += o;
            delivered += got;
        }
        missing += c_missing;
        got_sets.push(c_sets);
        if let Some(e) = &log.ended {
            ended.push(format!("{} (node {}): {e}", c.name, c.node + 1));
        }
        per_client.push(serde_json::json!({"client": c.name, "node": c.node + 1, "received": log.got.len(), "missing": c_missing, "frames": log.frames, "ended": log.ended}));
    }
    latencies.sort_unstable();
    let max = latencies.last().copied();
    let p50 = latencies.get(latencies.len() / 2).copied();
    let expected = list.len() * senders * m;
    let nodes: Vec<String> = (0..spec.urls.len())
        .map(|n| {
            let names: Vec<&str> = list.iter().filter(|c| c.node == n).map(|c| c.name.as_str()).collect();
            format!("node {}: {}", n + 1, if names.is_empty() { "-".into() } else { names.join(" ") })
        })
        .collect();
    let diagnosis = if missing > 0 { diagnose(list, senders, m, &got_sets, broker) } else { Vec::new() };
    let published = broker.and_then(|b| b.seen.as_ref().ok()).map(|seen| seen.iter().filter(|(s, q)| *s >= 1 && *s <= senders && *q >= 1 && *q <= m).count());
    let value = serde_json::json!({
        "clients": list.len(),
        "senders": senders,
        "messages": m,
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "missing_cross_node": missing_cross,
        "duplicates": dups,
        "out_of_order": ooo,
        "send_errors": send_errors.len(),
        "ended_early": ended.len(),
        "latency_ms": {"max": max, "p50": p50},
        "slow_client": slow,
        "published": published,
        "diagnosis": diagnosis,
        "per_client": per_client,
    });
    let mut shown = format!(
        "{} clients ({}){}, {senders} sender(s) × {m} message(s){}: {expected} deliveries expected, {delivered} made; {missing} missing ({missing_cross} across nodes), {dups} duplicate(s), {ooo} out of order; latency p50 {} max {}",
        list.len(),
        nodes.join("; "),
        if slow { " plus a client on node 1 that never reads" } else { "" },
        if spec.size > 0 { format!(" of {} bytes", spec.size) } else { String::new() },
        p50.map(|x| format!("{x} ms")).unwrap_or_else(|| "-".into()),
        max.map(|x| format!("{x} ms")).unwrap_or_else(|| "-".into()),
    );
    for d in &diagnosis {
        shown.push_str(&format!("\n  {d}"));
    }
    for e in examples.iter().take(6) {
        shown.push_str(&format!("\n  {e}"));
    }
    for e in send_errors.iter().take(3) {
        shown.push_str(&format!("\n  send error: {e}"));
    }
    for e in ended.iter().take(3) {
        shown.push_str(&format!("\n  connection of {e}"));
    }
    (value, shown)
}

/// The silent-client scenario: one client that reads raw bytes and never answers, one idle client that answers pings.
async fn silent(spec: &WsSpec) -> Result<(serde_json::Value, String), WsFailure> {
    let cfg = config(spec);
    let url = ws_url(&spec.urls[0], &spec.path.replace("{client}", "silent"))?;
    let mut silent = connect(&url, spec.origin.as_deref(), cfg, None).await.map_err(|r| WsFailure::Connect { client: "silent".into(), url: url.clone(), why: r.to_string() })?;
    let idle_url = ws_url(&spec.urls[0], &spec.path.replace("{client}", "idle"))?;
    let idle = connect(&idle_url, spec.origin.as_deref(), cfg, None).await.map_err(|r| WsFailure::Connect { client: "idle".into(), url: idle_url, why: r.to_string() })?;
    let start = Instant::now();

    // The idle client: reading makes tungstenite answer every ping.
    // (pings seen, when and why it ended)
    type IdleState = (usize, Option<(Duration, String)>);
    let idle_state: Arc<Mutex<IdleState>> = Arc::default();
    let st = idle_state.clone();
    let max_frames = spec.max_frames;
    let idle_task = tokio::spawn(async move {
        let mut idle = idle;
        let mut frames = 0usize;
        while let Some(item) = idle.next().await {
            frames += 1;
            let end = match item {
                Ok(Message::Ping(_)) => {
                    st.lock().unwrap().0 += 1;
                    None
                }
                Ok(Message::Close(_)) => Some("closed by the server".to_string()),
                Ok(_) => None,
                Err(e) => Some(describe_error(&e)),
            };
            if frames > max_frames {
                st.lock().unwrap().1 = Some((start.elapsed(), format!("flooded: more than {max_frames} frames")));
                return;
            }
            if let Some(why) = end {
                st.lock().unwrap().1 = Some((start.elapsed(), why));
                return;
            }
        }
        st.lock().unwrap().1.get_or_insert((start.elapsed(), "the connection ended".into()));
    });

    // The silent client: raw reads from under tungstenite, so nothing is ever answered.
    let tcp = silent.get_mut();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let (mut pings, mut close_frame, mut malformed) = (0usize, false, None::<String>);
    let mut closed: Option<(Duration, String)> = None;
    let mut read_total = 0usize;
    let give_up = start + spec.wait;
    while closed.is_none() {
        let r = match tokio::time::timeout_at(give_up.into(), tcp.read(&mut chunk)).await {
            Err(_) => break,
            Ok(r) => r,
        };
        match r {
            Ok(0) => closed = Some((start.elapsed(), "the server closed the connection".into())),
            Err(e) => closed = Some((start.elapsed(), format!("connection error: {e}"))),
            Ok(n) => {
                read_total += n;
                if read_total > SILENT_READ_CAP {
                    malformed.get_or_insert(format!("flooded: more than {SILENT_READ_CAP} bytes"));
                    break;
                }
                if malformed.is_some() {
                    continue;
                }
                buf.extend_from_slice(&chunk[..n]);
                // Count whole frames by their headers.
                loop {
                    let mut cur = std::io::Cursor::new(&buf[..]);
                    match FrameHeader::parse(&mut cur) {
                        Ok(Some((h, len))) => {
                            let total = cur.position() as usize + len as usize;
                            if len as usize > spec.max_message {
                                malformed = Some(format!("a frame of {len} bytes, over the cap"));
                                break;
                            }
                            if buf.len() < total {
                                break;
                            }
                            match h.opcode {
                                OpCode::Control(Control::Ping) => pings += 1,
                                OpCode::Control(Control::Close) => close_frame = true,
                                _ => {}
                            }
                            buf.drain(..total);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            malformed = Some(format!("a malformed frame ({e})"));
                            break;
                        }
                    }
                }
            }
        }
    }
    // The idle client must outlive the silent one by `settle`.
    let idle_until = match &closed {
        Some((at, _)) => start + *at + spec.settle,
        None => Instant::now(),
    };
    loop {
        if idle_state.lock().unwrap().1.is_some() || Instant::now() >= idle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    idle_task.abort();
    drop(silent);
    let (idle_pings, idle_end) = idle_state.lock().unwrap().clone();
    let ms = |d: Duration| d.as_millis() as u64;
    let value = serde_json::json!({
        "closed": closed.is_some(),
        "closed_after_ms": closed.as_ref().map(|c| ms(c.0)),
        "close_frame": close_frame,
        "pings": pings,
        "malformed": malformed,
        "idle_open": idle_end.is_none(),
        "idle_closed_after_ms": idle_end.as_ref().map(|c| ms(c.0)),
        "idle_pings": idle_pings,
    });
    let mut shown = match &closed {
        Some((at, how)) => format!("the silent client (never reads, never answers a ping) was dropped after {} ms: {how}; it had been sent {pings} ping(s)", ms(*at)),
        None => format!("the silent client (never reads, never answers a ping) was still connected after {} ms; it had been sent {pings} ping(s)", ms(spec.wait)),
    };
    match &idle_end {
        None => shown.push_str(&format!("\nthe idle client (reads and answers pings, sends nothing) stayed connected; it got {idle_pings} ping(s)")),
        Some((at, why)) => shown.push_str(&format!("\nthe idle client (reads and answers pings, sends nothing) was dropped after {} ms: {why}; it got {idle_pings} ping(s)", ms(*at))),
    }
    if let Some(m) = &malformed {
        shown.push_str(&format!("\nthe silent client read {m}"));
    }
    Ok((value, shown))
}

#[cfg(test)]
mod tests;
