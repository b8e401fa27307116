//! The ws probe against a small well-behaved chat server and against hostile
//! fake servers: every scenario ends within its deadline with an answer or a
//! failure that says what went wrong.

use super::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

fn spec(scenario: Scenario, url: &str) -> WsSpec {
    WsSpec {
        scenario,
        urls: vec![url.to_string()],
        slow_url: None,
        path: "/ws?user={client}".into(),
        message: r#"{"text":"{token}{pad}"}"#.into(),
        origin: None,
        clients: 4,
        senders: 2,
        messages: 5,
        size: 0,
        interval: Duration::ZERO,
        settle: Duration::from_millis(100),
        wait: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        max_message: 64 * 1024,
        max_frames: 1000,
    }
}

#[derive(Clone, Copy)]
struct Behaviour {
    /// Ping every this often and drop a client whose pong is 3 periods late.
    ping: Option<Duration>,
    /// Deliver every message twice.
    twice: bool,
}

/// A chat server: every text message goes to every client; Origin `http://evil.example` is refused.
async fn chat_server(b: Behaviour) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, _) = tokio::sync::broadcast::channel::<String>(10_000);
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    if req.headers().get("origin").is_some_and(|o| o == "http://evil.example") {
                        let mut e = ErrorResponse::new(Some("origin not allowed".into()));
                        *e.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
                        return Err(e);
                    }
                    Ok(resp)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(s, check).await else { return };
                let (mut sink, mut stream) = ws.split();
                let mut rx = tx.subscribe();
                let last_pong = Arc::new(Mutex::new(Instant::now()));
                let lp = last_pong.clone();
                let reader = tokio::spawn(async move {
                    while let Some(Ok(m)) = stream.next().await {
                        match m {
                            Message::Text(t) => {
                                let _ = tx.send(t.as_str().to_string());
                            }
                            Message::Pong(_) => *lp.lock().unwrap() = Instant::now(),
                            _ => {}
                        }
                    }
                });
                let mut tick = tokio::time::interval(b.ping.unwrap_or(Duration::from_secs(3600)));
                loop {
                    tokio::select! {
                        m = rx.recv() => {
                            let Ok(m) = m else { break };
                            for _ in 0..if b.twice { 2 } else { 1 } {
                                if sink.send(Message::text(m.clone())).await.is_err() { return; }
                            }
                        }
                        _ = tick.tick(), if b.ping.is_some() => {
                            if last_pong.lock().unwrap().elapsed() > b.ping.unwrap() * 3 {
                                reader.abort();
                                return;
                            }
                            if sink.send(Message::Ping(Default::default())).await.is_err() { return; }
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

const GOOD: Behaviour = Behaviour { ping: None, twice: false };

#[derive(Clone, Copy)]
enum Hostile {
    /// Accepts TCP, never answers the handshake.
    Hang,
    /// Handshake, then text frames without end.
    Flood,
    /// Handshake, then a frame with a reserved opcode.
    Malformed,
    /// Handshake, then a frame header announcing 1 GiB.
    Huge,
    /// Handshake, then nothing, and never reads.
    Deaf,
}

async fn hostile(kind: Hostile) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                if matches!(kind, Hostile::Hang) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = s.read(&mut b).await else { return };
                    if n == 0 || req.len() > 16384 {
                        return;
                    }
                    req.extend_from_slice(&b[..n]);
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let key = text.lines().find_map(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:").then(|| l[18..].trim().to_string())).unwrap_or_default();
                let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                match kind {
                    Hostile::Flood => {
                        let frame = [0x81u8, 5, b'h', b'e', b'l', b'l', b'o'].repeat(1000);
                        while s.write_all(&frame).await.is_ok() {}
                    }
                    Hostile::Malformed => {
                        let _ = s.write_all(&[0x83, 0x00]).await;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Hostile::Huge => {
                        let mut f = vec![0x81u8, 127];
                        f.extend_from_slice(&(1u64 << 30).to_be_bytes());
                        let _ = s.write_all(&f).await;
                        while s.write_all(&[b'x'; 8192]).await.is_ok() {}
                    }
                    Hostile::Deaf => tokio::time::sleep(Duration::from_secs(3600)).await,
                    Hostile::Hang => unreachable!(),
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn fanout_against_a_good_server_misses_nothing() {
    let url = chat_server(GOOD).await;
    let a = run(&spec(Scenario::Fanout, &url)).await.unwrap();
    assert_eq!(a.value["expected"], 40, "{}", a.shown);
    assert_eq!(a.value["delivered"], 40, "{}", a.shown);
    assert_eq!(a.value["missing"], 0);
    assert_eq!(a.value["duplicates"], 0);
    assert_eq!(a.value["out_of_order"], 0);
}

#[tokio::test]
async fn duplicates_and_missing_nodes_are_counted() {
    let url = chat_server(Behaviour { ping: None, twice: true }).await;
    let a = run(&spec(Scenario::Fanout, &url)).await.unwrap();
    assert_eq!(a.value["duplicates"], 40, "{}", a.shown);
    assert!(a.shown.contains("twice"), "{}", a.shown);
    // Two separate servers stand for two nodes that do not share messages.
    let other = chat_server(GOOD).await;
    let mut s = spec(Scenario::Fanout, &url);
    s.urls = vec![other.clone(), chat_server(GOOD).await];
    s.wait = Duration::from_millis(500);
    let a = run(&s).await.unwrap();
    // c1 (node 1) and c2 (node 2) send; c1, c3 on node 1, c2, c4 on node 2: half of it never crosses.
    assert_eq!(a.value["missing"], 20, "{}", a.shown);
    assert_eq!(a.value["missing_cross_node"], 20, "{}", a.shown);
    assert!(a.shown.contains("got none of the 5 messages of c2 (node 2)"), "{}", a.shown);
}

#[tokio::test]
async fn origin_refusal_is_an_answer() {
    let url = chat_server(GOOD).await;
    let mut s = spec(Scenario::Origin, &url);
    s.origin = Some("http://evil.example".into());
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["accepted"], false);
    assert_eq!(a.value["status"], 403);
    s.origin = Some("http://good.example".into());
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["accepted"], true, "{}", a.shown);
}

#[tokio::test]
async fn a_server_that_pings_drops_the_silent_client_only() {
    let url = chat_server(Behaviour { ping: Some(Duration::from_millis(150)), twice: false }).await;
    let mut s = spec(Scenario::SilentClient, &url);
    s.settle = Duration::from_millis(500);
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["closed"], true, "{}", a.shown);
    assert!(a.value["pings"].as_u64().unwrap() >= 1, "{}", a.shown);
    assert_eq!(a.value["idle_open"], true, "{}", a.shown);
    // Without pings nobody is dropped, within the wait.
    let url = chat_server(GOOD).await;
    let mut s = spec(Scenario::SilentClient, &url);
    s.wait = Duration::from_millis(700);
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["closed"], false, "{}", a.shown);
    assert!(a.shown.contains("still connected"), "{}", a.shown);
}

#[tokio::test]
async fn slow_client_against_a_good_server() {
    let url = chat_server(GOOD).await;
    let mut s = spec(Scenario::SlowClient, &url);
    s.size = 1000;
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["missing"], 0, "{}", a.shown);
    assert_eq!(a.value["slow_client"], true);
}

#[tokio::test]
async fn the_slow_client_falls_back_to_the_first_url_when_the_direct_one_is_unreachable() {
    let url = chat_server(GOOD).await;
    let mut s = spec(Scenario::SlowClient, &url);
    // Nothing listens on port 1.
    s.slow_url = Some("http://127.0.0.1:1".into());
    let a = run(&s).await.unwrap();
    assert_eq!(a.value["missing"], 0, "{}", a.shown);
    assert_eq!(a.value["slow_client"], true);
}

#[tokio::test]
async fn a_hanging_server_fails_the_connect_in_time() {
    let url = hostile(Hostile::Hang).await;
    let t = Instant::now();
    let e = run(&spec(Scenario::Fanout, &url)).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("the service hung"), "{e}");
}

