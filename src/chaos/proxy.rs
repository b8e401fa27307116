//! lab's userspace fault proxy: a TCP proxy with toxics per link and per
//! direction (latency, jitter, loss, bandwidth, reset, blackhole), changed at
//! run time through a line-based JSON control port. It needs no privileges and
//! no kernel module, so it works where netem does not (this kernel, Docker
//! Desktop, WSL2, rootless engines, unprivileged Kubernetes namespaces). It runs
//! as a container of lab's own binary (`lab proxy serve`), so it keeps running
//! between lab invocations; a lab routes a dependency through it with
//! `proxy: true`.
//!
//! Loss on a TCP stream cannot drop bytes; a "lost" chunk is delayed by a
//! retransmission timeout (200 ms, doubling on repeated loss), which is what
//! TCP makes of packet loss.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The port the proxy's control API listens on inside its container.
pub const CONTROL_PORT: u16 = 8474;

/// The environment variable that gives the proxy its control token.
pub const TOKEN_ENV: &str = "LAB_PROXY_TOKEN";

/// The control token of an instance's proxy, derived from the instance's
/// secret (which lab keeps on the instance's labels); empty without a secret.
pub fn token_for(secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    crate::plan::derive_token("lab fault proxy control", secret)
}

/// Who may use the control port: lab on the host, which reaches the proxy
/// from loopback (a port-forward on a cluster) or from its network's gateway
/// (a published port on Docker), and only with the instance's token. The
/// learner's service, on the same network, is neither.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub token: Option<String>,
    pub gateways: Vec<IpAddr>,
}

impl Guard {
    /// The token (none when empty) and the default gateways of this network namespace.
    pub fn new(token: Option<String>) -> Guard {
        let gateways = std::fs::read_to_string("/proc/net/route").map(|t| default_gateways(&t)).unwrap_or_default();
        Guard { token: token.filter(|t| !t.is_empty()), gateways }
    }

    fn admits(&self, peer: IpAddr) -> bool {
        peer.is_loopback() || self.gateways.contains(&peer)
    }
}

/// The gateways of the default routes in a `/proc/net/route` table.
fn default_gateways(table: &str) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 || f[1] != "00000000" {
                return None;
            }
            let g = u32::from_str_radix(f[2], 16).ok()?;
            (g != 0).then(|| IpAddr::from(g.to_le_bytes()))
        })
        .collect()
}

/// Faults on one direction of one link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Toxics {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Share of chunks "lost" (0.0 to 1.0).
    pub loss: f64,
    /// Bytes per second; 0 is unlimited.
    pub bandwidth: u64,
    /// Swallow everything: nothing arrives, nothing fails.
    pub blackhole: bool,
    /// Reset connections (new ones at once, open ones at their next chunk).
    pub reset: bool,
}

/// `up`: client to upstream; `down`: upstream to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// A link: listen here, forward there.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub name: String,
    pub listen: SocketAddr,
    pub upstream: String,
}

impl std::str::FromStr for Link {
    type Err = String;
    /// `NAME=LISTEN=UPSTREAM`, e.g. `redis=0.0.0.0:6379=redis:6379`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.splitn(3, '=').collect();
        let [name, listen, upstream] = parts[..] else {
            return Err(format!("{s}: expected NAME=LISTEN=UPSTREAM"));
        };
        Ok(Link { name: name.into(), listen: listen.parse().map_err(|e| format!("{listen}: {e}"))?, upstream: upstream.into() })
    }
}

/// Toxics by (link, direction, source host): a source names the client whose
/// connections they apply to (a peer node, e.g. `app-1`); none, every client.
/// Each source's addresses are resolved when its toxics are set.
#[derive(Default)]
struct Toxicity {
    toxics: HashMap<(String, Direction, Option<String>), Toxics>,
    addrs: HashMap<String, Vec<IpAddr>>,
    /// Sources lab gave no address for (a stopped node has none): resolved
    /// by name when a connection comes from an address no source has, so
    /// that a node started again is cut from its first connection, not only
    /// once lab has told the proxy its new address.
    pending: std::collections::HashSet<String>,
}

type State = Arc<RwLock<Toxicity>>;

