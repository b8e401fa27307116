//! Readiness at protocol level: Redis PING, PostgreSQL `SELECT 1`, the AMQP
//! handshake, an HTTP status, or an open TCP port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How to tell that something is ready.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Readiness {
    /// Redis answers PING with PONG.
    Redis,
    /// An AMQP 0-9-1 broker answers the protocol header with Connection.Start.
    Amqp,
    /// The port accepts a TCP connection.
    Tcp,
    /// PostgreSQL runs `SELECT 1` for this user.
    Postgres { user: String, password: String, database: String },
    /// The standard gRPC health service answers SERVING.
    Grpc,
    /// An HTTP GET of `path` answers `status`.
    Http {
        path: String,
        #[serde(default = "ok")]
        status: u16,
    },
}

fn ok() -> u16 {
    200
}

const ATTEMPT: Duration = Duration::from_millis(1000);

/// One attempt; Err says what was seen instead.
pub async fn check_ready(r: &Readiness, addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(ATTEMPT, attempt(r, addr)).await {
        Ok(res) => res,
        Err(_) => Err(format!("no answer from {addr} within {ATTEMPT:?}")),
    }
}

async fn attempt(r: &Readiness, addr: SocketAddr) -> Result<(), String> {
    match r {
        Readiness::Tcp => {
            // A published port accepts even with nothing behind it (Docker's
            // port proxy accepts, then closes when the container does not):
            // a connection closed or reset at once is not a listening server.
            let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
            let mut buf = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(150), s.read(&mut buf)).await {
                Ok(Ok(0)) => Err(format!("{addr} accepted and closed the connection at once (nothing listens behind the published port)")),
                Ok(Err(e)) => Err(format!("{addr}: {e}")),
                _ => Ok(()),
            }
        }
        Readiness::Redis => {
            let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
            s.write_all(b"*1\r\n$4\r\nPING\r\n").await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let got = String::from_utf8_lossy(&buf[..n]);
            if got.starts_with("+PONG") {
                Ok(())
            } else {
                Err(format!("PING answered {:?}", got.trim_end()))
            }
        }
        Readiness::Amqp => {
            let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
            s.write_all(b"AMQP\x00\x00\x09\x01").await.map_err(|e| e.to_string())?;
            let mut head = [0u8; 11];
            s.read_exact(&mut head).await.map_err(|e| format!("no AMQP frame: {e}"))?;
            // Frame type 1 (method), class 10 (connection), method 10 (start).
            if head[0] == 1 && head[7..11] == [0, 10, 0, 10] {
                Ok(())
            } else {
                Err(format!("unexpected AMQP answer {:?}", &head))
            }
        }
        Readiness::Postgres { user, password, database } => {
            let mut cfg = tokio_postgres::Config::new();
            cfg.host(&addr.ip().to_string()).port(addr.port()).user(user).password(password).dbname(database).connect_timeout(ATTEMPT);
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| format!("connect: {e}"))?;
            let task = tokio::spawn(conn);
            let res = client.simple_query("SELECT 1").await.map(|_| ()).map_err(|e| format!("SELECT 1: {e}"));
            drop(client);
            task.abort();
            res
        }
        Readiness::Grpc => crate::probe::grpc::health_check(addr, ATTEMPT).await,
        Readiness::Http { path, status } => {
            let url = format!("http://{addr}{path}");
            let client = reqwest::Client::builder().timeout(ATTEMPT).redirect(reqwest::redirect::Policy::none()).build().map_err(|e| e.to_string())?;
            let resp = client.get(&url).send().await.map_err(|e| format!("GET {url}: {}", crate::probe::http::error_chain(&e)))?;
            if resp.status().as_u16() == *status {
                Ok(())
            } else {
                Err(format!("GET {url} answered {}, expected {status}", resp.status()))
            }
        }
    }
}

/// Poll until ready or until `timeout`; Err carries the last thing seen.
pub async fn wait_ready(r: &Readiness, addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last;
    let mut delay = Duration::from_millis(20);
    loop {
        match check_ready(r, addr).await {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            return Err(last);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn redis_ping_needs_pong() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in [&b"+PONG\r\n"[..], &b"-LOADING\r\n"[..]] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                s.write_all(answer).await.unwrap();
            }
        });
        assert!(check_ready(&Readiness::Redis, addr).await.is_ok());
        let err = check_ready(&Readiness::Redis, addr).await.unwrap_err();
        assert!(err.contains("LOADING"), "{err}");
    }

    #[tokio::test]
    async fn closed_port_is_not_ready_and_wait_gives_up() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let err = wait_ready(&Readiness::Tcp, addr, Duration::from_millis(100)).await.unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }

    #[tokio::test]
    async fn a_port_that_accepts_and_closes_at_once_is_not_ready() {
        // What Docker's port proxy does for a container that exited.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            drop(s);
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(s);
        });
        let err = check_ready(&Readiness::Tcp, addr).await.unwrap_err();
        assert!(err.contains("closed the connection at once"), "{err}");
        assert!(check_ready(&Readiness::Tcp, addr).await.is_ok(), "a server that holds the connection is ready");
    }

    #[test]
    fn readiness_reads_from_yaml() {
        let r: Readiness = serde_yaml::from_str("redis").unwrap();
        assert_eq!(r, Readiness::Redis);
        let r: Readiness = serde_yaml::with::singleton_map::deserialize(serde_yaml::Deserializer::from_str("http: {path: /-/ready}")).unwrap();
        assert_eq!(r, Readiness::Http { path: "/-/ready".into(), status: 200 });
    }
}