#[tokio::test]
async fn a_flooding_server_is_cut_off() {
    let url = hostile(Hostile::Flood).await;
    let t = Instant::now();
    let a = run(&spec(Scenario::Fanout, &url)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(6));
    assert_eq!(a.value["missing"], 40);
    assert!(a.shown.contains("flooded"), "{}", a.shown);
    // The silent client stops counting at its cap.
    let a = run(&spec(Scenario::SilentClient, &url)).await.unwrap();
    assert_eq!(a.value["idle_open"], false, "{}", a.shown);
    assert!(a.shown.contains("flooded"), "{}", a.shown);
}

#[tokio::test]
async fn malformed_and_huge_frames_fail_the_client() {
    let url = hostile(Hostile::Malformed).await;
    let a = run(&spec(Scenario::Fanout, &url)).await.unwrap();
    assert!(a.shown.contains("malformed frame"), "{}", a.shown);
    let url = hostile(Hostile::Huge).await;
    let a = run(&spec(Scenario::Fanout, &url)).await.unwrap();
    assert!(a.shown.contains("over the size cap"), "{}", a.shown);
    // The silent client reads raw bytes: it stops at the frame's announced size or at its byte cap.
    let a = run(&spec(Scenario::SilentClient, &url)).await.unwrap();
    assert!(a.shown.contains("over the cap") || a.shown.contains("flooded"), "{}", a.shown);
}