/// A control command, one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Command {
    /// Set the toxics of a link (`direction` None: both), for the connections
    /// of one client host (`from`) or of all.
    Set {
        link: String,
        direction: Option<Direction>,
        toxics: Toxics,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The addresses `from` connects from, when lab knows them better than
        /// the proxy's resolver (on Kubernetes a node's name resolves to its
        /// Service's ClusterIP, while its connections come from the pod's IP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addrs: Option<Vec<IpAddr>>,
    },
    /// Clear a link's toxics for `from` (or those for all clients); link `*` clears everything.
    Clear {
        link: String,
        direction: Option<Direction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// The toxics in force.
    List,
    /// The instance's token: the first command of every control session.
    Auth { token: String },
}

/// Serve the links and the control port until the process ends.
pub async fn serve(control: SocketAddr, links: Vec<Link>, guard: Guard) -> std::io::Result<()> {
    let guard = Arc::new(guard);
    let state: State = Arc::new(RwLock::new(Toxicity::default()));
    for l in &links {
        let listener = TcpListener::bind(l.listen).await?;
        let (state, link) = (state.clone(), l.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, peer)) = listener.accept().await else {
                    continue;
                };
                let (state, link) = (state.clone(), link.clone());
                tokio::spawn(async move {
                    let _ = connection(client, peer.ip(), &link, state).await;
                });
            }
        });
    }
    let ctl = TcpListener::bind(control).await?;
    let names: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
    loop {
        let (sock, peer) = ctl.accept().await?;
        let (state, names, guard) = (state.clone(), names.clone(), guard.clone());
        tokio::spawn(async move {
            let _ = control_session(sock, peer.ip(), &guard, state, names).await;
        });
    }
}

/// The toxics for a chunk on `link` in direction `d` of a connection from `client`.
fn toxics(state: &State, link: &str, d: Direction, client: IpAddr) -> Toxics {
    let st = state.read().unwrap();
    for ((l, dir, from), t) in &st.toxics {
        if l == link && *dir == d {
            if let Some(f) = from {
                if st.addrs.get(f).is_some_and(|a| a.contains(&client)) {
                    return t.clone();
                }
            }
        }
    }
    st.toxics.get(&(link.to_string(), d, None)).cloned().unwrap_or_default()
}

async fn control_session(sock: TcpStream, peer: IpAddr, guard: &Guard, state: State, names: Vec<String>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    if !guard.admits(peer) {
        let e = format!("the control port takes only lab on the host (loopback or the network's gateway), not {peer}");
        w.write_all(format!("{}\n", serde_json::json!({"ok": false, "error": e})).as_bytes()).await?;
        return Ok(());
    }
    let mut authed = guard.token.is_none();
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        let cmd = serde_json::from_str::<Command>(&line);
        if !authed {
            let ok = matches!(&cmd, Ok(Command::Auth { token }) if Some(token) == guard.token.as_ref());
            if !ok {
                w.write_all(b"{\"ok\":false,\"error\":\"this proxy takes commands only after the instance's token\"}\n").await?;
                return Ok(());
            }
            authed = true;
            w.write_all(b"{\"ok\":true}\n").await?;
            continue;
        }
        let reply = match cmd {
            Err(e) => serde_json::json!({"ok": false, "error": format!("bad command: {e}")}),
            Ok(Command::Auth { .. }) => serde_json::json!({"ok": true}),
            Ok(Command::List) => {
                let st = state.read().unwrap();
                let all: Vec<_> = st.toxics.iter().map(|((l, d, f), t)| serde_json::json!({"link": l, "direction": d, "from": f, "toxics": t})).collect();
                serde_json::json!({"ok": true, "links": names, "toxics": all})
            }
            Ok(Command::Set { link, .. }) | Ok(Command::Clear { link, .. }) if link != "*" && !names.contains(&link) => {
                serde_json::json!({"ok": false, "error": format!("no link `{link}`; links: {}", names.join(", "))})
            }
            Ok(Command::Set { link, direction, toxics, from, addrs }) => {
                let unknown = addrs.as_ref().is_some_and(|a| a.is_empty());
                let addrs = match (&from, addrs) {
                    (None, _) => Ok(vec![]),
                    (Some(_), Some(known)) => Ok(known),
                    (Some(f), None) => tokio::net::lookup_host(format!("{f}:0")).await.map(|a| a.map(|x| x.ip()).collect::<Vec<_>>()).map_err(|e| format!("cannot resolve `{f}`: {e}")),
                };
                match addrs {
                    Err(e) => serde_json::json!({"ok": false, "error": e}),
                    Ok(addrs) => {
                        let mut st = state.write().unwrap();
                        if let Some(f) = &from {
                            st.addrs.insert(f.clone(), addrs);
                            if unknown {
                                st.pending.insert(f.clone());
                            } else {
                                st.pending.remove(f);
                            }
                        }
                        for d in dirs(direction) {
                            st.toxics.insert((link.clone(), d, from.clone()), toxics.clone());
                        }
                        serde_json::json!({"ok": true})
                    }
                }
            }
            Ok(Command::Clear { link, direction, from }) => {
                let mut st = state.write().unwrap();
                st.toxics.retain(|(l, d, f), _| !(link == "*" || (*l == link && *f == from)) || !dirs(direction).contains(d));
                let Toxicity { toxics, pending, .. } = &mut *st;
                pending.retain(|p| toxics.keys().any(|(_, _, f)| f.as_deref() == Some(p.as_str())));
                serde_json::json!({"ok": true})
            }
        };
        w.write_all(format!("{reply}\n").as_bytes()).await?;
    }
    Ok(())
}

