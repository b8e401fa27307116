//! The gRPC probe: call a unary method of the learner's service, described by
//! a .proto that ships with the lab. The .proto is compiled at run time
//! (protox, pure Rust: no protoc on the user's machine) into a descriptor pool;
//! requests are given as JSON, encoded with the method's input type
//! (prost-reflect), sent with tonic, and the reply is decoded back to JSON.
//!
//! Everything the service sends is bounded: the connection, the whole call
//! (the call's deadline plus a little grace, whatever the service does), the
//! size of the reply message ([`MAX_REPLY`]) and the headers (HTTP/2 limits).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use super::Answer;

/// The largest reply message read (larger ones end the call with RESOURCE_EXHAUSTED, as a failure to answer).
pub const MAX_REPLY: usize = 256 * 1024;
/// Time allowed beyond a call's deadline before lab gives up on the service.
pub const GRACE: Duration = Duration::from_millis(500);

/// Why a .proto could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the lab's {file} does not compile: {message}")]
    Compile { file: String, message: String },
    #[error("{0}")]
    Method(String),
    #[error("the request does not fit {ty}: {message}")]
    Request { ty: String, message: String },
}

/// Why a call got no answer to judge.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    #[error("could not connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("no answer from {addr} within the call's deadline of {}: the service does not honour the deadline (a gRPC client gives up then; end the call before it)", humantime::format_duration(*deadline))]
    Timeout { addr: String, deadline: Duration },
    #[error("the call to {addr} broke off: {message}")]
    Transport { addr: String, message: String },
    #[error("the reply of {addr} is larger than {max} bytes: {message}")]
    TooLarge { addr: String, max: usize, message: String },
}

/// Files the lab's .proto may import from, besides itself: protobuf's
/// well-known types come with protox.
struct OneFile {
    name: String,
    source: String,
}

impl protox::file::FileResolver for OneFile {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == self.name {
            protox::file::File::from_source(name, &self.source)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// Compile one .proto (its text, under the name `file`) into a descriptor pool.
pub fn compile(file: &str, source: &str) -> Result<DescriptorPool, ProtoError> {
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(OneFile { name: file.to_string(), source: source.to_string() });
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut c = protox::Compiler::with_file_resolver(resolver);
    c.include_imports(true);
    c.open_file(file).map_err(|e| ProtoError::Compile { file: file.to_string(), message: e.to_string() })?;
    Ok(c.descriptor_pool())
}

/// Find `package.Service/Method` (a leading `/` is allowed); only unary methods.
pub fn method(pool: &DescriptorPool, name: &str) -> Result<MethodDescriptor, ProtoError> {
    let name = name.trim_start_matches('/');
    let (svc, m) = name.split_once('/').ok_or_else(|| ProtoError::Method(format!("method `{name}` should read package.Service/Method")))?;
    let service = pool.get_service_by_name(svc).ok_or_else(|| {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        ProtoError::Method(format!("no service {svc} in the lab's proto (it has: {})", known.join(", ")))
    })?;
    let method = service.methods().find(|x| x.name() == m).ok_or_else(|| {
        let known: Vec<String> = service.methods().map(|x| x.name().to_string()).collect();
        ProtoError::Method(format!("service {svc} has no method {m} (it has: {})", known.join(", ")))
    })?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(ProtoError::Method(format!("{name} streams; the grpc probe calls unary methods only")));
    }
    Ok(method)
}

/// Build the request message from JSON (protobuf's JSON mapping; unknown fields are an error).
pub fn request(desc: MessageDescriptor, json: &serde_json::Value) -> Result<DynamicMessage, ProtoError> {
    DynamicMessage::deserialize_with_options(desc.clone(), json, &DeserializeOptions::new().deny_unknown_fields(true))
        .map_err(|e| ProtoError::Request { ty: desc.full_name().to_string(), message: e.to_string() })
}

/// A message as JSON, field names as in the .proto, defaults included, 64-bit integers as numbers.
pub fn to_json(m: &DynamicMessage) -> serde_json::Value {
    let opts = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false).stringify_64_bit_integers(false);
    m.serialize_with_options(serde_json::value::Serializer, &opts).unwrap_or(serde_json::Value::Null)
}

/// A codec for messages known only at run time.
#[derive(Clone)]
struct DynamicCodec {
    reply: MessageDescriptor,
}

struct DynEncoder;
struct DynDecoder(MessageDescriptor);

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src).map(Some).map_err(|e| Status::internal(format!("the reply is not a valid {}: {e}", self.0.full_name())))
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;
    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }
    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.reply.clone())
    }
}

