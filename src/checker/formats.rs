//! Reading and writing histories.
//!
//! # The project's JSON format
//!
//! An object with an `ops` list of *events*, in time order. Each operation is an
//! `invoke` event followed, later, by a completion event of the same process
//! (`ok`, `fail` or `info`), as in Jepsen:
//!
//! ```json
//! {"ops": [
//!   {"process": 0, "type": "invoke", "f": "write", "key": "x", "value": 1, "time": 100},
//!   {"process": 1, "type": "invoke", "f": "read",  "key": "x", "value": null, "time": 120},
//!   {"process": 0, "type": "ok",     "f": "write", "key": "x", "value": 1, "time": 300},
//!   {"process": 1, "type": "ok",     "f": "read",  "key": "x", "value": 1, "time": 310},
//!   {"process": 2, "type": "invoke", "f": "cas",   "key": "x", "value": [1, 2], "time": 400},
//!   {"process": 2, "type": "info",   "f": "cas",   "key": "x", "value": [1, 2], "time": 900}
//! ]}
//! ```
//!
//! - `process`: a non-negative integer, the client. A process has at most one
//!   pending invocation. (`"nemesis"` events are ignored.)
//! - `type`: `invoke`; then `ok` (it happened), `fail` (it definitely did not
//!   happen), or `info` (unknown: timed out; it may have happened at any time
//!   after its invocation). An invocation without a completion counts as `info`.
//! - `f`: `read`, `write`, `cas` (compare-and-set), `get`, `put` (the same as
//!   read and write), `append` (append an element to a list).
//! - `key`: a string (or an integer); omitted for a single register.
//! - `value`: null, a boolean, an integer, a string, or a list of these. For a
//!   `write`/`put` the value written; for `cas` `[from, to]` (an `ok` cas
//!   swapped; a cas the service refused is `fail`, or `ok` with value `false`);
//!   for `append` the element; for a `read`/`get` null on the invocation and the
//!   value read on the `ok` (the whole list for a list key, `null` for a missing key).
//! - `time`: optional, a non-negative integer in any monotonic unit (the
//!   [`Recorder`](super::Recorder) writes nanoseconds). Without `time` on every
//!   event, the events' positions are the times.
//!
//! A bare JSON list of events, and JSON Lines (one event object per line), are
//! read too. [`to_json`] writes this format, one event per line.
//!
//! # Porcupine-friendly JSON
//!
//! A JSON list of operations, one object per line, for the Go checker Porcupine
//! (`porcupine.Operation{ClientId, Input, Call, Output, Return}`):
//!
//! ```json
//! [
//! {"client_id": 0, "input": {"op": "write", "key": "x", "value": 1}, "call": 100, "output": {"ok": true, "unknown": false, "value": null}, "return": 300},
//! {"client_id": 1, "input": {"op": "read", "key": "x"}, "call": 120, "output": {"ok": true, "unknown": false, "value": 1}, "return": 310},
//! {"client_id": 2, "input": {"op": "cas", "key": "x", "from": 1, "to": 2}, "call": 400, "output": {"ok": true, "unknown": true, "value": null}, "return": 9223372036854775807}
//! ]
//! ```
//!
//! `op` is one of the functions above; `key` is always a string (`""` for a
//! single register); `value` is the input of write/put/append and the output of
//! read/get. `output.ok` is false only for a cas that did not swap. An operation
//! whose outcome is unknown (`info`) has `output.unknown = true` and `return` =
//! 2^63-1 (int64 max), so it is concurrent with everything after its call, which is
//! how Porcupine models a timed-out operation; the model must then accept any
//! output. Failed (`fail`) operations are left out. [`to_porcupine_json`] writes
//! it and [`parse_porcupine`] reads it back.
//!
//! # Jepsen
//!
//! - Log lines of `jepsen.util`, fields separated by tabs (`<TAB>` here):
//!   `INFO  jepsen.util - 3<TAB>:invoke<TAB>:write<TAB>4`, `3<TAB>:ok<TAB>:read<TAB>nil`,
//!   `3<TAB>:invoke<TAB>:cas<TAB>[1 4]`, `3<TAB>:fail<TAB>:cas<TAB>[1 4]`,
//!   `3<TAB>:info<TAB>:write<TAB>4<TAB>:timeout` (spaces work too). Anything before the
//!   process (timestamps, log levels, thread names) is skipped, as are lines that are not operations
//!   and `:nemesis` lines. Values are EDN.
//! - EDN maps, one per line or inside a vector: `{:process 0, :type :invoke, :f
//!   :write, :value 3}`; with `:key` and `:time` for key-value histories
//!   (`:get`, `:put`, `:append`).
//! - Jepsen's independent keys: when no event has a key and every value is a
//!   tuple `[key value]` (`:value [5 [1 2]]`), the first element is the key.
//!
//! [`parse`] detects the format from the content; every error names the line
//! and what was expected there.

use std::borrow::Cow;
use std::fmt::Write as _;

use clojure_reader::edn::Edn;
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::history::{Event, EventType, Func, History, Op, ParseError, SourcedEvent, Status, Value, FUNC_NAMES};

/// The formats [`parse`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The project's JSON event format (also a bare list or JSON Lines).
    Json,
    /// Porcupine-friendly JSON operations.
    Porcupine,
    /// EDN maps (Jepsen `history.edn`).
    Edn,
    /// `jepsen.util` log lines.
    JepsenLog,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Porcupine => "porcupine-json",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

fn perr(line: usize, message: impl Into<String>) -> ParseError {
    ParseError { line: line.max(1), message: message.into() }
}

/// Reads a history in any supported format, detected from the content.
pub fn parse(text: &str) -> Result<History, ParseError> {
    match detect(text) {
        Some(format) => parse_as(text, format),
        None => Err(perr(
            first_content_line(text),
            "unrecognized history format: expected a JSON object {\"ops\": [...]}, a JSON list of events or \
             Porcupine operations, EDN maps ({:process 0, :type :invoke, :f :write, :value 3}), or Jepsen log \
             lines (3<TAB>:invoke<TAB>:write<TAB>4)",
        )),
    }
}

/// Reads a history in the given format.
pub fn parse_as(text: &str, format: Format) -> Result<History, ParseError> {
    match format {
        Format::Json => parse_json(text),
        Format::Porcupine => parse_porcupine(text),
        Format::Edn => parse_edn(text),
        Format::JepsenLog => parse_jepsen_log(text),
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn first_content_line(text: &str) -> usize {
    let text = strip_bom(text);
    let skipped = text.len() - text.trim_start().len();
    line_of(text, skipped)
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count()
}

/// Line numbers of increasing offsets, counted incrementally (linear overall).
struct LineCounter<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> LineCounter<'a> {
        LineCounter { bytes: text.as_bytes(), pos: 0, line: 1 }
    }

    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        if offset < self.pos {
            self.pos = 0;
            self.line = 1;
        }
        // A plain loop (vectorized at compile time): memchr would detect the
        // CPU's features at run time first, which costs more than it saves on
        // the short gaps between operations (CPUID is slow under virtualization).
        self.line += self.bytes[self.pos..offset].iter().filter(|&&b| b == b'\n').count();
        self.pos = offset;
        self.line
    }
}