fn dirs(d: Option<Direction>) -> Vec<Direction> {
    match d {
        Some(d) => vec![d],
        None => vec![Direction::Up, Direction::Down],
    }
}

/// Resolve the pending sources (see `Toxicity::pending`) when `client` is none of the known ones.
async fn resolve_pending(state: &State, client: IpAddr) {
    let names: Vec<String> = {
        let st = state.read().unwrap();
        if st.pending.is_empty() || st.addrs.values().any(|a| a.contains(&client)) {
            return;
        }
        st.pending.iter().cloned().collect()
    };
    for name in names {
        let Ok(found) = tokio::net::lookup_host(format!("{name}:0")).await else {
            continue;
        };
        let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
        if !ips.is_empty() {
            let mut st = state.write().unwrap();
            // Unless lab set it meanwhile.
            if st.pending.remove(&name) {
                st.addrs.insert(name, ips);
            }
        }
    }
}

async fn connection(client: TcpStream, from: IpAddr, link: &Link, state: State) -> std::io::Result<()> {
    resolve_pending(&state, from).await;
    if toxics(&state, &link.name, Direction::Up, from).reset {
        // A zero linger makes the close a reset (and so never blocks).
        #[allow(deprecated)]
        client.set_linger(Some(Duration::ZERO))?;
        return Ok(());
    }
    let upstream = TcpStream::connect(&link.upstream).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = pump(cr, uw, link.name.clone(), Direction::Up, from, state.clone());
    let down = pump(ur, cw, link.name.clone(), Direction::Down, from, state);
    // When either side ends, the whole connection ends.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    Ok(())
}

