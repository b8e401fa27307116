//! The sql probe: run one query against a PostgreSQL dependency and return
//! its rows as JSON (every value as text, as PostgreSQL's text format gives it),
//! so that checks can look at what the learner's service stored, such as
//! whether passwords are hashed. Connection, query and answer are bounded.

use std::time::{Duration, Instant};

use super::Answer;

/// Rows kept (the rest are counted, not kept).
pub const MAX_ROWS: usize = 1000;
/// Characters kept of each value.
pub const MAX_VALUE: usize = 4096;

/// A query to run.
pub struct SqlSpec<'a> {
    /// `postgres://user:password@host:port/db`
    pub url: &'a str,
    pub query: &'a str,
    pub timeout: Duration,
}

/// Why the database gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SqlFailure {
    #[error("the database URL {0:?} is not valid: {1}")]
    Url(String, String),
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("no answer from PostgreSQL within {0:?}")]
    Timeout(Duration),
}

/// Run the query. The answer's value is
/// `{"rows": [{"column": "text"|null, ...}, ...], "count": n, "truncated": bool, "error": "..."|null}`;
/// a query PostgreSQL rejects (e.g. a missing table) is an answer with `error` set.
pub async fn query(spec: &SqlSpec<'_>) -> Result<Answer, SqlFailure> {
    let started = Instant::now();
    let mut cfg: tokio_postgres::Config = spec.url.parse().map_err(|e: tokio_postgres::Error| SqlFailure::Url(spec.url.to_string(), e.to_string()))?;
    cfg.connect_timeout(spec.timeout);
    let work = async {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| SqlFailure::Connect(e.to_string()))?;
        let task = tokio::spawn(conn);
        let res = client.simple_query(spec.query).await;
        drop(client);
        task.abort();
        Ok::<_, SqlFailure>(res)
    };
    let res = tokio::time::timeout(spec.timeout, work).await.map_err(|_| SqlFailure::Timeout(spec.timeout))??;
    let msgs = match res {
        Ok(m) => m,
        Err(e) => {
            let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
            let value = serde_json::json!({"rows": [], "count": 0, "truncated": false, "error": why});
            return Ok(Answer { shown: format!("PostgreSQL refused the query: {why}"), value, elapsed: started.elapsed() });
        }
    };
    let mut rows = Vec::new();
    let mut count = 0usize;
    for m in msgs {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            count += 1;
            if rows.len() >= MAX_ROWS {
                continue;
            }
            let mut obj = serde_json::Map::new();
            for (i, col) in r.columns().iter().enumerate() {
                let v = r.get(i).map(|s| serde_json::Value::String(super::excerpt(s, MAX_VALUE))).unwrap_or(serde_json::Value::Null);
                obj.insert(col.name().to_string(), v);
            }
            rows.push(serde_json::Value::Object(obj));
        }
    }
    let shown = format!("{count} row(s): {}", super::excerpt(&serde_json::Value::Array(rows.iter().take(5).cloned().collect()).to_string(), 600));
    let value = serde_json::json!({"rows": rows, "count": count, "truncated": count > MAX_ROWS, "error": null});
    Ok(Answer { value, shown, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = vec![];
            loop {
                held.push(l.accept().await.unwrap().0);
            }
        });
        let url = format!("postgres://u:p@{addr}/db");
        let t = Instant::now();
        let e = query(&SqlSpec { url: &url, query: "SELECT 1", timeout: Duration::from_millis(300) }).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(e, SqlFailure::Timeout(_) | SqlFailure::Connect(_)), "{e}");
    }

    #[tokio::test]
    async fn a_bad_url_is_named() {
        let e = query(&SqlSpec { url: "postgres://u:p@host:notaport/db", query: "SELECT 1", timeout: Duration::from_millis(300) }).await.unwrap_err();
        assert!(matches!(e, SqlFailure::Url(..)), "{e}");
    }
}