/// Guesses the format of a history from its first characters.
pub fn detect(text: &str) -> Option<Format> {
    let t = strip_bom(text).trim_start();
    let mut chars = t.chars();
    let first = chars.next()?;
    let after = |s: &str| s.trim_start_matches(|c: char| c.is_whitespace() || c == ',').chars().next();
    match first {
        '{' => match after(&t[1..]) {
            Some('"') | Some('}') => Some(Format::Json),
            _ => Some(Format::Edn),
        },
        '[' => match after(&t[1..]) {
            Some(']') => Some(Format::Json),
            Some('{') => {
                let inner = &t[1..].trim_start()[1..];
                match after(inner) {
                    Some('"') | Some('}') => {
                        let head = &t[..t.len().min(4096)];
                        if head.contains("\"client_id\"") || head.contains("\"return\"") {
                            Some(Format::Porcupine)
                        } else {
                            Some(Format::Json)
                        }
                    }
                    _ => Some(Format::Edn),
                }
            }
            Some('#') | Some('(') => Some(Format::Edn),
            _ => None,
        },
        '#' | '(' => Some(Format::Edn),
        _ => {
            let re = log_regex();
            t.lines().take(10_000).any(|l| re.is_match(l)).then_some(Format::JepsenLog)
        }
    }
}

// ---------------------------------------------------------------------------
// Writing

/// Writes a history in the project's JSON format, one event per line.
pub fn to_json(history: &History) -> String {
    let events = history.events();
    let mut out = String::with_capacity(events.len() * 90 + 16);
    out.push_str("{\"ops\": [\n");
    for (i, e) in events.iter().enumerate() {
        out.push_str(&serde_json::to_string(e).expect("events serialize"));
        out.push_str(if i + 1 < events.len() { ",\n" } else { "\n" });
    }
    out.push_str("]}\n");
    out
}

/// The largest `return` time, used for operations whose outcome is unknown.
pub const PORCUPINE_INFINITY: i64 = i64::MAX;