/// Copy one direction, applying its toxics chunk by chunk. Delays do not add
/// up: each chunk is due at its arrival time plus its delay, in order.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, link: String, d: Direction, client: IpAddr, state: State) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>, u64)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut last_due = Instant::now();
        let mut losses = 0u32;
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let t = toxics(&state, &link, d, client);
            if t.reset {
                break;
            }
            if t.blackhole {
                continue;
            }
            let delay = {
                let mut rng = rand::thread_rng();
                let mut delay = Duration::from_millis(t.latency_ms);
                if t.jitter_ms > 0 {
                    let j = rng.gen_range(0..=2 * t.jitter_ms) as i64 - t.jitter_ms as i64;
                    delay = Duration::from_millis((t.latency_ms as i64 + j).max(0) as u64);
                }
                if t.loss > 0.0 && rng.gen_bool(t.loss.clamp(0.0, 1.0)) {
                    losses = (losses + 1).min(4);
                    delay += Duration::from_millis(200 << (losses - 1));
                } else {
                    losses = 0;
                }
                delay
            };
            // Keep order: never due before the previous chunk.
            let due = (Instant::now() + delay).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec(), t.bandwidth)).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, data, bandwidth)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
            if bandwidth > 0 {
                tokio::time::sleep(Duration::from_secs_f64(data.len() as f64 / bandwidth as f64)).await;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Send one command to a proxy's control port and read its answer.
pub async fn control(addr: SocketAddr, token: &str, cmd: &Command) -> Result<serde_json::Value, String> {
    let (mut done, err) = control_all(addr, token, std::slice::from_ref(cmd)).await;
    match err {
        Some(e) => Err(e),
        None => Ok(done.pop().unwrap_or_default()),
    }
}

/// Send commands in order over one connection (one port-forward on a
/// cluster, so that the rules of one fault take effect together): the
/// answers of those that succeeded, and the error that stopped the rest.
pub async fn control_all(addr: SocketAddr, token: &str, cmds: &[Command]) -> (Vec<serde_json::Value>, Option<String>) {
    let mut done = Vec::new();
    let fut = async {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        let auth = Command::Auth { token: token.to_string() };
        for (i, cmd) in std::iter::once(&auth).chain(cmds).enumerate() {
            let is_auth = i == 0;
            w.write_all(format!("{}\n", serde_json::to_string(cmd).expect("command serializes")).as_bytes()).await.map_err(|e| e.to_string())?;
            let line = lines.next_line().await.map_err(|e| e.to_string())?.ok_or("the proxy closed the connection")?;
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("bad answer {line:?}: {e}"))?;
            if v["ok"] != true {
                return Err(v["error"].as_str().unwrap_or("the proxy refused").to_string());
            }
            if !is_auth {
                done.push(v);
            }
        }
        Ok::<(), String>(())
    };
    let err = match tokio::time::timeout(Duration::from_secs(5), fut).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("no answer from the proxy at {addr}")),
    };
    (done, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        a
    }

    const TOKEN: &str = "t0k3n";

    fn free() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    async fn start() -> (SocketAddr, SocketAddr) {
        let up = echo().await;
        let (ctl, listen) = (free(), free());
        tokio::spawn(serve(ctl, vec![Link { name: "db".into(), listen, upstream: up.to_string() }], Guard::new(Some(TOKEN.into()))));
        for _ in 0..50 {
            if TcpStream::connect(ctl).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (ctl, listen)
    }

    async fn round_trip(listen: SocketAddr, wait: Duration) -> Option<Duration> {
        let t = std::time::Instant::now();
        let mut s = TcpStream::connect(listen).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(wait, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == b"ping" => Some(t.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn latency_applies_per_direction_and_clears() {
        let (ctl, listen) = start().await;
        assert!(round_trip(listen, Duration::from_secs(1)).await.unwrap() < Duration::from_millis(100));
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: Some(Direction::Down), toxics: Toxics { latency_ms: 300, ..Default::default() }, from: None, addrs: None }).await.unwrap();
        let rtt = round_trip(listen, Duration::from_secs(2)).await.unwrap();
        assert!(rtt >= Duration::from_millis(300) && rtt < Duration::from_millis(600), "{rtt:?}");
        control(ctl, TOKEN, &Command::Clear { link: "*".into(), direction: None, from: None }).await.unwrap();
        assert!(round_trip(listen, Duration::from_secs(1)).await.unwrap() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn blackhole_swallows_and_reset_refuses() {
        let (ctl, listen) = start().await;
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: Some(Direction::Up), toxics: Toxics { blackhole: true, ..Default::default() }, from: None, addrs: None }).await.unwrap();
        assert!(round_trip(listen, Duration::from_millis(400)).await.is_none(), "nothing comes back through a black hole");
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: None, toxics: Toxics { reset: true, ..Default::default() }, from: None, addrs: None }).await.unwrap();
        let mut s = TcpStream::connect(listen).await.unwrap();
        let _ = s.write_all(b"ping").await;
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "the connection is reset or closed: {r:?}");
    }

    #[tokio::test]
    async fn a_source_given_without_address_is_resolved_when_an_unknown_client_connects() {
        // A node that was stopped when the fault was set has no address; it starts again (here: localhost connects).
        let (ctl, listen) = start().await;
        let cut = Toxics { blackhole: true, ..Default::default() };
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: None, toxics: cut, from: Some("localhost".into()), addrs: Some(vec![]) }).await.unwrap();
        assert!(round_trip(listen, Duration::from_millis(400)).await.is_none(), "cut from its first connection");
        control(ctl, TOKEN, &Command::Clear { link: "db".into(), direction: None, from: Some("localhost".into()) }).await.unwrap();
        assert!(round_trip(listen, Duration::from_secs(1)).await.is_some());
    }

    #[tokio::test]
    async fn toxics_can_apply_to_one_client_host_only() {
        let (ctl, listen) = start().await;
        let slow = Toxics { latency_ms: 300, ..Default::default() };
        // The clients here come from 127.0.0.1: toxics for another host leave them alone.
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: Some(Direction::Down), toxics: slow.clone(), from: Some("127.0.0.2".into()), addrs: None }).await.unwrap();
        assert!(round_trip(listen, Duration::from_secs(1)).await.unwrap() < Duration::from_millis(100));
        control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: Some(Direction::Down), toxics: slow, from: Some("127.0.0.1".into()), addrs: None }).await.unwrap();
        assert!(round_trip(listen, Duration::from_secs(2)).await.unwrap() >= Duration::from_millis(300));
        // Clearing one client's toxics leaves the other's.
        control(ctl, TOKEN, &Command::Clear { link: "db".into(), direction: None, from: Some("127.0.0.1".into()) }).await.unwrap();
        assert!(round_trip(listen, Duration::from_secs(1)).await.unwrap() < Duration::from_millis(100));
        let list = control(ctl, TOKEN, &Command::List).await.unwrap();
        assert_eq!(list["toxics"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["toxics"][0]["from"], "127.0.0.2");
        let err = control(ctl, TOKEN, &Command::Set { link: "db".into(), direction: None, toxics: Toxics::default(), from: Some("no-such-host.invalid".into()), addrs: None }).await.unwrap_err();
        assert!(err.contains("cannot resolve `no-such-host.invalid`"), "{err}");
        // A name lab gives the addresses of is not resolved (a pod's name resolves
        // to its Service's address, its connections come from the pod's).
        control(
            ctl,
            TOKEN,
            &Command::Set {
                link: "db".into(),
                direction: Some(Direction::Down),
                toxics: Toxics { latency_ms: 300, ..Default::default() },
                from: Some("app-1".into()),
                addrs: Some(vec![[127, 0, 0, 1].into()]),
            },
        )
        .await
        .unwrap();
        assert!(round_trip(listen, Duration::from_secs(2)).await.unwrap() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn the_control_port_takes_commands_only_with_the_token_and_from_the_host() {
        let (ctl, _) = start().await;
        let err = control(ctl, "wrong", &Command::List).await.unwrap_err();
        assert!(err.contains("only after the instance's token"), "{err}");
        // A session that skips the token is closed at its first command.
        let s = TcpStream::connect(ctl).await.unwrap();
        let (r, mut w) = s.into_split();
        w.write_all(b"{\"cmd\":\"clear\",\"link\":\"*\",\"direction\":null}\n").await.unwrap();
        let mut lines = BufReader::new(r).lines();
        assert!(lines.next_line().await.unwrap().unwrap().contains("\"ok\":false"));
        assert!(lines.next_line().await.unwrap().is_none(), "and closed");
        assert!(control(ctl, TOKEN, &Command::List).await.is_ok());
        // Only loopback and the gateway: a neighbour on the instance network is refused.
        let table = "Iface\tDestination\tGateway \tFlags\nvirbr0\t0000FEA9\t00000000\t0001\neth0\t00000000\t010011AC\t0003\n";
        let g = Guard { token: None, gateways: default_gateways(table) };
        assert_eq!(g.gateways, vec![IpAddr::from([172, 17, 0, 1])]);
        assert!(g.admits([127, 0, 0, 1].into()) && g.admits([172, 17, 0, 1].into()));
        assert!(!g.admits([172, 17, 0, 3].into()), "the learner's container is not the host");
        assert_eq!(token_for(""), "");
        assert_ne!(token_for("a"), token_for("b"));
    }

    #[tokio::test]
    async fn unknown_links_and_bad_commands_are_refused() {
        let (ctl, _) = start().await;
        let err = control(ctl, TOKEN, &Command::Set { link: "nope".into(), direction: None, toxics: Toxics::default(), from: None, addrs: None }).await.unwrap_err();
        assert!(err.contains("no link `nope`; links: db"), "{err}");
        let list = control(ctl, TOKEN, &Command::List).await.unwrap();
        assert_eq!(list["links"][0], "db");
        assert!("x=1.2.3.4:5".parse::<Link>().is_err());
        assert_eq!("r=0.0.0.0:6379=redis:6379".parse::<Link>().unwrap().upstream, "redis:6379");
    }
}