#[tokio::test]
async fn a_server_that_stops_reading_cannot_block_senders() {
    let url = hostile(Hostile::Deaf).await;
    let mut s = spec(Scenario::Fanout, &url);
    s.size = 60_000;
    s.messages = 200;
    s.wait = Duration::from_millis(300);
    let t = Instant::now();
    let a = run(&s).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(a.value["send_errors"].as_u64().unwrap() >= 1, "{}", a.shown);
    assert!(a.shown.contains("the server stopped reading"), "{}", a.shown);
}

#[tokio::test]
async fn the_whole_scenario_has_a_deadline() {
    let url = hostile(Hostile::Deaf).await;
    let mut s = spec(Scenario::SilentClient, &url);
    s.wait = Duration::from_secs(30);
    s.timeout = Duration::from_millis(500);
    let e = run(&s).await.unwrap_err();
    assert!(matches!(e, WsFailure::Timeout(_)), "{e}");
}

#[test]
fn urls_become_websocket_urls() {
    assert_eq!(ws_url("http://127.0.0.1:8080/", "/ws?x=1").unwrap(), "ws://127.0.0.1:8080/ws?x=1");
    assert_eq!(ws_url("ws://h:1", "ws").unwrap(), "ws://h:1/ws");
    assert!(ws_url("ftp://h", "/").is_err());
}

#[test]
fn order_is_judged_on_first_arrivals() {
    let t = Instant::now();
    let mk = |name: &str, node: usize, seqs: &[usize]| Client {
        name: name.into(),
        node,
        log: Arc::new(Mutex::new(Log { got: seqs.iter().map(|&seq| Got { sender: 1, seq, at: t }).collect(), frames: seqs.len(), ended: None })),
    };
    let s = WsSpec { messages: 3, ..spec(Scenario::Fanout, "http://x") };
    let sent: BTreeMap<(usize, usize), Instant> = (1..=3).map(|q| ((1, q), t)).collect();
    // c1: in order with late duplicates; c2: 3 before 2; c3: lost message 3.
    let list = vec![mk("c1", 0, &[1, 2, 1, 3, 2]), mk("c2", 0, &[1, 3, 2]), mk("c3", 0, &[1, 2])];
    let (v, shown) = summarize(&s, &list, 1, &sent, &[], false, None);
    assert_eq!(v["duplicates"], 2, "{shown}");
    assert_eq!(v["out_of_order"], 1, "{shown}");
    assert_eq!(v["missing"], 1, "{shown}");
    assert!(shown.contains("c2 (node 1) got message 2 of c1 after message 3"), "{shown}");
}

#[test]
fn a_redis_url_names_the_broker_not_a_node() {
    let urls = vec!["http://a:1".to_string(), "redis://127.0.0.1:6380/chat:room-1".to_string(), "http://b:2".to_string()];
    let (nodes, broker) = split_urls(&urls).unwrap();
    assert_eq!(nodes, vec!["http://a:1", "http://b:2"]);
    assert_eq!(broker, Some(Broker { addr: "127.0.0.1:6380".into(), channel: "chat:room-1".into() }));
    assert!(split_urls(&["redis://h:1".to_string()]).is_err());
    assert!(split_urls(&["redis://:pw@h:1/c".to_string()]).is_err());
}

/// Two senders (c1 on node 1, c2 on node 2) and a third client on node 3, 2 messages each.
fn three_nodes(got: &[(&str, usize, &[(usize, usize)])]) -> Vec<Client> {
    let t = Instant::now();
    got.iter()
        .map(|(name, node, g)| Client {
            name: name.to_string(),
            node: *node,
            log: Arc::new(Mutex::new(Log { got: g.iter().map(|&(sender, seq)| Got { sender, seq, at: t }).collect(), frames: g.len(), ended: None })),
        })
        .collect()
}