/// Writes a history in the Porcupine-friendly JSON form (see the module docs),
/// one operation per line, ordered by call time. `fail` operations are left out.
pub fn to_porcupine_json(history: &History) -> String {
    let mut ops: Vec<&Op> = history.ops.iter().filter(|op| op.status != Status::Fail).collect();
    ops.sort_by_key(|op| op.call);
    let mut out = String::with_capacity(ops.len() * 140 + 4);
    out.push_str("[\n");
    for (i, op) in ops.iter().enumerate() {
        let mut input = serde_json::Map::new();
        input.insert("op".into(), op.f.name().into());
        input.insert("key".into(), op.key.clone().into());
        match op.f {
            Func::Cas => {
                if let Some((from, to)) = op.cas_pair() {
                    input.insert("from".into(), serde_json::to_value(from).unwrap());
                    input.insert("to".into(), serde_json::to_value(to).unwrap());
                }
            }
            f if f.is_read() => {}
            _ => {
                input.insert("value".into(), serde_json::to_value(&op.value).unwrap());
            }
        }
        let unknown = op.status == Status::Info;
        let ok = !(op.f == Func::Cas && op.output == Value::Bool(false));
        let value = if op.f.is_read() && !unknown { serde_json::to_value(&op.output).unwrap() } else { serde_json::Value::Null };
        let ret: i64 = if unknown { PORCUPINE_INFINITY } else { op.ret.unwrap_or(u64::MAX).min(i64::MAX as u64) as i64 };
        let _ = write!(
            out,
            "{{\"client_id\": {}, \"input\": {}, \"call\": {}, \"output\": {{\"ok\": {}, \"unknown\": {}, \"value\": {}}}, \"return\": {}}}",
            op.process,
            serde_json::Value::Object(input),
            op.call.min(i64::MAX as u64),
            ok,
            unknown,
            value,
            ret
        );
        out.push_str(if i + 1 < ops.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

// ---------------------------------------------------------------------------
// The project's JSON format

/// A parsed event before process/key normalization: `process` is None for the
/// nemesis; `key` is None when absent.
#[derive(Debug, PartialEq)]
struct RawEvent {
    process: Option<u64>,
    kind: EventType,
    f: Option<Func>,
    f_name: String,
    key: Option<String>,
    value: Value,
    time: Option<u64>,
    line: usize,
}

/// Reads the project's JSON format (also a bare list of events, or JSON Lines).
pub fn parse_json(text: &str) -> Result<History, ParseError> {
    let text = strip_bom(text);
    if let Some(raw) = fast_list(text, fast_event) {
        return finish_events(raw);
    }
    let items = json_items(text)?;
    if let Some((first, _)) = items.first() {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(first.get()) {
            if map.contains_key("client_id") || (map.contains_key("call") && map.contains_key("input")) {
                return porcupine_items(text, &items);
            }
        }
    }
    let mut raw = Vec::with_capacity(items.len());
    for (item, line) in items {
        raw.push(json_event(item, line)?);
    }
    finish_events(raw)
}

/// The common case in one pass: a JSON list (bare, or as the `ops` of an
/// object) whose every element deserializes as `T` and converts (given the
/// line it starts on). `None` for anything else (another shape, an element that
/// does not fit `T` or does not convert, a syntax error): the caller then
/// takes the long way, which says where and what is wrong.
fn fast_list<'a, T: Deserialize<'a>, U: Send>(text: &'a str, convert: impl Fn(T, usize) -> Option<U> + Sync) -> Option<Vec<U>> {
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, 0);
    let in_object = match bytes.get(i)? {
        b'[' => false,
        b'{' => {
            // Only `{"ops": [` at the start; other shapes take the long way.
            i = skip_ws(bytes, i + 1);
            if !text[i..].starts_with("\"ops\"") {
                return None;
            }
            i = skip_ws(bytes, i + 5);
            if bytes.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(bytes, i + 1);
            if bytes.get(i) != Some(&b'[') {
                return None;
            }
            true
        }
        _ => return None,
    };
    i = skip_ws(bytes, i + 1);
    let (out, mut i) = if bytes.get(i) == Some(&b']') {
        (Vec::new(), i + 1)
    } else {
        match split_point(bytes, i) {
            // Two halves read at once, the second on another thread.
            Some(split) => {
                let halves = std::thread::scope(|s| {
                    let second = s.spawn(|| list_elements(text, split, None, &convert));
                    let first = list_elements(text, i, Some(split), &convert);
                    (first, second.join().ok().flatten())
                });
                match halves {
                    (Some((mut first, _)), Some((second, end))) => {
                        first.extend(second);
                        (first, end)
                    }
                    // Not an element boundary after all: one pass.
                    _ => list_elements(text, i, None, &convert)?,
                }
            }
            None => list_elements(text, i, None, &convert)?,
        }
    };
    i = skip_ws(bytes, i);
    if in_object {
        if bytes.get(i) != Some(&b'}') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
    }
    (i == bytes.len()).then_some(out)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Lists longer than this (some 3,500 operations) are read in two halves at
/// once. Below it a second thread costs more than it saves (measured here:
/// 1,000 operations took 0.2 ms longer in two halves, 10,000 0.9 ms less).
const SPLIT_BYTES: usize = 512 * 1024;

/// Where a long list may be cut in two: the start of the first line past the
/// middle that begins with `{` after a line that ends with `,`. A raw newline
/// is never inside a JSON string, but such a line may still be inside an
/// element (a nested list of objects); then one half does not read, and the
/// list is read in one pass.
fn split_point(bytes: &[u8], from: usize) -> Option<usize> {
    if bytes.len().saturating_sub(from) < SPLIT_BYTES {
        return None;
    }
    let mid = from + (bytes.len() - from) / 2;
    let mut nl = mid + bytes[mid..].iter().position(|&b| b == b'\n')?;
    for _ in 0..64 {
        let before = bytes[..nl].iter().rposition(|b| !b" \t\r".contains(b))?;
        let start = skip_ws(bytes, nl);
        if bytes[before] == b',' && bytes.get(start) == Some(&b'{') {
            return Some(start);
        }
        nl = nl + 1 + bytes[nl + 1..].iter().position(|&b| b == b'\n')?;
    }
    None
}

/// Reads list elements from `i` (the start of one): to the list's closing
/// `]` (returning the offset after it), or, with `stop`, exactly up to that
/// offset (the start of a later element). `None` if anything does not read.
fn list_elements<'a, T: Deserialize<'a>, U>(text: &'a str, mut i: usize, stop: Option<usize>, convert: &impl Fn(T, usize) -> Option<U>) -> Option<(Vec<U>, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(stop.unwrap_or(text.len()).saturating_sub(i) / 100);
    let mut lines = LineCounter::new(text);
    loop {
        let line = lines.line_at(i);
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<T>();
        let item = stream.next()?.ok()?;
        i = skip_ws(bytes, i + stream.byte_offset());
        out.push(convert(item, line)?);
        match bytes.get(i)? {
            b',' => i = skip_ws(bytes, i + 1),
            b']' if stop.is_none() => return Some((out, i + 1)),
            _ => return None,
        }
        match stop {
            Some(s) if i == s => return Some((out, i)),
            Some(s) if i > s => return None,
            _ => {}
        }
    }
}

/// Splits a JSON document into its event (or operation) objects, each with its line.
fn json_items(text: &str) -> Result<Vec<(&RawValue, usize)>, ParseError> {
    #[derive(Deserialize)]
    struct OpsDoc<'a> {
        #[serde(borrow)]
        ops: Vec<&'a RawValue>,
    }
    if text.trim_start().starts_with('{') {
        // The common case in one pass; anything else goes the long way below.
        if let Ok(doc) = serde_json::from_str::<OpsDoc>(text) {
            let mut lines = LineCounter::new(text);
            return Ok(doc.ops.into_iter().map(|v| (v, lines.line_at(v.get().as_ptr() as usize - text.as_ptr() as usize))).collect());
        }
    }
    let json_error = |e: serde_json::Error, base_line: usize, what: &str| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; we name the line ourselves.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        perr(base_line + e.line().saturating_sub(1), format!("{msg}; expected {what}"))
    };
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let mut tops: Vec<&RawValue> = Vec::new();
    loop {
        match stream.next() {
            None => break,
            Some(Ok(v)) => tops.push(v),
            Some(Err(e)) => return Err(json_error(e, 1, "a JSON object {\"ops\": [...]}, a JSON list, or one JSON object per line")),
        }
    }
    let offset = |v: &RawValue| v.get().as_ptr() as usize - text.as_ptr() as usize;
    if tops.is_empty() {
        return Err(perr(1, "the history is empty; expected a JSON object {\"ops\": [...]}"));
    }
    if tops.len() > 1 {
        // JSON Lines: every top-level value is an event.
        let mut lines = LineCounter::new(text);
        return Ok(tops.into_iter().map(|v| (v, lines.line_at(offset(v)))).collect());
    }
    let top = tops[0];
    let top_line = line_of(text, offset(top));
    let list: Vec<&RawValue> = match top.get().as_bytes().first() {
        Some(b'{') => {
            #[derive(Deserialize)]
            struct Doc<'a> {
                #[serde(borrow)]
                ops: Option<Vec<&'a RawValue>>,
            }
            let doc: Doc = serde_json::from_str(top.get()).map_err(|e| json_error(e, top_line, "\"ops\" to be a list of events"))?;
            match doc.ops {
                Some(ops) => ops,
                // A single event object on its own.
                None => vec![top],
            }
        }
        Some(b'[') => serde_json::from_str(top.get()).map_err(|e| json_error(e, top_line, "a list of events"))?,
        _ => return Err(perr(top_line, "expected a JSON object {\"ops\": [...]} or a list of events")),
    };
    let mut lines = LineCounter::new(text);
    Ok(list.into_iter().map(|v| (v, lines.line_at(offset(v)))).collect())
}

fn json_to_value(v: &serde_json::Value) -> Result<Value, String> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Int(f as i64),
                _ => return Err(format!("{n} is not an integer; values must be null, booleans, integers, strings or lists")),
            },
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(json_to_value).collect::<Result<_, _>>()?),
        serde_json::Value::Object(_) => return Err("objects are not supported as values; use null, a boolean, an integer, a string or a list".into()),
    })
}

/// The fast path: an event deserialized in place. Anything unusual (a process
/// name, a float, a missing field, a wrong type) falls back to `json_event_slow`,
/// which says what is wrong.
#[derive(Deserialize)]
struct FastEvent<'a> {
    process: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<FastKey<'a>>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    time: Option<u64>,
}

