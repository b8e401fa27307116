//! The AMQP probe: one session with a broker (RabbitMQ) that purges queues,
//! publishes messages, peeks at or takes messages, reads queue counts, and
//! measures how fast the learner's service drains what was published (by
//! polling one of its HTTP JSON endpoints).
//!
//! Everything runs under a timeout; message bodies and header values kept in
//! the answer are capped; at most [`MAX_GET`] messages are fetched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use amqprs::channel::{BasicAckArguments, BasicGetArguments, BasicNackArguments, BasicPublishArguments, Channel, QueueDeclareArguments, QueuePurgeArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use serde_json::{json, Value};

use super::http::{self, HttpRequest};
use super::Answer;

/// The most bytes of a message body kept in the answer.
pub const BODY_CAP: usize = 64 * 1024;
/// The most messages one `get` fetches.
pub const MAX_GET: u32 = 100;
/// The most messages one `publish` sends.
pub const MAX_PUBLISH: u32 = 100_000;

/// A rendered AMQP probe.
#[derive(Debug, Clone)]
pub struct AmqpSpec {
    pub url: String,
    pub purge: Vec<String>,
    pub publish: Option<PublishSpec>,
    pub get: Option<GetSpec>,
    pub queues: Vec<String>,
    pub drain: Option<DrainSpec>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub exchange: String,
    pub routing_key: String,
    pub body: String,
    pub headers: BTreeMap<String, Value>,
    pub count: u32,
    pub persistent: bool,
    pub content_type: String,
}

#[derive(Debug, Clone)]
pub struct GetSpec {
    pub queue: String,
    pub count: u32,
    pub ack: bool,
}

#[derive(Debug, Clone)]
pub struct DrainSpec {
    pub url: String,
    pub pointer: String,
    pub until: i64,
    pub timeout: Duration,
}

/// Why the probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AmqpFailure {
    /// The spec cannot be run (lab's mistake).
    #[error("{0}")]
    Spec(String),
    #[error("could not open an AMQP connection to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("the broker did not finish the session within {0:?}")]
    Timeout(Duration),
    #[error("{what}: {why}")]
    Broker { what: String, why: String },
}

fn broker(what: impl Into<String>) -> impl FnOnce(amqprs::error::Error) -> AmqpFailure {
    let what = what.into();
    move |e| AmqpFailure::Broker { what, why: e.to_string() }
}

/// Where to connect, from an `amqp://user:pass@host:port/vhost` URL.
struct Target {
    host: String,
    port: u16,
    user: String,
    password: String,
    vhost: String,
}

fn parse_url(u: &str) -> Result<Target, AmqpFailure> {
    let url = reqwest::Url::parse(u).map_err(|e| AmqpFailure::Spec(format!("AMQP URL {u:?}: {e}")))?;
    if url.scheme() != "amqp" {
        return Err(AmqpFailure::Spec(format!("AMQP URL {u:?}: the scheme must be amqp")));
    }
    let decode = |s: &str| percent_decode(s);
    let vhost = match url.path() {
        "" | "/" => "/".to_string(),
        p => decode(&p[1..]),
    };
    Ok(Target {
        host: url.host_str().ok_or_else(|| AmqpFailure::Spec(format!("AMQP URL {u:?} has no host")))?.to_string(),
        port: url.port().unwrap_or(5672),
        user: if url.username().is_empty() { "guest".into() } else { decode(url.username()) },
        password: decode(url.password().unwrap_or("guest")),
        vhost,
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL without its password, for messages.
pub fn redacted(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => u.to_string(),
    }
}

fn check_name(kind: &str, n: &str) -> Result<(), AmqpFailure> {
    if n.len() > 255 {
        return Err(AmqpFailure::Spec(format!("{kind} name {:?}… is longer than 255 bytes", super::excerpt(n, 40))));
    }
    Ok(())
}

/// What the probe does, as a learner reads it.
pub fn describe(spec: &AmqpSpec) -> String {
    let mut parts = vec![format!("AMQP {}", redacted(&spec.url))];
    for q in &spec.purge {
        parts.push(format!("purge queue {q}"));
    }
    if let Some(p) = &spec.publish {
        let to = if p.exchange.is_empty() { "the default exchange".to_string() } else { format!("exchange {}", p.exchange) };
        let mut line = format!("publish {} message{} to {to} with routing key {:?}", p.count, if p.count == 1 { "" } else { "s" }, p.routing_key);
        if !p.headers.is_empty() {
            line.push_str(&format!(", headers {}", serde_json::to_string(&p.headers).unwrap_or_default()));
        }
        line.push_str(&format!(": {}", super::excerpt(&p.body, 300)));
        parts.push(line);
    }
    if let Some(g) = &spec.get {
        parts.push(format!("get up to {} message{} from queue {} ({})", g.count, if g.count == 1 { "" } else { "s" }, g.queue, if g.ack { "taking them" } else { "putting them back" }));
    }
    for q in &spec.queues {
        parts.push(format!("count queue {q}"));
    }
    if let Some(d) = &spec.drain {
        parts.push(format!("poll GET {} until {} ≥ {} (at most {:?})", d.url, d.pointer, d.until, d.timeout));
    }
    parts.join("\n")
}

/// A header value as JSON.
pub fn field_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::t(b) => json!(b),
        FieldValue::b(n) => json!(n),
        FieldValue::B(n) => json!(n),
        FieldValue::s(n) => json!(n),
        FieldValue::u(n) => json!(n),
        FieldValue::I(n) => json!(n),
        FieldValue::i(n) => json!(n),
        FieldValue::l(n) => json!(n),
        FieldValue::f(n) => json!(n),
        FieldValue::d(n) => json!(n),
        FieldValue::D(d) => json!(d.to_string()),
        FieldValue::S(s) => json!(cap(s.as_ref().as_bytes()).0),
        FieldValue::A(a) => Value::Array(Vec::<FieldValue>::from(a.clone()).iter().map(field_to_json).collect()),
        FieldValue::T(t) => json!(t),
        FieldValue::F(t) => table_to_json(t),
        FieldValue::V => Value::Null,
        FieldValue::x(b) => json!(cap(&Vec::<u8>::from(b.clone())).0),
    }
}