/// The canonical name of a status code (UNAUTHENTICATED, ALREADY_EXISTS, ...).
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One unary call.
pub struct Call<'a> {
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    pub method: MethodDescriptor,
    pub request: DynamicMessage,
    /// Sent as grpc-timeout; lab waits at most this plus [`GRACE`].
    pub deadline: Duration,
    pub metadata: &'a BTreeMap<String, String>,
}

/// The request as a learner reads it: `auth.v1.Auth/Login {"email": ...} (deadline 2s)`.
pub fn shown_request(method: &MethodDescriptor, request: &DynamicMessage, deadline: Duration) -> String {
    format!("{}/{} {} (deadline {})", method.parent_service().full_name(), method.name(), to_json(request), humantime::format_duration(deadline))
}

/// Make the call. The answer's value is
/// `{"code": "OK"|"UNAUTHENTICATED"|..., "message": "...", "response": {...}|null, "metadata": {...}}`;
/// a service that cannot be reached, hangs past the deadline, breaks the
/// connection or sends more than [`MAX_REPLY`] gives a [`CallFailure`].
pub async fn call(c: Call<'_>) -> Result<Answer, CallFailure> {
    let started = Instant::now();
    let addr = c.addr.clone();
    let limit = c.deadline + GRACE;
    match tokio::time::timeout(limit, call_inner(c)).await {
        Ok(Ok(mut a)) => {
            a.elapsed = started.elapsed();
            Ok(a)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(CallFailure::Timeout { addr, deadline: limit - GRACE }),
    }
}

async fn call_inner(c: Call<'_>) -> Result<Answer, CallFailure> {
    let addr = c.addr.clone();
    let endpoint = tonic::transport::Endpoint::from_shared(c.addr.clone()).map_err(|e| CallFailure::Connect { addr: addr.clone(), message: e.to_string() })?.connect_timeout(c.deadline);
    let channel = endpoint.connect().await.map_err(|e| CallFailure::Connect { addr: addr.clone(), message: error_chain(&e) })?;
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_REPLY);
    grpc.ready().await.map_err(|e| CallFailure::Connect { addr: addr.clone(), message: error_chain(&e) })?;
    let path: http::uri::PathAndQuery =
        format!("/{}/{}", c.method.parent_service().full_name(), c.method.name()).parse().map_err(|e: http::uri::InvalidUri| CallFailure::Connect { addr: addr.clone(), message: e.to_string() })?;
    let mut req = tonic::Request::new(c.request);
    req.set_timeout(c.deadline);
    for (k, v) in c.metadata {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|e| CallFailure::Connect { addr: addr.clone(), message: format!("metadata key {k}: {e}") })?;
        let val = v.parse().map_err(|e| CallFailure::Connect { addr: addr.clone(), message: format!("metadata value of {k}: {e}") })?;
        req.metadata_mut().insert(key, val);
    }
    let codec = DynamicCodec { reply: c.method.output() };
    let c_deadline = c.deadline;
    match grpc.unary(req, path, codec).await {
        Ok(resp) => {
            let metadata = metadata_json(resp.metadata());
            let body = to_json(resp.get_ref());
            let shown = format!("OK {}", super::excerpt(&body.to_string(), 600));
            Ok(Answer { value: serde_json::json!({"code": "OK", "message": "", "response": body, "metadata": metadata}), shown, elapsed: Duration::ZERO })
        }
        Err(st) => {
            // A status made on this side from a broken connection is no answer of the service.
            // tonic gives up at the deadline it sent (grpc-timeout), as every gRPC client does.
            if is_local_timeout(&st) {
                return Err(CallFailure::Timeout { addr, deadline: c_deadline });
            }
            if let Some(src) = std::error::Error::source(&st) {
                return Err(CallFailure::Transport { addr, message: format!("{}: {}", st.message(), error_chain(src)) });
            }
            if st.code() == Code::OutOfRange || (st.code() == Code::ResourceExhausted && st.message().contains("message length too large")) {
                return Err(CallFailure::TooLarge { addr, max: MAX_REPLY, message: st.message().to_string() });
            }
            let name = code_name(st.code());
            let message = super::excerpt(st.message(), 2000);
            let shown = if message.is_empty() { name.to_string() } else { format!("{name}: {message}") };
            Ok(Answer { value: serde_json::json!({"code": name, "message": message, "response": null, "metadata": metadata_json(st.metadata())}), shown, elapsed: Duration::ZERO })
        }
    }
}