/// A key: a string, or an integer read as its decimal text.
struct FastKey<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for FastKey<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = FastKey<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FastKey(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FastKey(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(FastKey(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(FastKey(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(FastKey(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn fast_event(e: FastEvent, line: usize) -> Option<RawEvent> {
    let kind = EventType::parse(e.kind.trim_start_matches(':'))?;
    let f_name = e.f.trim_start_matches(':');
    Some(RawEvent { process: Some(e.process), kind, f: Func::parse(f_name), f_name: f_name.to_string(), key: e.key.map(|k| k.0.into_owned()), value: e.value, time: e.time, line })
}

fn json_event(item: &RawValue, line: usize) -> Result<RawEvent, ParseError> {
    if let Ok(e) = serde_json::from_str::<FastEvent>(item.get()) {
        if let Some(raw) = fast_event(e, line) {
            return Ok(raw);
        }
    }
    json_event_slow(item, line)
}

fn json_event_slow(item: &RawValue, line: usize) -> Result<RawEvent, ParseError> {
    let v: serde_json::Value = serde_json::from_str(item.get()).map_err(|e| perr(line + e.line().saturating_sub(1), format!("{e}")))?;
    let serde_json::Value::Object(map) = v else {
        return Err(perr(line, "expected an event object {\"process\": 0, \"type\": \"invoke\", \"f\": \"write\", ...}"));
    };
    let process = match map.get("process") {
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(p) => Some(p),
            None => return Err(perr(line, format!("\"process\" must be a non-negative integer, got {n}"))),
        },
        Some(serde_json::Value::String(s)) if s.trim_start_matches(':') == "nemesis" => None,
        Some(serde_json::Value::String(s)) => match s.parse::<u64>() {
            Ok(p) => Some(p),
            Err(_) => return Err(perr(line, format!("\"process\" must be a non-negative integer, got {s:?}"))),
        },
        Some(other) => return Err(perr(line, format!("\"process\" must be a non-negative integer, got {other}"))),
        None => return Err(perr(line, "the event has no \"process\"; expected \"process\": <client number>")),
    };
    let kind = match map.get("type") {
        Some(serde_json::Value::String(s)) => match EventType::parse(s.trim_start_matches(':')) {
            Some(k) => k,
            None => return Err(perr(line, format!("\"type\" must be invoke, ok, fail or info; got {s:?}"))),
        },
        Some(other) => return Err(perr(line, format!("\"type\" must be invoke, ok, fail or info; got {other}"))),
        None => return Err(perr(line, "the event has no \"type\"; expected \"type\": \"invoke\", \"ok\", \"fail\" or \"info\"")),
    };
    let f_name = match map.get("f") {
        Some(serde_json::Value::String(s)) => s.trim_start_matches(':').to_string(),
        Some(other) => return Err(perr(line, format!("\"f\" must be one of {FUNC_NAMES}; got {other}"))),
        None => return Err(perr(line, format!("the event has no \"f\"; expected \"f\": {FUNC_NAMES}"))),
    };
    let key = match map.get("key") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(perr(line, format!("\"key\" must be a string or an integer, got {other}"))),
    };
    let value = match map.get("value") {
        None => Value::Null,
        Some(v) => json_to_value(v).map_err(|m| perr(line, format!("\"value\": {m}")))?,
    };
    let time = match map.get("time") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(t) => Some(t),
            None => return Err(perr(line, format!("\"time\" must be a non-negative integer, got {n}"))),
        },
        Some(other) => return Err(perr(line, format!("\"time\" must be a non-negative integer, got {other}"))),
    };
    Ok(RawEvent { process, kind, f: Func::parse(&f_name), f_name, key, value, time, line })
}

/// Normalizes raw events (drops the nemesis, splits independent tuples, checks
/// functions) and matches them into operations.
fn finish_events(raw: Vec<RawEvent>) -> Result<History, ParseError> {
    let raw: Vec<RawEvent> = raw.into_iter().filter(|e| e.process.is_some()).collect();
    for e in &raw {
        if e.f.is_none() {
            return Err(perr(e.line, format!("unsupported operation {:?}; expected one of {FUNC_NAMES}", e.f_name)));
        }
    }
    let independent = !raw.is_empty()
        && raw.iter().all(|e| e.key.is_none() && matches!(&e.value, Value::List(v) if v.len() == 2))
        && raw.iter().any(|e| e.f != Some(Func::Cas) || matches!(&e.value, Value::List(v) if matches!(v[1], Value::List(_))));
    let events = raw.into_iter().map(|e| {
        let (key, value) = match (e.key, e.value) {
            (Some(k), v) => (k, v),
            (None, Value::List(mut pair)) if independent => {
                let v = pair.pop().unwrap();
                let k = pair.pop().unwrap();
                let k = match k {
                    Value::Str(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            }
            (None, v) => (String::new(), v),
        };
        SourcedEvent { event: Event { process: e.process.unwrap(), kind: e.kind, f: e.f.unwrap(), key, value, time: e.time }, line: e.line }
    });
    History::from_events(events)
}

// ---------------------------------------------------------------------------
// Porcupine-friendly JSON

/// Reads the Porcupine-friendly JSON form (see the module docs).
pub fn parse_porcupine(text: &str) -> Result<History, ParseError> {
    let text = strip_bom(text);
    if let Some(ops) = fast_list(text, |FastPOp(mut op), line| {
        op.line = Some(line);
        Some(op)
    }) {
        return Ok(History { ops });
    }
    let items = json_items(text)?;
    porcupine_items(text, &items)
}

#[derive(Deserialize)]
struct PIn<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<FastKey<'a>>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    from: Value,
    #[serde(default)]
    to: Value,
}

#[derive(Deserialize, Default)]
struct POut {
    #[serde(default)]
    value: Value,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    unknown: Option<bool>,
}

#[derive(Deserialize)]
struct POp<'a> {
    client_id: u64,
    #[serde(borrow)]
    input: PIn<'a>,
    call: i64,
    #[serde(default)]
    output: Option<POut>,
    #[serde(rename = "return")]
    ret: i64,
}

/// The fast path's Porcupine operation, read field by field into an `Op`
/// (the derived `POp` moved each operation through a dozen copies of itself,
/// which cost more than reading it). Anything the derived reader would refuse
/// (a missing or repeated field, a wrong type) is an error here too, and the
/// slow path then names it with its line; the line is set by the caller.
struct FastPOp(Op);

impl<'de> Deserialize<'de> for FastPOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
        use std::fmt;

        fn set<T, E: serde::de::Error>(slot: &mut Option<T>, v: T) -> Result<(), E> {
            match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(E::custom("a field given twice")),
            }
        }

        struct In<'p, 'de>(&'p mut Option<PIn<'de>>);
        impl<'de> DeserializeSeed<'de> for In<'_, 'de> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de> Visitor<'de> for In<'_, 'de> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an input object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
                let (mut op, mut key, mut value, mut from, mut to) = (None, None, None, None, None);
                while let Some(k) = m.next_key::<&'de str>()? {
                    match k {
                        // Borrowed from the text (a plain Cow<str> would copy it).
                        "op" => set(&mut op, m.next_value::<FastKey<'de>>()?.0)?,
                        "key" => set(&mut key, m.next_value::<Option<FastKey<'de>>>()?)?,
                        "value" => set(&mut value, m.next_value::<Value>()?)?,
                        "from" => set(&mut from, m.next_value::<Value>()?)?,
                        "to" => set(&mut to, m.next_value::<Value>()?)?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let op = op.ok_or_else(|| A::Error::missing_field("op"))?;
                set(self.0, PIn { op, key: key.flatten(), value: value.unwrap_or_default(), from: from.unwrap_or_default(), to: to.unwrap_or_default() })
            }
        }

        struct Out<'p>(&'p mut Option<Option<POut>>);
        impl<'de> DeserializeSeed<'de> for Out<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_option(self)
            }
        }
        impl<'de> Visitor<'de> for Out<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an output object")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
                set(self.0, None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
                set(self.0, None)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
                let (mut value, mut ok, mut unknown) = (None, None, None);
                while let Some(k) = m.next_key::<&'de str>()? {
                    match k {
                        "value" => set(&mut value, m.next_value::<Value>()?)?,
                        "ok" => set(&mut ok, m.next_value::<Option<bool>>()?)?,
                        "unknown" => set(&mut unknown, m.next_value::<Option<bool>>()?)?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                set(self.0, Some(POut { value: value.unwrap_or_default(), ok: ok.flatten(), unknown: unknown.flatten() }))
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FastPOp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Porcupine operation")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FastPOp, A::Error> {
                let (mut client_id, mut input, mut call, mut output, mut ret) = (None, None, None, None, None);
                while let Some(k) = m.next_key::<&'de str>()? {
                    match k {
                        "client_id" => set(&mut client_id, m.next_value::<u64>()?)?,
                        "input" => m.next_value_seed(In(&mut input))?,
                        "call" => set(&mut call, m.next_value::<i64>()?)?,
                        "output" => m.next_value_seed(Out(&mut output))?,
                        "return" => set(&mut ret, m.next_value::<i64>()?)?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let p = POp {
                    client_id: client_id.ok_or_else(|| A::Error::missing_field("client_id"))?,
                    input: input.ok_or_else(|| A::Error::missing_field("input"))?,
                    call: call.ok_or_else(|| A::Error::missing_field("call"))?,
                    output: output.flatten(),
                    ret: ret.ok_or_else(|| A::Error::missing_field("return"))?,
                };
                porcupine_op(p, 0).map(FastPOp).map_err(|e| A::Error::custom(e.message))
            }
        }
        d.deserialize_map(V)
    }
}

