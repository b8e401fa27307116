//! The redis probe: ask a Redis dependency one command, or look at the keys
//! it holds and whether they expire, so that checks can see what the
//! learner's service keeps there (a limiter whose keys never expire, a cache
//! that grows forever). Connection and answer are bounded.

use std::time::{Duration, Instant};

use super::Answer;

/// Keys looked at, at most, by a `keys` question.
pub const MAX_KEYS: usize = 100_000;
/// Keys without an expiry named in the answer.
const SAMPLE: usize = 10;

/// What to ask.
pub enum Ask {
    Command(Vec<String>),
    Keys(String),
}

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("could not connect to Redis at {0}: {1}")]
    Connect(String, String),
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    #[error("Redis failed: {0}")]
    Io(String),
}

fn json_of(v: &redis::Value) -> serde_json::Value {
    use redis::Value as V;
    match v {
        V::Nil => serde_json::Value::Null,
        V::Int(n) => (*n).into(),
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned().into(),
        V::SimpleString(s) => s.clone().into(),
        V::Okay => "OK".into(),
        V::Array(a) | V::Set(a) => a.iter().map(json_of).collect(),
        V::Map(m) => m.iter().map(|(k, v)| serde_json::json!([json_of(k), json_of(v)])).collect(),
        V::Double(d) => serde_json::json!(d),
        V::Boolean(b) => (*b).into(),
        V::BigNumber(n) => String::from_utf8_lossy(n).into_owned().into(),
        V::VerbatimString { text, .. } => text.clone().into(),
        V::Attribute { data, .. } => json_of(data),
        V::Push { data, .. } => data.iter().map(json_of).collect(),
        V::ServerError(e) => format!("{e:?}").into(),
        other => format!("{other:?}").into(),
    }
}

/// Ask Redis at `addr` (`host:port`).
pub async fn ask(addr: &str, what: &Ask, timeout: Duration) -> Result<Answer, RedisFailure> {
    let started = Instant::now();
    let work = async {
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| RedisFailure::Connect(addr.to_string(), e.to_string()))?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| RedisFailure::Connect(addr.to_string(), e.to_string()))?;
        match what {
            Ask::Command(args) => {
                let mut cmd = redis::cmd(&args[0]);
                for a in &args[1..] {
                    cmd.arg(a);
                }
                let (value, shown) = match cmd.query_async::<redis::Value>(&mut conn).await {
                    Ok(v) => {
                        let j = json_of(&v);
                        let shown = super::excerpt(&j.to_string(), 300);
                        (serde_json::json!({"reply": j, "error": null}), shown)
                    }
                    Err(e) if e.kind() == redis::ErrorKind::Io => return Err(RedisFailure::Io(e.to_string())),
                    Err(e) => (serde_json::json!({"reply": null, "error": e.to_string()}), format!("Redis refused the command: {e}")),
                };
                Ok((value, shown))
            }
            Ask::Keys(pattern) => {
                let mut cursor: u64 = 0;
                let (mut count, mut without, mut longest, mut sample, mut truncated) = (0usize, 0usize, None::<i64>, Vec::new(), false);
                loop {
                    let (next, keys): (u64, Vec<Vec<u8>>) =
                        redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(&mut conn).await.map_err(|e| RedisFailure::Io(e.to_string()))?;
                    for k in keys {
                        // A key that expired between SCAN and PTTL answers -2: not counted.
                        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut conn).await.map_err(|e| RedisFailure::Io(e.to_string()))?;
                        match ttl {
                            -2 => continue,
                            -1 => {
                                without += 1;
                                if sample.len() < SAMPLE {
                                    sample.push(String::from_utf8_lossy(&k).into_owned());
                                }
                            }
                            ms => longest = Some(longest.map_or(ms, |l: i64| l.max(ms))),
                        }
                        count += 1;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                    if count >= MAX_KEYS {
                        truncated = true;
                        break;
                    }
                }
                let shown = format!(
                    "{count} key(s) matching {pattern:?}{}, {without} without an expiry{}{}",
                    if truncated { " (stopped counting)" } else { "" },
                    if sample.is_empty() { String::new() } else { format!(" (e.g. {})", sample.join(", ")) },
                    longest.map(|l| format!(", the longest expiry {l} ms away")).unwrap_or_default()
                );
                Ok((serde_json::json!({"count": count, "without_ttl": without, "longest_ttl_ms": longest, "sample": sample, "truncated": truncated}), shown))
            }
        }
    };
    let (value, shown) = tokio::time::timeout(timeout, work).await.map_err(|_| RedisFailure::Timeout(timeout))??;
    Ok(Answer { value, shown, elapsed: started.elapsed() })
}

/// The question as a learner reads it.
pub fn sent(dep: &str, what: &Ask) -> String {
    match what {
        Ask::Command(args) => format!("Redis ({dep}): {}", args.join(" ")),
        Ask::Keys(p) => format!("Redis ({dep}): the keys matching {p:?} and their expiry"),
    }
}