/// A header table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    let m: &std::collections::HashMap<amqprs::FieldName, FieldValue> = t.as_ref();
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        out.insert(k.to_string(), field_to_json(v));
    }
    Value::Object(out)
}

fn json_to_field(k: &str, v: &Value) -> Result<FieldValue, AmqpFailure> {
    Ok(match v {
        Value::Bool(b) => FieldValue::t(*b),
        Value::Number(n) if n.is_i64() => FieldValue::l(n.as_i64().unwrap_or_default()),
        Value::Number(n) => FieldValue::d(n.as_f64().unwrap_or_default()),
        Value::String(s) => FieldValue::from(s.clone()),
        _ => return Err(AmqpFailure::Spec(format!("header {k}: only strings, numbers and booleans can be sent"))),
    })
}

/// At most BODY_CAP bytes as text, and whether it was cut.
fn cap(b: &[u8]) -> (String, bool) {
    if b.len() > BODY_CAP {
        (String::from_utf8_lossy(&b[..BODY_CAP]).into_owned(), true)
    } else {
        (String::from_utf8_lossy(b).into_owned(), false)
    }
}

/// Run the probe.
pub async fn run(spec: &AmqpSpec, client: &reqwest::Client) -> Result<Answer, AmqpFailure> {
    let started = Instant::now();
    let target = parse_url(&spec.url)?;
    for q in spec.purge.iter().chain(spec.queues.iter()).chain(spec.get.iter().map(|g| &g.queue)) {
        check_name("queue", q)?;
    }
    if let Some(p) = &spec.publish {
        check_name("exchange", &p.exchange)?;
        check_name("routing key", &p.routing_key)?;
        if p.count > MAX_PUBLISH {
            return Err(AmqpFailure::Spec(format!("publish count {} is over {MAX_PUBLISH}", p.count)));
        }
    }
    let mut answer = serde_json::Map::new();
    let mut shown = Vec::new();
    let session = session(spec, &target, &mut answer, &mut shown);
    let publish_started = match tokio::time::timeout(spec.timeout, session).await {
        Ok(r) => r?,
        Err(_) => return Err(AmqpFailure::Timeout(spec.timeout)),
    };
    if let Some(d) = &spec.drain {
        let from = publish_started.unwrap_or(started);
        let published = answer.get("published").and_then(Value::as_u64).unwrap_or(0);
        let v = drain(d, client, from, published).await;
        shown.push(format!(
            "drain: {} {} after {} ms; the first of these messages was applied after {} ms, so {} ms of the service's own work (rate {} messages/s){}",
            d.pointer,
            v["value"],
            v["ms"],
            v["wait_ms"],
            v["own_ms"],
            v["rate"],
            v["error"].as_str().map(|e| format!("; last error: {e}")).unwrap_or_default()
        ));
        answer.insert("drain".into(), v);
    }
    Ok(Answer { value: Value::Object(answer), shown: shown.join("\n"), elapsed: started.elapsed() })
}