fn porcupine_items(_text: &str, items: &[(&RawValue, usize)]) -> Result<History, ParseError> {
    let mut ops = Vec::with_capacity(items.len());
    for (item, line) in items {
        let line = *line;
        let p: POp = serde_json::from_str(item.get()).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            perr(
                line + e.line().saturating_sub(1),
                format!("{msg}; expected {{\"client_id\": 0, \"input\": {{\"op\": \"write\", \"key\": \"x\", \"value\": 1}}, \"call\": 1, \"output\": {{...}}, \"return\": 2}}"),
            )
        })?;
        ops.push(porcupine_op(p, line)?);
    }
    Ok(History { ops })
}

fn porcupine_op(p: POp, line: usize) -> Result<Op, ParseError> {
    let f = Func::parse(&p.input.op).ok_or_else(|| perr(line, format!("unsupported operation {:?}; expected one of {FUNC_NAMES}", p.input.op)))?;
    let key = p.input.key.map(|k| k.0.into_owned()).unwrap_or_default();
    let value = match f {
        Func::Cas => Value::List(vec![p.input.from, p.input.to]),
        f if f.is_read() => Value::Null,
        _ => p.input.value,
    };
    let out = p.output.unwrap_or_default();
    let unknown = out.unknown.unwrap_or(false);
    if p.call < 0 {
        return Err(perr(line, format!("\"call\" must be a non-negative integer, got {}", p.call)));
    }
    if !unknown && p.ret < p.call {
        return Err(perr(line, format!("\"return\" {} is before \"call\" {}", p.ret, p.call)));
    }
    let output = if unknown {
        Value::Null
    } else if f.is_read() {
        out.value
    } else if f == Func::Cas && out.ok == Some(false) {
        Value::Bool(false)
    } else {
        Value::Null
    };
    Ok(Op {
        process: p.client_id,
        key,
        f,
        value,
        output,
        call: p.call as u64,
        ret: if p.ret == PORCUPINE_INFINITY || p.ret < p.call { None } else { Some(p.ret as u64) },
        status: if unknown { Status::Info } else { Status::Ok },
        line: Some(line),
    })
}

// ---------------------------------------------------------------------------
// EDN

fn edn_to_value(e: &Edn) -> Result<Value, String> {
    Ok(match e {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.to_string()),
        Edn::Key(k) => Value::Str(format!(":{k}")),
        Edn::Symbol(s) => Value::Str(s.to_string()),
        Edn::Char(c) => Value::Str(c.to_string()),
        Edn::Vector(items) | Edn::List(items) => Value::List(items.iter().map(edn_to_value).collect::<Result<_, _>>()?),
        Edn::Set(items) => Value::List(items.iter().map(edn_to_value).collect::<Result<_, _>>()?),
        Edn::Tagged(_, inner) => edn_to_value(inner)?,
        Edn::Double(d) if d.0.fract() == 0.0 && d.0.abs() < 9.0e15 => Value::Int(d.0 as i64),
        Edn::Double(d) => return Err(format!("{} is not an integer; values must be nil, booleans, integers, strings or vectors", d.0)),
        Edn::Map(_) => return Err("maps are not supported as values; use nil, a boolean, an integer, a string or a vector".into()),
        other => return Err(format!("{other} is not supported as a value; use nil, a boolean, an integer, a string or a vector")),
    })
}

fn edn_error_message(e: &clojure_reader::error::Error) -> String {
    use clojure_reader::error::Code;
    let what = match &e.code {
        Code::UnexpectedEOF => "the input ended inside a form (a missing closing bracket or quote?)".to_string(),
        Code::UnmatchedDelimiter(c) => format!("unmatched {c:?}"),
        Code::InvalidChar => "an invalid character".to_string(),
        Code::InvalidKeyword => "an invalid keyword".to_string(),
        Code::InvalidNumber => "an invalid number".to_string(),
        Code::InvalidEscape => "an invalid escape in a string".to_string(),
        Code::HashMapDuplicateKey => "a map with a duplicate key".to_string(),
        other => format!("{other:?}"),
    };
    match e.column {
        Some(c) => format!("invalid EDN at column {c}: {what}"),
        None => format!("invalid EDN: {what}"),
    }
}

/// Reads Jepsen EDN: maps one per line, or a vector (or list) of maps.
pub fn parse_edn(text: &str) -> Result<History, ParseError> {
    parse_edn_with(text, true)
}

