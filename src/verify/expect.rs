//! Evaluating an `expect` block against an answer. Each mismatch says what was
//! expected and what was found, in words a learner can act on.

use std::time::Duration;

use crate::lab::{Expect, JsonKind, Matcher};
use crate::probe::http::HttpResponse;

/// A mismatch: what was expected, what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub expected: String,
    pub got: String,
}

/// Test a value against a matcher whose templates are already rendered.
pub fn test_value(what: &str, value: Option<&str>, m: &Matcher) -> Result<(), Mismatch> {
    let shown = |v: Option<&str>| match v {
        // A flood is shown cut, not whole.
        Some(v) => format!("{what} = {}", lit(&crate::probe::excerpt(v, 400))),
        None => format!("no {what}"),
    };
    if let Some(p) = m.present {
        if p != value.is_some() {
            return Err(Mismatch { expected: format!("{what} {}", if p { "present" } else { "absent" }), got: shown(value) });
        }
    }
    if let Some(c) = &m.not_contains {
        if value.is_some_and(|v| v.contains(c.as_str())) {
            return Err(Mismatch { expected: format!("{what} not containing {c:?}"), got: shown(value) });
        }
    }
    if let Some(eq) = &m.equals {
        if value != Some(eq.as_str()) {
            return Err(Mismatch { expected: format!("{what} = {}", lit(eq)), got: shown(value) });
        }
    }
    if let Some(c) = &m.contains {
        if !value.is_some_and(|v| v.contains(c.as_str())) {
            return Err(Mismatch { expected: format!("{what} containing {c:?}"), got: shown(value) });
        }
    }
    if let Some(re) = &m.matches {
        let r = regex::Regex::new(re).map_err(|e| Mismatch { expected: format!("{what} matching {re}"), got: format!("a bad pattern: {e}") })?;
        if !value.is_some_and(|v| r.is_match(v)) {
            return Err(Mismatch { expected: format!("{what} matching /{re}/"), got: shown(value) });
        }
    }
    if let Some(min) = m.min.as_ref().and_then(crate::lab::Bound::value) {
        match value.and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(n) if n >= min => {}
            _ => return Err(Mismatch { expected: format!("{what}: a whole number ≥ {min}"), got: shown(value) }),
        }
    }
    if let Some(max) = m.max.as_ref().and_then(crate::lab::Bound::value) {
        match value.and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(n) if n <= max => {}
            _ => return Err(Mismatch { expected: format!("{what}: a whole number ≤ {max}"), got: shown(value) }),
        }
    }
    Ok(())
}