fn is_local_timeout(st: &Status) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(st);
    while let Some(e) = cur {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn metadata_json(m: &tonic::metadata::MetadataMap) -> serde_json::Value {
    let h = m.clone().into_headers();
    let mut out = serde_json::Map::new();
    for (k, v) in h.iter().take(64) {
        out.insert(k.to_string(), serde_json::Value::String(super::excerpt(&String::from_utf8_lossy(v.as_bytes()), 500)));
    }
    serde_json::Value::Object(out)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

const HEALTH_PROTO: &str = r#"syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"#;

fn health_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| compile("grpc/health/v1/health.proto", HEALTH_PROTO).expect("the health protocol compiles"))
}

/// Readiness: the standard gRPC health service (grpc.health.v1.Health/Check)
/// answers SERVING for the whole server.
pub async fn health_check(addr: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
    let pool = health_pool();
    let m = method(pool, "grpc.health.v1.Health/Check").map_err(|e| e.to_string())?;
    let req = DynamicMessage::new(m.input());
    let none = BTreeMap::new();
    let a = call(Call { addr: format!("http://{addr}"), method: m, request: req, deadline: timeout, metadata: &none }).await.map_err(|e| e.to_string())?;
    match (a.value["code"].as_str(), a.value["response"]["status"].as_str()) {
        (Some("OK"), Some("SERVING")) => Ok(()),
        _ => Err(format!("grpc.health.v1.Health/Check answered {}", a.shown)),
    }
}