/// `fast`: plain operation maps are read by [`fast_edn_event`] (false only in
/// tests, to compare it with the full EDN reader).
fn parse_edn_with(text: &str, fast: bool) -> Result<History, ParseError> {
    let text = strip_bom(text);
    // Unwrap an outer vector or list of maps: `[{...} {...}]`.
    let trimmed_start = text.len() - text.trim_start().len();
    let mut body_start = trimmed_start;
    let mut body_end = text.trim_end().len();
    let t = &text[trimmed_start..body_end];
    if (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')) {
        let inner = t[1..].trim_start();
        if inner.starts_with('{') || inner.starts_with('#') || inner.is_empty() || inner.starts_with(']') || inner.starts_with(')') {
            body_start = trimmed_start + 1;
            body_end -= 1;
        }
    }
    let body = &text[..body_end];
    let mut pos = body_start;
    let mut line = 1 + text.as_bytes()[..pos].iter().filter(|&&b| b == b'\n').count();
    let mut raw = Vec::new();
    loop {
        // Skip whitespace, commas and comments, counting lines.
        let bytes = body.as_bytes();
        while pos < body.len() {
            match bytes[pos] {
                b'\n' => {
                    line += 1;
                    pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => pos += 1,
                b';' => {
                    while pos < body.len() && bytes[pos] != b'\n' {
                        pos += 1;
                    }
                }
                _ => break,
            }
        }
        if pos >= body.len() {
            break;
        }
        let slice = &body[pos..];
        let consumed = match fast.then(|| fast_edn_event(slice, line)).flatten() {
            Some((event, consumed)) => {
                raw.push(event);
                consumed
            }
            None => {
                let (edn, rest) = clojure_reader::edn::read(slice).map_err(|e| {
                    perr(line + e.line.unwrap_or(1).saturating_sub(1), format!("{}; expected an operation map {{:process 0, :type :invoke, :f :write, :value 3}}", edn_error_message(&e)))
                })?;
                raw.push(edn_event(&edn, line)?);
                slice.len() - rest.len()
            }
        };
        line += slice.as_bytes()[..consumed].iter().filter(|&&b| b == b'\n').count();
        pos += consumed;
    }
    if raw.is_empty() {
        return Err(perr(1, "no operations found; expected EDN maps like {:process 0, :type :invoke, :f :write, :value 3}"));
    }
    finish_events(raw)
}

fn edn_event(edn: &Edn, line: usize) -> Result<RawEvent, ParseError> {
    let mut e = edn;
    while let Edn::Tagged(_, inner) = e {
        e = inner;
    }
    let Edn::Map(map) = e else {
        return Err(perr(line, format!("expected an operation map {{:process 0, :type :invoke, :f :write, :value 3}}, got {}", short(e))));
    };
    let get = |k: &'static str| map.get(&Edn::Key(Cow::Borrowed(k)));
    let name_of = |v: &Edn| -> Option<String> {
        match v {
            Edn::Key(k) | Edn::Symbol(k) | Edn::Str(k) => Some(k.trim_start_matches(':').to_string()),
            _ => None,
        }
    };
    let process = match get("process") {
        Some(Edn::Int(p)) if *p >= 0 => Some(*p as u64),
        Some(Edn::Key(k)) if k == "nemesis" => None,
        Some(other) => return Err(perr(line, format!(":process must be a non-negative integer or :nemesis, got {}", short(other)))),
        None => return Err(perr(line, "the map has no :process; expected :process <client number>")),
    };
    let kind = match get("type").and_then(name_of) {
        Some(t) => EventType::parse(&t).ok_or_else(|| perr(line, format!(":type must be :invoke, :ok, :fail or :info; got :{t}")))?,
        None => return Err(perr(line, "the map has no :type; expected :type :invoke, :ok, :fail or :info")),
    };
    let f_name = match get("f") {
        Some(v) => name_of(v).ok_or_else(|| perr(line, format!(":f must be a keyword ({FUNC_NAMES}); got {}", short(v))))?,
        None => return Err(perr(line, format!("the map has no :f; expected :f :{}", FUNC_NAMES.replace(", ", ", :").replace(" or ", " or :")))),
    };
    let key = match get("key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) => Some(s.to_string()),
        Some(Edn::Int(i)) => Some(i.to_string()),
        Some(Edn::Key(k)) => Some(k.to_string()),
        Some(other) => return Err(perr(line, format!(":key must be a string, an integer or a keyword, got {}", short(other)))),
    };
    let value = match get("value") {
        None => Value::Null,
        Some(v) => edn_to_value(v).map_err(|m| perr(line, format!(":value: {m}")))?,
    };
    let time = match get("time") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Int(t)) if *t >= 0 => Some(*t as u64),
        Some(other) => return Err(perr(line, format!(":time must be a non-negative integer, got {}", short(other)))),
    };
    Ok(RawEvent { process, kind, f: Func::parse(&f_name), f_name, key, value, time, line })
}

/// A scalar or vector of an operation map, as [`fast_edn_event`] reads it.
#[derive(Debug)]
enum FastEdn<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// A string without escapes.
    Str(&'a str),
    /// A keyword, without its colon.
    Key(&'a str),
    Vector(Vec<FastEdn<'a>>),
}

impl FastEdn<'_> {
    /// As [`edn_to_value`] converts the full reader's value.
    fn value(&self) -> Value {
        match self {
            FastEdn::Nil => Value::Null,
            FastEdn::Bool(b) => Value::Bool(*b),
            FastEdn::Int(i) => Value::Int(*i),
            FastEdn::Str(s) => Value::Str(s.to_string()),
            FastEdn::Key(k) => Value::Str(format!(":{k}")),
            FastEdn::Vector(items) => Value::List(items.iter().map(FastEdn::value).collect()),
        }
    }
}

/// The common case of an EDN operation, read without building a tree of EDN
/// values (the full reader builds a sorted map per operation: most of the time
/// of `lab check` on a small history): a flat map, one or more keyword keys each
/// once, of nil, booleans, integers, strings without escapes, plain keywords,
/// and vectors of these; a valid operation (process, type, f present and
/// well-formed). Returns the event and the bytes read. `None` for anything
/// else (tags, comments, escapes, other numbers, symbols, a mistake): the full
/// reader then reads it, and says what is wrong.
fn fast_edn_event(text: &str, line: usize) -> Option<(RawEvent, usize)> {
    let b = text.as_bytes();
    let sep = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r' | b',') {
            *i += 1;
        }
    };
    let ends = |i: usize| i >= b.len() || matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']');
    fn keyword(b: &[u8], i: &mut usize) -> Option<usize> {
        // After the colon: a plain name ([A-Za-z*!_?] then also digits and +-<>=./).
        let start = *i;
        let name = |c: u8, first: bool| c.is_ascii_alphabetic() || b"*!_?".contains(&c) || (!first && (c.is_ascii_digit() || b"+-<>=./".contains(&c)));
        if !b.get(*i).is_some_and(|&c| name(c, true)) {
            return None;
        }
        while b.get(*i).is_some_and(|&c| name(c, false)) {
            *i += 1;
        }
        Some(start)
    }
    fn scalar<'a>(text: &'a str, i: &mut usize, depth: usize, ends: &dyn Fn(usize) -> bool, sep: &dyn Fn(&mut usize)) -> Option<FastEdn<'a>> {
        let b = text.as_bytes();
        let v = match *b.get(*i)? {
            b'"' => {
                let len = b[*i + 1..].iter().position(|&c| c == b'"' || c == b'\\')?;
                if b[*i + 1 + len] != b'"' {
                    return None;
                }
                let s = &text[*i + 1..*i + 1 + len];
                *i += len + 2;
                FastEdn::Str(s)
            }
            b':' => {
                *i += 1;
                let start = keyword(b, i)?;
                FastEdn::Key(&text[start..*i])
            }
            b'[' if depth < 8 => {
                *i += 1;
                let mut items = Vec::new();
                loop {
                    sep(i);
                    if *b.get(*i)? == b']' {
                        *i += 1;
                        break;
                    }
                    items.push(scalar(text, i, depth + 1, ends, sep)?);
                }
                FastEdn::Vector(items)
            }
            c if c.is_ascii_digit() || c == b'-' => {
                let start = *i;
                *i += (c == b'-') as usize;
                let digits = *i;
                while b.get(*i).is_some_and(u8::is_ascii_digit) {
                    *i += 1;
                }
                // No leading zeros (the full reader has its own ideas of those).
                if *i == digits || (b[digits] == b'0' && *i - digits > 1) {
                    return None;
                }
                FastEdn::Int(text[start..*i].parse().ok()?)
            }
            _ if text[*i..].starts_with("nil") => {
                *i += 3;
                FastEdn::Nil
            }
            _ if text[*i..].starts_with("true") => {
                *i += 4;
                FastEdn::Bool(true)
            }
            _ if text[*i..].starts_with("false") => {
                *i += 5;
                FastEdn::Bool(false)
            }
            _ => return None,
        };
        ends(*i).then_some(v)
    }
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    let mut fields: SmallVec<[(&str, FastEdn); 8]> = SmallVec::new();
    loop {
        sep(&mut i);
        match *b.get(i)? {
            b'}' => break,
            b':' => {
                i += 1;
                let start = keyword(b, &mut i)?;
                let key = &text[start..i];
                if !ends(i) || fields.iter().any(|(k, _)| *k == key) {
                    return None;
                }
                sep(&mut i);
                let value = scalar(text, &mut i, 0, &ends, &sep)?;
                fields.push((key, value));
            }
            _ => return None,
        }
    }
    let get = |k: &str| fields.iter().find(|(name, _)| *name == k).map(|(_, v)| v);
    let name_of = |v: Option<&FastEdn>| match v {
        Some(FastEdn::Key(k) | FastEdn::Str(k)) => Some(k.trim_start_matches(':').to_string()),
        _ => None,
    };
    let process = match get("process")? {
        FastEdn::Int(p) if *p >= 0 => Some(*p as u64),
        FastEdn::Key("nemesis") => None,
        _ => return None,
    };
    let kind = EventType::parse(&name_of(get("type"))?)?;
    let f_name = name_of(get("f"))?;
    let key = match get("key") {
        None | Some(FastEdn::Nil) => None,
        Some(FastEdn::Str(s) | FastEdn::Key(s)) => Some(s.to_string()),
        Some(FastEdn::Int(k)) => Some(k.to_string()),
        Some(_) => return None,
    };
    let value = get("value").map(FastEdn::value).unwrap_or(Value::Null);
    let time = match get("time") {
        None | Some(FastEdn::Nil) => None,
        Some(FastEdn::Int(t)) if *t >= 0 => Some(*t as u64),
        Some(_) => return None,
    };
    Some((RawEvent { process, kind, f: Func::parse(&f_name), f_name, key, value, time, line }, i + 1))
}