#[test]
fn the_broker_tells_a_node_that_does_not_publish_from_one_that_does_not_subscribe() {
    let s = WsSpec { messages: 2, ..spec(Scenario::Fanout, "http://x") };
    let sent = BTreeMap::new();
    let all = [(2, 1), (2, 2)];
    // Node 1 does not publish (c1's messages never reach Redis); node 3 does not hear anything.
    let list = three_nodes(&[("c1", 0, &all), ("c2", 1, &all), ("c3", 2, &[])]);
    let seen = BrokerSeen { channel: "chat:r".into(), seen: Ok([(2, 1), (2, 2)].into_iter().collect()), ended: None };
    let (v, shown) = summarize(&s, &list, 2, &sent, &[], false, Some(&seen));
    assert_eq!(v["published"], 2, "{shown}");
    assert!(shown.contains("2 of the 2 messages c1 sent to node 1 never reached Redis (lab's own SUBSCRIBE to chat:r saw 0): node 1 did not PUBLISH them"), "{shown}");
    assert!(shown.contains("node 3's clients got none of the 2 messages that reached Redis: node 3's subscription does not work"), "{shown}");
    assert!(!shown.contains("node 2's"), "{shown}");
    // Nothing reached anyone: the broker says which side.
    let list = three_nodes(&[("c1", 0, &[]), ("c2", 1, &[]), ("c3", 2, &[])]);
    let (_, shown) = summarize(&s, &list, 2, &sent, &[], false, Some(&BrokerSeen { channel: "chat:r".into(), seen: Ok(BTreeSet::new()), ended: None }));
    assert!(shown.contains("c1 sent to node 1 never reached Redis") && shown.contains("c2 sent to node 2 never reached Redis"), "{shown}");
    assert!(!shown.contains("subscription"), "{shown}");
    let everything = [(1, 1), (1, 2), (2, 1), (2, 2)].into_iter().collect();
    let (_, shown) = summarize(&s, &list, 2, &sent, &[], false, Some(&BrokerSeen { channel: "chat:r".into(), seen: Ok(everything), ended: None }));
    assert!(shown.contains("node 1's clients got none of the 4 messages that reached Redis") && shown.contains("node 3's clients got none"), "{shown}");
    assert!(!shown.contains("PUBLISH"), "{shown}");
}

#[test]
fn without_a_broker_the_deliveries_tell_what_they_can() {
    let s = WsSpec { messages: 2, ..spec(Scenario::Fanout, "http://x") };
    let sent = BTreeMap::new();
    let all = [(2, 1), (2, 2)];
    let list = three_nodes(&[("c1", 0, &all), ("c2", 1, &all), ("c3", 2, &all)]);
    let (_, shown) = summarize(&s, &list, 2, &sent, &[], false, None);
    assert!(shown.contains("none of the messages c1 sent to node 1 reached any client, not even on node 1, whose subscription works"), "{shown}");
    let list = three_nodes(&[("c1", 0, &[]), ("c2", 1, &[]), ("c3", 2, &[])]);
    let (_, shown) = summarize(&s, &list, 2, &sent, &[], false, None);
    assert!(shown.contains("either the nodes do not publish, or no node's subscription works"), "{shown}");
    let both = [(1, 1), (1, 2), (2, 1), (2, 2)];
    let list = three_nodes(&[("c1", 0, &both), ("c2", 1, &both), ("c3", 2, &[])]);
    let (_, shown) = summarize(&s, &list, 2, &sent, &[], false, None);
    assert!(shown.contains("node 3's clients got no message at all while other nodes' clients did"), "{shown}");
}

/// A Redis stand-in: confirms SUBSCRIBE, then sends one message whose token is cut across two writes.
#[tokio::test]
async fn the_probe_subscribes_to_the_broker_itself() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("SUBSCRIBE\r\n$6\r\nchat:r"));
        s.write_all(b"*3\r\n$9\r\nsubscribe\r\n$6\r\nchat:r\r\n:1\r\n").await.unwrap();
        let payload = r#"{"text":"m~abc~2~7~"}"#;
        let msg = format!("*3\r\n$7\r\nmessage\r\n$6\r\nchat:r\r\n${}\r\n{payload}\r\n", payload.len());
        let (a, b) = msg.split_at(msg.len() - 12);
        s.write_all(a.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let re = Arc::new(regex::Regex::new("m~abc~([0-9]+)~([0-9]+)~").unwrap());
    let w = watch_broker(&Broker { addr, channel: "chat:r".into() }, re).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.seen.lock().unwrap().contains(&(2, 7)));
    w.task.abort();
    // Nobody listening: an error, not a hang.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let re = Arc::new(regex::Regex::new("x").unwrap());
    let e = watch_broker(&Broker { addr: free, channel: "c".into() }, re).await.err();
    assert!(e.as_deref().is_some_and(|e| e.starts_with("connecting")), "{e:?}");
}