/// The broker part of the probe; returns when publishing started, if it did.
async fn session(spec: &AmqpSpec, t: &Target, answer: &mut serde_json::Map<String, Value>, shown: &mut Vec<String>) -> Result<Option<Instant>, AmqpFailure> {
    let addr = format!("{}:{}", t.host, t.port);
    let mut args = OpenConnectionArguments::new(&t.host, t.port, &t.user, &t.password);
    args.virtual_host(&t.vhost).connection_name("lab-probe").heartbeat(0);
    let conn = Connection::open(&args).await.map_err(|e| AmqpFailure::Connect { addr: addr.clone(), why: e.to_string() })?;
    let result = async {
        let mut ch = conn.open_channel(None).await.map_err(broker("opening a channel"))?;
        let mut publish_started = None;
        if !spec.purge.is_empty() {
            let mut purged = serde_json::Map::new();
            for q in &spec.purge {
                let n = ch.queue_purge(QueuePurgeArguments::new(q)).await.map_err(broker(format!("purging queue {q}")))?.unwrap_or(0);
                purged.insert(q.clone(), json!(n));
                shown.push(format!("purged {n} message(s) from {q}"));
            }
            answer.insert("purged".into(), Value::Object(purged));
        }
        if let Some(p) = &spec.publish {
            // What the queues held before this probe added to them: what earlier
            // traffic left, which the service works through before these messages.
            if !spec.queues.is_empty() {
                let (before, lines) = count_queues(&conn, &mut ch, &spec.queues).await?;
                shown.extend(lines.into_iter().map(|l| format!("before publishing, {l}")));
                answer.insert("before".into(), before);
            }
            let mut headers = FieldTable::new();
            for (k, v) in &p.headers {
                let name = k.as_str().try_into().map_err(|_| AmqpFailure::Spec(format!("header name {k:?} is too long")))?;
                headers.insert(name, json_to_field(k, v)?);
            }
            let mut props = BasicProperties::default();
            props.with_content_type(&p.content_type).with_persistence(p.persistent);
            if !p.headers.is_empty() {
                props.with_headers(headers);
            }
            let props = props.finish();
            let began = Instant::now();
            publish_started = Some(began);
            for n in 1..=p.count {
                let body = if p.count > 1 { p.body.replace("{n}", &n.to_string()) } else { p.body.clone() };
                ch.basic_publish(props.clone(), body.into_bytes(), BasicPublishArguments::new(&p.exchange, &p.routing_key)).await.map_err(broker(format!("publishing message {n}")))?;
            }
            let ms = began.elapsed().as_millis() as u64;
            answer.insert("published".into(), json!(p.count));
            answer.insert("publish_ms".into(), json!(ms));
            shown.push(format!("published {} message(s) in {ms} ms", p.count));
        }
        if let Some(g) = &spec.get {
            let mut messages = Vec::new();
            let mut tags = Vec::new();
            for _ in 0..g.count.min(MAX_GET) {
                let got = ch.basic_get(BasicGetArguments { queue: g.queue.clone(), no_ack: false }).await.map_err(broker(format!("getting a message from {}", g.queue)))?;
                let Some((ok, props, body)) = got else { break };
                tags.push(ok.delivery_tag());
                let (text, truncated) = cap(&body);
                let parsed = if truncated { Value::Null } else { serde_json::from_str::<Value>(&text).unwrap_or(Value::Null) };
                messages.push(json!({
                    "body": text,
                    "json": parsed,
                    "headers": props.headers().map(table_to_json).unwrap_or_else(|| json!({})),
                    "exchange": ok.exchange(),
                    "routing_key": ok.routing_key(),
                    "redelivered": ok.redelivered(),
                    "truncated": truncated,
                }));
            }
            // Put them back (or take them), all at once: the broker keeps their order.
            if let Some(last) = tags.last() {
                if g.ack {
                    ch.basic_ack(BasicAckArguments::new(*last, true)).await.map_err(broker("acknowledging"))?;
                } else {
                    ch.basic_nack(BasicNackArguments::new(*last, true, true)).await.map_err(broker("putting messages back"))?;
                }
            }
            shown.push(format!("{} message(s) from {}", messages.len(), g.queue));
            for m in &messages {
                shown.push(format!("  headers {} body {}", m["headers"], super::excerpt(m["body"].as_str().unwrap_or(""), 300)));
            }
            answer.insert("received".into(), json!(messages.len()));
            answer.insert("messages".into(), Value::Array(messages));
        }
        if !spec.queues.is_empty() {
            let (queues, lines) = count_queues(&conn, &mut ch, &spec.queues).await?;
            shown.extend(lines);
            answer.insert("queues".into(), queues);
        }
        let _ = close_channel(ch).await;
        Ok(publish_started)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Read the counts of queues with passive declares (nothing is created): the
/// answer's `{queue: {exists, messages, consumers}}` and a line per queue.
async fn count_queues(conn: &Connection, ch: &mut Channel, names: &[String]) -> Result<(Value, Vec<String>), AmqpFailure> {
    let mut queues = serde_json::Map::new();
    let mut lines = Vec::new();
    for q in names {
        let mut a = QueueDeclareArguments::new(q);
        a.passive(true);
        match ch.queue_declare(a.finish()).await {
            Ok(Some((_, messages, consumers))) => {
                lines.push(format!("queue {q}: {messages} ready, {consumers} consumer(s)"));
                queues.insert(q.clone(), json!({"exists": true, "messages": messages, "consumers": consumers}));
            }
            Ok(None) => {
                queues.insert(q.clone(), json!({"exists": true, "messages": null, "consumers": null}));
            }
            Err(e) => {
                // A missing queue closes the channel: open another for the rest.
                lines.push(format!("queue {q}: {e}"));
                queues.insert(q.clone(), json!({"exists": false, "error": e.to_string()}));
                *ch = conn.open_channel(None).await.map_err(broker("opening a channel"))?;
            }
        }
    }
    Ok((Value::Object(queues), lines))
}

async fn close_channel(ch: Channel) -> Result<(), amqprs::error::Error> {
    ch.close().await
}

/// Poll until the number at the pointer reaches `until`.
///
/// The rate counts only the time the service spent on these messages: from
/// the start of the last poll that still saw none of them applied (the number
/// at 0: the service was busy with what was queued before them, or starting)
/// to the poll that saw it reach `until`.
/// `wait_ms` is that wait, `ms` the whole time from publishing.
async fn drain(d: &DrainSpec, client: &reqwest::Client, from: Instant, published: u64) -> Value {
    let deadline = from + d.timeout;
    let mut value = Value::Null;
    let mut error: Option<String>;
    // When the last poll that still saw none of the messages applied began.
    let mut began = from;
    let mut idle = true;
    loop {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let req = HttpRequest { method: "GET".into(), url: d.url.clone(), headers: BTreeMap::new(), body: None, json: false, timeout: left.clamp(Duration::from_millis(100), Duration::from_secs(2)) };
        match http::send(client, &req).await {
            Ok(resp) if resp.status == 200 => match serde_json::from_slice::<Value>(&resp.body) {
                Ok(body) => match body.pointer(&d.pointer) {
                    Some(v) if v.is_number() => {
                        value = v.clone();
                        error = None;
                    }
                    other => error = Some(format!("{} is {} in {}", d.pointer, other.map(|v| v.to_string()).unwrap_or_else(|| "missing".into()), resp.body_excerpt(200))),
                },
                Err(e) => error = Some(format!("the answer is not JSON ({e}): {}", resp.body_excerpt(200))),
            },
            Ok(resp) => error = Some(format!("HTTP {} {}: {}", resp.status, resp.reason, resp.body_excerpt(200))),
            Err(e) => error = Some(e.to_string()),
        }
        if let Some(v) = value.as_f64() {
            if idle && v <= 0.0 {
                began = now;
            } else {
                idle = false;
            }
        }
        let reached = value.as_f64().is_some_and(|v| v >= d.until as f64);
        if reached || Instant::now() >= deadline {
            let ms = from.elapsed().as_millis() as u64;
            let wait_ms = began.saturating_duration_since(from).as_millis() as u64;
            let own_ms = began.elapsed().as_millis() as u64;
            let count = if published > 0 { published } else { d.until.max(0) as u64 };
            let rate = if reached { (count as f64 * 1000.0 / own_ms.max(1) as f64).floor() as u64 } else { 0 };
            return json!({"reached": reached, "value": value, "ms": ms, "wait_ms": wait_ms, "own_ms": own_ms, "rate": rate, "error": error});
        }
        // Polled often: a fast service drains 500 messages in about 0.2 s, and
        // the rate is only as exact as the poll times that bound it.
        tokio::time::sleep(Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn spec(port: u16) -> AmqpSpec {
        AmqpSpec { url: format!("amqp://lab:lab@127.0.0.1:{port}/"), purge: vec![], publish: None, get: None, queues: vec!["orders".into()], drain: None, timeout: Duration::from_millis(800) }
    }

    /// A fake broker: accepts, reads the protocol header, then does `what`.
    async fn fake(what: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 8];
                    let _ = s.read_exact(&mut buf).await;
                    match what {
                        "silent" => tokio::time::sleep(Duration::from_secs(30)).await,
                        "garbage" => {
                            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
                        }
                        "close" => {}
                        "flood" => {
                            // A frame header announcing a huge method frame, then endless bytes.
                            let _ = s.write_all(&[1, 0, 0, 0x7f, 0xff, 0xff, 0xff]).await;
                            let chunk = vec![0u8; 65536];
                            for _ in 0..2000 {
                                if s.write_all(&chunk).await.is_err() {
                                    break;
                                }
                            }
                        }
                        _ => unreachable!(),
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_silent_broker_times_out() {
        let port = fake("silent").await;
        let t = Instant::now();
        let e = run(&spec(port), &http::client()).await.unwrap_err();
        assert!(matches!(e, AmqpFailure::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn garbage_and_hangups_fail_without_panicking() {
        for what in ["garbage", "close", "flood"] {
            let port = fake(what).await;
            let t = Instant::now();
            let e = run(&spec(port), &http::client()).await.unwrap_err();
            assert!(matches!(e, AmqpFailure::Connect { .. } | AmqpFailure::Timeout(_)), "{what}: {e}");
            assert!(t.elapsed() < Duration::from_secs(3), "{what}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = run(&spec(port), &http::client()).await.unwrap_err();
        assert!(matches!(e, AmqpFailure::Connect { .. }), "{e}");
    }

    #[test]
    fn urls_are_parsed_and_redacted() {
        let t = parse_url("amqp://lab:s%40cret@127.0.0.1:5679/orders").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.user.as_str(), t.password.as_str(), t.vhost.as_str()), ("127.0.0.1", 5679, "lab", "s@cret", "orders"));
        assert_eq!(parse_url("amqp://h/").unwrap().vhost, "/");
        assert!(parse_url("http://h/").is_err());
        assert_eq!(redacted("amqp://lab:lab@h:1/"), "amqp://lab:***@h:1/");
    }

    #[test]
    fn headers_become_json() {
        let mut inner = FieldTable::new();
        inner.insert("reason".try_into().unwrap(), FieldValue::from("rejected"));
        inner.insert("count".try_into().unwrap(), FieldValue::l(2));
        let mut t = FieldTable::new();
        t.insert("x-death".try_into().unwrap(), FieldValue::A(vec![FieldValue::F(inner)].try_into().unwrap()));
        t.insert("x-retries".try_into().unwrap(), FieldValue::I(3));
        let v = table_to_json(&t);
        assert_eq!(v["x-retries"], 3);
        assert_eq!(v["x-death"][0]["reason"], "rejected");
        assert_eq!(v["x-death"][0]["count"], 2);
    }

    #[tokio::test]
    async fn drain_reports_a_rate_and_gives_up_on_a_hanging_service() {
        // A service that answers {"n": 10} once, then hangs.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"n\": 10}").await;
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(s);
                });
            }
        });
        let url = format!("http://{addr}/stats");
        let d = DrainSpec { url: url.clone(), pointer: "/n".into(), until: 10, timeout: Duration::from_secs(2) };
        let v = drain(&d, &http::client(), Instant::now(), 10).await;
        assert_eq!(v["reached"], true, "{v}");
        assert!(v["rate"].as_u64().unwrap() > 0);
        let d = DrainSpec { until: 11, timeout: Duration::from_millis(700), ..d };
        let t = Instant::now();
        let v = drain(&d, &http::client(), Instant::now(), 11).await;
        assert_eq!(v["reached"], false, "{v}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn the_rate_counts_only_the_services_own_work() {
        // A service busy with earlier work: nothing applied for the first 4 polls, then all 10 at once.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut polls = 0;
            while let Ok((mut s, _)) = l.accept().await {
                polls += 1;
                let n = if polls <= 4 { 0 } else { 10 };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body = format!("{{\"n\": {n}}}");
                let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes()).await;
            }
        });
        let d = DrainSpec { url: format!("http://{addr}/stats"), pointer: "/n".into(), until: 10, timeout: Duration::from_secs(5) };
        let from = Instant::now() - Duration::from_secs(1);
        let v = drain(&d, &http::client(), from, 10).await;
        assert_eq!(v["reached"], true, "{v}");
        // The second before the first poll and the 3 idle polls after it (10 ms apart) are not the service's own time.
        assert!(v["wait_ms"].as_u64().unwrap() >= 1030, "{v}");
        assert!(v["own_ms"].as_u64().unwrap() < 500, "{v}");
        assert!(v["rate"].as_u64().unwrap() >= 20, "{v}");
    }
}