fn short(e: &Edn) -> String {
    let s = e.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------
// Jepsen log lines

fn log_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    // ASCII classes only: Unicode \s, \d and \w make an automaton many times
    // larger, built anew at every run (it was a fifth of the time of `lab
    // check` on a small log).
    RE.get_or_init(|| regex::Regex::new(r"(?:^|[ \t\x0B\x0C\r\-])([0-9]+|:nemesis)[ \t]+:(invoke|ok|fail|info)[ \t]+:([A-Za-z][A-Za-z0-9_\-./?!]*)(?:[ \t]+(.*?))?[ \t]*$").expect("valid regex"))
}

/// Reads `jepsen.util` log lines (see the module docs).
pub fn parse_jepsen_log(text: &str) -> Result<History, ParseError> {
    let text = strip_bom(text);
    let re = log_regex();
    let mut raw = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let Some(c) = re.captures(l) else { continue };
        let process = &c[1];
        let kind = EventType::parse(&c[2]).expect("the regex only matches event types");
        let f_name = c[3].to_string();
        let process = if process == ":nemesis" { None } else { Some(process.parse::<u64>().map_err(|_| perr(line, format!("process {process} is too large")))?) };
        let rest = c.get(4).map_or("", |m| m.as_str()).trim();
        let value = if rest.is_empty() || process.is_none() {
            Value::Null
        } else {
            // The value is the first EDN form; an error description may follow it.
            let (edn, _) = clojure_reader::edn::read(rest).map_err(|e| perr(line, format!("{} in the value {rest:?}; expected an EDN value such as nil, 4 or [1 4]", edn_error_message(&e))))?;
            edn_to_value(&edn).map_err(|m| perr(line, format!("the value: {m}")))?
        };
        raw.push(RawEvent { process, kind, f: Func::parse(&f_name), f_name, key: None, value, time: None, line });
    }
    if raw.is_empty() {
        return Err(perr(1, "no operations found; expected Jepsen log lines like `INFO  jepsen.util - 3<TAB>:invoke<TAB>:write<TAB>4`"));
    }
    finish_events(raw)
}

#[cfg(test)]
mod fast_reader {
    use super::*;

    /// What the fast path made of a Porcupine list, and what the long way
    /// (split, then the derived reader) made of it.
    fn both(text: &str) -> (Option<Vec<Op>>, Result<History, ParseError>) {
        let fast = fast_list(text, |FastPOp(mut op), line| {
            op.line = Some(line);
            Some(op)
        });
        let slow = json_items(text).and_then(|items| porcupine_items(text, &items));
        (fast, slow)
    }