/// Read and compile a lab file (for tests and tools that have a path).
pub fn compile_path(path: &Path) -> Result<DescriptorPool, ProtoError> {
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let source = std::fs::read_to_string(path).map_err(|e| ProtoError::Compile { file: path.display().to_string(), message: e.to_string() })?;
    compile(&name, &source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const PROTO: &str = r#"syntax = "proto3";
package t.v1;
message Req { string name = 1; int64 n = 2; }
message Rep { string greeting = 1; int64 n = 2; repeated string tags = 3; }
service Greeter { rpc Hello(Req) returns (Rep); rpc Many(Req) returns (stream Rep); }
"#;

    fn pool() -> DescriptorPool {
        compile("t.proto", PROTO).unwrap()
    }

    #[test]
    fn compiles_and_finds_methods() {
        let p = pool();
        let m = method(&p, "t.v1.Greeter/Hello").unwrap();
        assert_eq!(m.input().full_name(), "t.v1.Req");
        assert!(method(&p, "t.v1.Greeter/Nope").unwrap_err().to_string().contains("it has: Hello, Many"));
        assert!(method(&p, "t.v1.Greeter/Many").unwrap_err().to_string().contains("streams"));
        assert!(method(&p, "x.Y/Z").unwrap_err().to_string().contains("no service x.Y"));
        let bad = compile("b.proto", "syntax = \"proto3\"; message { }").unwrap_err();
        assert!(bad.to_string().contains("b.proto"), "{bad}");
    }

    #[test]
    fn requests_are_checked_against_the_message_type() {
        let p = pool();
        let m = method(&p, "t.v1.Greeter/Hello").unwrap();
        let r = request(m.input(), &serde_json::json!({"name": "ada", "n": 3})).unwrap();
        assert_eq!(to_json(&r), serde_json::json!({"name": "ada", "n": 3}));
        let e = request(m.input(), &serde_json::json!({"nom": "ada"})).unwrap_err();
        assert!(e.to_string().contains("t.v1.Req"), "{e}");
    }

    /// A minimal gRPC-over-HTTP/2 server answering one call, for hostile replies.
    async fn h2_server(reply: impl Fn() -> Reply + Send + Sync + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let reply = std::sync::Arc::new(reply);
        tokio::spawn(async move {
            loop {
                let (sock, _) = l.accept().await.unwrap();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut conn = h2::server::handshake(sock).await.unwrap();
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let reply = reply();
                        tokio::spawn(async move {
                            let _body = req.into_body();
                            let resp = http::Response::builder().status(200).header("content-type", "application/grpc").body(()).unwrap();
                            match reply {
                                Reply::Hang => {
                                    let _s = respond.send_response(resp, false);
                                    tokio::time::sleep(Duration::from_secs(60)).await;
                                }
                                Reply::Status(code, msg) => {
                                    let resp = http::Response::builder()
                                        .status(200)
                                        .header("content-type", "application/grpc")
                                        .header("grpc-status", code.to_string())
                                        .header("grpc-message", msg)
                                        .body(())
                                        .unwrap();
                                    let _ = respond.send_response(resp, true);
                                }
                                Reply::Frame(bytes) => {
                                    let mut s = respond.send_response(resp, false).unwrap();
                                    let _ = s.send_data(bytes.into(), false);
                                    let mut trailers = http::HeaderMap::new();
                                    trailers.insert("grpc-status", "0".parse().unwrap());
                                    let _ = s.send_trailers(trailers);
                                }
                                Reply::Flood => {
                                    let mut s = respond.send_response(resp, false).unwrap();
                                    // A frame that claims 100 MB, then endless data.
                                    let mut head = vec![0u8];
                                    head.extend_from_slice(&(100_000_000u32).to_be_bytes());
                                    let _ = s.send_data(head.into(), false);
                                    for _ in 0..10_000 {
                                        s.reserve_capacity(64 * 1024);
                                        if s.send_data(vec![b'x'; 64 * 1024].into(), false).is_err() {
                                            break;
                                        }
                                        tokio::task::yield_now().await;
                                    }
                                }
                            }
                        });
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    enum Reply {
        Hang,
        Status(i32, &'static str),
        Frame(Vec<u8>),
        Flood,
    }

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    async fn hello(addr: &str, deadline: Duration) -> Result<Answer, CallFailure> {
        let p = pool();
        let m = method(&p, "t.v1.Greeter/Hello").unwrap();
        let r = request(m.input(), &serde_json::json!({"name": "ada"})).unwrap();
        let none = BTreeMap::new();
        call(Call { addr: addr.to_string(), method: m, request: r, deadline, metadata: &none }).await
    }

    #[tokio::test]
    async fn decodes_a_reply_and_status_codes() {
        // greeting = "hi", n = 300, tags = ["a"]
        let msg = [0x0a, 2, b'h', b'i', 0x10, 0xac, 0x02, 0x1a, 1, b'a'];
        let addr = h2_server(move || Reply::Frame(frame(&msg))).await;
        let a = hello(&addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(a.value["code"], "OK");
        assert_eq!(a.value["response"], serde_json::json!({"greeting": "hi", "n": 300, "tags": ["a"]}));
        let addr = h2_server(|| Reply::Status(16, "bad%20password")).await;
        let a = hello(&addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(a.value["code"], "UNAUTHENTICATED");
        assert_eq!(a.value["message"], "bad password");
        assert_eq!(a.shown, "UNAUTHENTICATED: bad password");
    }

    #[tokio::test]
    async fn a_hanging_service_fails_within_the_deadline() {
        let addr = h2_server(|| Reply::Hang).await;
        let t = Instant::now();
        let e = hello(&addr, Duration::from_millis(300)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(matches!(e, CallFailure::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("within the call's deadline of 300ms: the service does not honour the deadline"), "{e}");
    }

    #[tokio::test]
    async fn a_flood_is_cut_at_the_cap() {
        let addr = h2_server(|| Reply::Flood).await;
        let t = Instant::now();
        let e = hello(&addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(matches!(e, CallFailure::TooLarge { .. }), "{e}");
    }

    #[tokio::test]
    async fn malformed_frames_are_an_answer_or_a_failure_never_a_panic() {
        // A message that is not a valid Rep (a truncated varint).
        let addr = h2_server(|| Reply::Frame(frame(&[0x10, 0xff]))).await;
        let a = hello(&addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(a.value["code"], "INTERNAL");
        assert!(a.value["message"].as_str().unwrap().contains("not a valid t.v1.Rep"), "{}", a.value);
        // A compressed flag without compression, and a cut frame.
        for bytes in [vec![1u8, 0, 0, 0, 1, 0], vec![0u8, 0, 0, 0, 9, 1]] {
            let addr = h2_server(move || Reply::Frame(bytes.clone())).await;
            match hello(&addr, Duration::from_secs(2)).await {
                Ok(a) => assert_ne!(a.value["code"], "OK", "{}", a.value),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[tokio::test]
    async fn garbage_instead_of_http2_is_no_answer() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
                    let _ = s.write_all(&[0xffu8; 4096]).await;
                });
            }
        });
        let t = Instant::now();
        let e = hello(&format!("http://{addr}"), Duration::from_secs(2)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(matches!(e, CallFailure::Connect { .. } | CallFailure::Transport { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_is_no_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = hello(&format!("http://{addr}"), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, CallFailure::Connect { .. } | CallFailure::Transport { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_silent_listener_is_no_answer_within_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = vec![];
            loop {
                let (s, _) = l.accept().await.unwrap();
                held.push(s);
            }
        });
        let t = Instant::now();
        let e = hello(&format!("http://{addr}"), Duration::from_millis(400)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!e.to_string().is_empty());
    }
}