/// A value as the failure shows it: a number or true/false as it is, other
/// text quoted (`60`, `true`, `"queued"`).
fn lit(v: &str) -> String {
    let plain = v == "true" || v == "false" || (v.parse::<f64>().is_ok_and(f64::is_finite) && !v.starts_with('+') && v.trim() == v && !v.is_empty());
    if plain {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// `type:` of a matcher on a JSON pointer: the value there is of that type.
fn test_kind(what: &str, value: Option<&serde_json::Value>, m: &Matcher) -> Result<(), Mismatch> {
    let Some(k) = m.kind else { return Ok(()) };
    match value {
        Some(v) if k.admits(v) => Ok(()),
        Some(v) => Err(Mismatch { expected: format!("{what}: {}", k.word()), got: format!("{what} = {} ({})", crate::probe::excerpt(&v.to_string(), 200), JsonKind::of(v).word()) }),
        None => Err(Mismatch { expected: format!("{what}: {}", k.word()), got: format!("no {what}") }),
    }
}

/// The JSON value at a pointer, as text (strings without quotes).
pub fn json_at(body: &serde_json::Value, pointer: &str) -> Option<String> {
    body.pointer(pointer).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Check a response. Matchers' templates must already be rendered.
pub fn check(resp: &HttpResponse, e: &Expect) -> Result<(), Mismatch> {
    if let Some(status) = e.status {
        if resp.status != status {
            return Err(Mismatch { expected: format!("status {status} {}", reason(status)), got: format!("status {} {}", resp.status, resp.reason) });
        }
    }
    if !e.status_in.is_empty() && !e.status_in.contains(&resp.status) {
        let any: Vec<String> = e.status_in.iter().map(|s| format!("{s} {}", reason(*s))).collect();
        return Err(Mismatch { expected: format!("status {}", any.join(" or ")), got: format!("status {} {}", resp.status, resp.reason) });
    }
    if let Some(within) = e.within {
        if resp.elapsed > within {
            return Err(Mismatch { expected: format!("an answer within {}", fmt_dur(within)), got: format!("an answer after {}", fmt_dur(resp.elapsed)) });
        }
    }
    if let Some(floor) = e.not_within {
        if resp.elapsed < floor {
            return Err(Mismatch {
                expected: format!("an answer no sooner than {} (nothing honest can be done faster)", fmt_dur(floor)),
                got: format!("status {} after only {}", resp.status, fmt_dur(resp.elapsed)),
            });
        }
    }
    for (name, m) in &e.headers {
        test_value(&format!("header {name}"), resp.header(name), m)?;
    }
    if !e.json.is_empty() {
        let body: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|err| Mismatch { expected: "a JSON body".into(), got: format!("a body that is not JSON ({err}): {}", resp.body_excerpt(200)) })?;
        for (ptr, m) in &e.json {
            test_kind(&format!("JSON {ptr}"), body.pointer(ptr), m)?;
            test_value(&format!("JSON {ptr}"), json_at(&body, ptr).as_deref(), m)?;
        }
    }
    if let Some(m) = &e.body {
        test_value("body", Some(&String::from_utf8_lossy(&resp.body)), m)?;
    }
    Ok(())
}

/// Check a probe's answer: `within` and `json` pointers into its value.
pub fn check_answer(answer: &crate::probe::Answer, e: &Expect) -> Result<(), Mismatch> {
    if let Some(within) = e.within {
        if answer.elapsed > within {
            return Err(Mismatch { expected: format!("an answer within {}", fmt_dur(within)), got: format!("an answer after {}", fmt_dur(answer.elapsed)) });
        }
    }
    for (ptr, m) in &e.json {
        let what = pointer_words(ptr);
        // Presence first, in words: the value may be a whole object (a file read back).
        if let Some(want) = m.present {
            let here = answer.value.pointer(ptr).is_some();
            if want != here {
                let word = |p: bool| if p { "present" } else { "absent" };
                return Err(Mismatch { expected: format!("{what} {}", word(want)), got: format!("{what} {}", word(here)) });
            }
        }
        test_kind(&what, answer.value.pointer(ptr), m)?;
        test_value(&what, json_at(&answer.value, ptr).as_deref(), &Matcher { present: None, ..m.clone() })?;
    }
    Ok(())
}

/// A JSON pointer as a learner reads it: `/files/.tasks.json/json/0` is `files[".tasks.json"].json.0`.
pub fn pointer_words(ptr: &str) -> String {
    if ptr.is_empty() {
        return "the answer".to_string();
    }
    let segs: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    // One key reads best as it is, e.g. a series `request_duration_seconds_bucket{le="0.1"}`.
    if let [one] = segs[..] {
        return one.replace("~1", "/").replace("~0", "~");
    }
    let mut out = String::new();
    for seg in segs {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.contains(['.', '/', ' ']) {
            out.push_str(&format!("[{seg:?}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// A status's reason phrase.
pub fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// A duration as a person reads it.
pub fn fmt_dur(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            reason: reason(status).into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
            elapsed: Duration::from_millis(30),
        }
    }

    fn m(f: impl FnOnce(&mut Matcher)) -> Matcher {
        let mut x = Matcher::default();
        f(&mut x);
        x
    }

    #[test]
    fn a_type_tells_a_number_from_its_text_and_numbers_show_unquoted() {
        let mut json = BTreeMap::new();
        json.insert("/n".to_string(), m(|x| x.kind = Some(JsonKind::Integer)));
        let e = Expect { json, ..Default::default() };
        assert!(check(&resp(200, &[], r#"{"n": 3}"#), &e).is_ok());
        let err = check(&resp(200, &[], r#"{"n": "3"}"#), &e).unwrap_err();
        assert_eq!(err.expected, "JSON /n: a whole number");
        assert_eq!(err.got, "JSON /n = \"3\" (a string)");
        assert!(check(&resp(200, &[], r#"{"n": 3.5}"#), &e).is_err());
        let mut json = BTreeMap::new();
        json.insert("/n".to_string(), m(|x| x.equals = Some("60".into())));
        let err = check(&resp(200, &[], r#"{"n": 30}"#), &Expect { json, ..Default::default() }).unwrap_err();
        assert_eq!((err.expected.as_str(), err.got.as_str()), ("JSON /n = 60", "JSON /n = 30"));
        assert_eq!(lit("queued"), "\"queued\"");
        assert_eq!(lit(""), "\"\"");
        assert_eq!(lit("true"), "true");
    }

    #[test]
    fn status_mismatch_names_both() {
        let e = Expect { status: Some(302), ..Default::default() };
        let err = check(&resp(301, &[], ""), &e).unwrap_err();
        assert_eq!(err.expected, "status 302 Found");
        assert_eq!(err.got, "status 301 Moved Permanently");
    }

    #[test]
    fn headers_are_case_insensitive_and_min_reads_numbers() {
        let mut headers = BTreeMap::new();
        headers.insert("Retry-After".to_string(), m(|x| x.min = Some(1.into())));
        let e = Expect { status: Some(429), headers, ..Default::default() };
        assert!(check(&resp(429, &[("retry-after", "42")], ""), &e).is_ok());
        let err = check(&resp(429, &[("retry-after", "0")], ""), &e).unwrap_err();
        assert!(err.expected.contains("≥ 1"), "{err:?}");
        let err = check(&resp(429, &[], ""), &e).unwrap_err();
        assert_eq!(err.got, "no header Retry-After");
    }

    #[test]
    fn json_pointers_and_non_json_bodies() {
        let mut json = BTreeMap::new();
        json.insert("/code".to_string(), m(|x| x.matches = Some("^[a-z]{4}$".into())));
        let e = Expect { json, ..Default::default() };
        assert!(check(&resp(201, &[], r#"{"code":"abcd"}"#), &e).is_ok());
        assert!(check(&resp(201, &[], r#"{"code":"ab"}"#), &e).unwrap_err().got.contains("\"ab\""));
        assert!(check(&resp(201, &[], "<html>"), &e).unwrap_err().got.contains("not JSON"));
        assert_eq!(check(&resp(201, &[], "{}"), &e).unwrap_err().got, "no JSON /code");
    }

    #[test]
    fn answers_name_their_fields_readably() {
        assert_eq!(pointer_words("/files/.tasks.json/json/0/title"), "files[\".tasks.json\"].json.0.title");
        assert_eq!(pointer_words("/request_duration_seconds_bucket{le=\"0.1\"}"), "request_duration_seconds_bucket{le=\"0.1\"}");
        assert_eq!(pointer_words("/exit"), "exit");
        let a = crate::probe::Answer { value: serde_json::json!({"files": {"a.json": {"size": 3}}}), shown: String::new(), elapsed: Duration::ZERO };
        let mut json = BTreeMap::new();
        json.insert("/files/a.json".to_string(), m(|x| x.present = Some(false)));
        let err = check_answer(&a, &Expect { json, ..Default::default() }).unwrap_err();
        assert_eq!((err.expected.as_str(), err.got.as_str()), ("files[\"a.json\"] absent", "files[\"a.json\"] present"));
    }

    #[test]
    fn not_contains_refuses_the_words() {
        let x = m(|x| x.not_contains = Some("panic:".into()));
        assert!(test_value("stderr", Some("Error: tasks.json is not valid JSON"), &x).is_ok());
        assert!(test_value("stderr", None, &x).is_ok());
        let err = test_value("stderr", Some("panic: runtime error\ngoroutine 1 [running]"), &x).unwrap_err();
        assert_eq!(err.expected, "stderr not containing \"panic:\"");
        assert!(err.got.contains("goroutine 1"), "{err:?}");
    }

    #[test]
    fn slow_answers_fail_within() {
        let e = Expect { within: Some(Duration::from_millis(10)), ..Default::default() };
        let err = check(&resp(200, &[], ""), &e).unwrap_err();
        assert_eq!(err.got, "an answer after 30 ms");
    }

    #[test]
    fn answers_sooner_than_the_floor_fail_not_within() {
        let e = |ms| Expect { not_within: Some(Duration::from_millis(ms)), ..Default::default() };
        assert!(check(&resp(200, &[], ""), &e(30)).is_ok(), "an answer that took the floor passes");
        let err = check(&resp(200, &[], ""), &e(300)).unwrap_err();
        assert_eq!(err.got, "status 200 after only 30 ms");
        assert!(err.expected.contains("no sooner than 300 ms"), "{err:?}");
    }

    #[test]
    fn max_reads_numbers_and_refuses_null() {
        let mx = m(|x| x.max = Some(2000.into()));
        assert!(test_value("latency_ms.max", Some("19"), &mx).is_ok());
        let err = test_value("latency_ms.max", Some("2500"), &mx).unwrap_err();
        assert_eq!(err.expected, "latency_ms.max: a whole number ≤ 2000");
        assert!(test_value("latency_ms.max", Some("null"), &mx).is_err());
        assert!(test_value("latency_ms.max", None, &mx).is_err());
    }
}