    #[test]
    fn the_fast_porcupine_reader_agrees_with_the_derived_one() {
        let text = r#"[
{"client_id": 0, "input": {"op": "write", "key": "a", "value": 1}, "call": 1, "output": {"ok": true, "unknown": false, "value": null}, "return": 2},
{"client_id": 1, "input": {"key": 7, "op": "read"}, "call": 3, "output": {"value": 1}, "return": 4, "extra": {"x": [1, 2]}},
{"client_id": 2, "input": {"op": "cas", "key": "a", "from": 1, "to": 2, "note": "x"}, "call": 5, "output": {"ok": false}, "return": 6},
{"client_id": 3, "input": {"op": "write", "key": null, "value": "s"}, "call": 7, "output": null, "return": 8},
{"return": 10, "call": 9, "input": {"op": "write", "key": "b", "value": [1, [2]]}, "client_id": 4},
{"client_id": 5, "input": {"op": "read", "key": "b"}, "call": 11, "output": {"unknown": true, "ok": null}, "return": -1}
]"#;
        let (fast, slow) = both(text);
        let slow = slow.unwrap();
        assert_eq!(fast.expect("the fast path reads it"), slow.ops);
        assert_eq!(slow.ops.len(), 6);
    }

    /// A Porcupine list of `n` writes and reads, one element per line.
    fn long_list(n: usize, extra: &str) -> String {
        let mut t = String::from("[\n");
        for i in 0..n {
            let op = if i % 2 == 0 { format!("\"op\": \"write\", \"value\": {i}") } else { "\"op\": \"read\"".to_string() };
            let out = if i % 2 == 0 { "null".to_string() } else { format!("{}", i - 1) };
            t.push_str(&format!("{{\"client_id\": {}, \"input\": {{\"key\": \"k{}\", {op}}}, \"call\": {}, \"output\": {{\"value\": {out}}}, \"return\": {}{extra}}}", i % 7, i % 5, 2 * i, 2 * i + 1));
            t.push_str(if i + 1 < n { ",\n" } else { "\n" });
        }
        t.push_str("]\n");
        t
    }

    #[test]
    fn a_long_list_read_in_two_halves_is_read_as_in_one() {
        let text = long_list(5000, "");
        assert!(split_point(text.as_bytes(), 1).is_some(), "long enough to be cut");
        let (fast, slow) = both(&text);
        let slow = slow.unwrap();
        let fast = fast.expect("read quickly");
        assert_eq!(fast, slow.ops);
        assert_eq!(fast.len(), 5000);
        assert_eq!(fast[4999].line, Some(5001));
        // All on one line: nowhere to cut, one pass, the same operations.
        let flat = text.replace('\n', " ");
        assert!(split_point(flat.as_bytes(), 1).is_none());
        let ops = parse_porcupine(&flat).unwrap().ops;
        assert_eq!(ops.iter().map(|o| Op { line: None, ..o.clone() }).collect::<Vec<_>>(), slow.ops.iter().map(|o| Op { line: None, ..o.clone() }).collect::<Vec<_>>());
        // Elements that hold lists of objects over several lines: a cut may
        // fall inside one; the result is the same.
        let nested = long_list(4000, ", \"extra\": [\n{\"a\": 1},\n{\"a\": 2}\n]");
        let (fast, slow) = both(&nested);
        assert_eq!(fast.expect("read quickly"), slow.unwrap().ops);
        // A mistake near the end is found and named by its line.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[4990] = lines[4990].replacen("\"call\":", "\"call\"", 1);
        let broken = lines.join("\n");
        assert!(both(&broken).0.is_none());
        assert_eq!(parse_porcupine(&broken).unwrap_err().line, 4991);
    }

    #[test]
    fn what_the_derived_reader_refuses_the_fast_one_leaves_to_it() {
        for bad in [
            // A field given twice, a missing field, a wrong type, a bad operation, return before call.
            r#"[{"client_id": 0, "client_id": 1, "input": {"op": "read", "key": "a"}, "call": 1, "return": 2}]"#,
            r#"[{"client_id": 0, "input": {"op": "read", "op": "write", "key": "a"}, "call": 1, "return": 2}]"#,
            r#"[{"client_id": 0, "input": {"op": "read", "key": "a"}, "call": 1, "output": {"ok": true, "ok": false}, "return": 2}]"#,
            r#"[{"client_id": 0, "input": {"op": "read", "key": "a"}, "call": 1}]"#,
            r#"[{"client_id": 0, "input": {"key": "a"}, "call": 1, "return": 2}]"#,
            r#"[{"client_id": "x", "input": {"op": "read", "key": "a"}, "call": 1, "return": 2}]"#,
            r#"[{"client_id": 0, "input": {"op": "scan", "key": "a"}, "call": 1, "return": 2}]"#,
            r#"[{"client_id": 0, "input": {"op": "read", "key": "a"}, "call": 3, "return": 2}]"#,
        ] {
            let (fast, slow) = both(bad);
            assert!(fast.is_none(), "the fast path took {bad}");
            let e = slow.expect_err(bad);
            assert_eq!(e.line, 1, "{e}");
            assert!(parse_porcupine(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fast_edn_reader_agrees_with_the_full_one() {
        // Read quickly: the maps of Jepsen's histories and Porcupine's kv logs.
        let quick = [
            "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}",
            "{:process 1, :type :ok, :f :get, :key \"9\", :value \"x 5 0 yx 3 0 y\"}",
            "{:type :ok, :f :write, :value 1, :process 0, :time 20, :index 1, :error nil}",
            "{:process :nemesis, :type :info, :f :start, :value nil}",
            "{:process 2, :type :ok, :f :cas, :value [5 [1 -2]], :key 7}",
            "{:process 2, :type :fail, :f :read, :value [], :key :k, :ok true, :x false}",
            "{:process 3,:type :invoke,:f :put,:key \"é, } ]\",:value :done}",
            "{:process 0 :type :info :f :write :value -0 :time nil}",
        ];
        for map in quick {
            let (event, len) = fast_edn_event(map, 1).unwrap_or_else(|| panic!("not read quickly: {map}"));
            assert_eq!(len, map.len(), "{map}");
            let (edn, _) = clojure_reader::edn::read(map).unwrap();
            assert_eq!(event, edn_event(&edn, 1).unwrap(), "{map}");
        }
        // Left to the full reader: tags, escapes, other numbers, symbols,
        // comments, repeated keys, and operations it refuses.
        for map in [
            "#jepsen.history.Op{:process 0, :type :ok, :f :read, :value 1}",
            "{:process 0, :type :ok, :f :read, :key \"a\\\"b\", :value 1}",
            "{:process 0, :type :ok, :f :read, :value 1.5}",
            "{:process 0, :type :ok, :f :read, :value 12345678901234567890}",
            "{:process 0, :type :ok, :f :read, :value 007}",
            "{:process 0, :type :ok, :f :read, :value 1N}",
            "{:process 0, :type :ok, :f read, :value 1}",
            "{:process 0, :type :ok, :f :read, ; a comment\n :value 1}",
            "{:process 0, :type :ok, :f :read, :value 1, :value 2}",
            "{:process 0, :type :done, :f :read, :value 1}",
            "{:process -1, :type :ok, :f :read, :value 1}",
            "{:type :ok, :f :read, :value 1}",
            "{:process 0, :type :ok, :f :read, :value {:a 1}}",
            "{:process 0, :type :ok, :f :read, :value [1 2}",
            "{:process 0, :type :ok, :f :read, :value nilly}",
            "{:process 0, :type :ok, :f :read, :time -4}",
            "{:process 0, :type :ok, :f :read, :value :-1}",
        ] {
            assert!(fast_edn_event(map, 1).is_none(), "read quickly: {map}");
        }
        // Whole histories: the same result (or the same error, at the same line).
        let histories = [
            "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3}\n{:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value 3}\n",
            "[{:type :invoke, :f :write, :value 1, :process 0, :time 10, :index 0}\n #jepsen.history.Op{:type :ok, :f :write, :value 1, :process 0, :time 20}\n {:type :invoke, :f :read, :value nil, :process 1, :time 30}\n {:type :ok, :f :read, :value 2, :process 1, :time 40}]",
            "{:process 0, :type :invoke, :f :append, :key \"a\", :value \"x\"}\n\n{:process 0,\n :type :ok, :f :append, :key \"a\", :value \"x\"}\n{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"a\", :value \"x\"}\n",
            "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3}\n{:process 0, :type :invoke, :f :write :value}\n",
            "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :done, :f :write, :value 3}\n",
            "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3, :value 4}\n",
        ];
        for text in histories {
            assert_eq!(parse_edn_with(text, true), parse_edn_with(text, false), "{text}");
        }
    }
}
