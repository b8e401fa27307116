//! The history model: operations on keys with real-time intervals.
//!
//! A [`History`] is a list of [`Op`]s. Each operation was invoked by a process
//! (a client) at `call`, completed at `ret`, and either happened (`ok`), definitely
//! did not happen (`fail`: the checker drops it), or may or may not have happened
//! (`info`: a time-out; it stays concurrent with everything after its invocation
//! until the end of the history).
//!
//! Histories are usually recorded or read as *events* (an invocation and a
//! completion per operation, matched by process, as Jepsen does); see
//! [`History::from_events`], [`History::events`] and [`Recorder`].

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// A value read, written, compared or appended.
///
/// Serialized as plain JSON: `null`, `true`, `3`, `"abc"`, `[1, 2]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Str(v) => s.serialize_str(v),
            Value::List(items) => items.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("null, a boolean, an integer, a string or a list of those")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v).map(Value::Int).map_err(|_| E::custom(format!("integer {v} is too large (at most {})", i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Value::Int(v as i64))
                } else {
                    Err(E::custom(format!("{v} is a fraction; values must be null, booleans, integers, strings or lists")))
                }
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Value::List(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<Value, A::Error> {
                Err(de::Error::custom("objects are not supported as values; use null, a boolean, an integer, a string or a list"))
            }
        }
        d.deserialize_any(V)
    }
}

/// What an operation does.
///
/// `read`/`write`/`cas` are register operations; `get`/`put` are their key-value
/// names (same meaning); `append` appends an element to a list, and a `read` or
/// `get` of such a key returns the whole list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    Read,
    Write,
    /// Compare-and-set: the input is `[from, to]`.
    Cas,
    Get,
    Put,
    Append,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Read => "read",
            Func::Write => "write",
            Func::Cas => "cas",
            Func::Get => "get",
            Func::Put => "put",
            Func::Append => "append",
        }
    }

    /// Parses a function name (`read`, `write`, `cas`, `get`, `put`, `append`;
    /// also `compare-and-set`/`compare_and_set`).
    pub fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "read" | "r" => Func::Read,
            "write" | "w" => Func::Write,
            "cas" | "compare-and-set" | "compare_and_set" => Func::Cas,
            "get" => Func::Get,
            "put" | "set" => Func::Put,
            "append" => Func::Append,
            _ => return None,
        })
    }

    /// True for operations that only observe (`read`, `get`).
    pub fn is_read(self) -> bool {
        matches!(self, Func::Read | Func::Get)
    }

    /// True for operations that overwrite the value (`write`, `put`).
    pub fn is_write(self) -> bool {
        matches!(self, Func::Write | Func::Put)
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) const FUNC_NAMES: &str = "read, write, cas, get, put or append";

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It happened, with the recorded output.
    Ok,
    /// It definitely did not happen; the checker ignores it.
    Fail,
    /// Unknown (timed out, or never completed): it may or may not have happened,
    /// at any point after its invocation.
    Info,
}

/// The type of an event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl EventType {
    pub fn parse(name: &str) -> Option<EventType> {
        Some(match name {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One operation: invoked by `process` at `call`, completed at `ret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client that ran it.
    pub process: u64,
    /// The key; the empty string for single-register histories.
    #[serde(default)]
    pub key: String,
    pub f: Func,
    /// The input: the value written or appended, `[from, to]` for `cas`, null for reads.
    #[serde(default)]
    pub value: Value,
    /// The output: for reads the value read (a list for list keys); for `cas`
    /// optionally `false` when the service answered that the register did not
    /// hold `from` (an ok cas with any other output succeeded); otherwise unused.
    #[serde(default)]
    pub output: Value,
    /// Invocation time (nanoseconds or an event index: any monotonic unit).
    pub call: u64,
    /// Completion time; `None` when the operation never completed (then it is `info`).
    #[serde(default)]
    pub ret: Option<u64>,
    pub status: Status,
    /// The source line of the invocation, when parsed from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Op {
    /// A convenience constructor for an `ok` operation.
    pub fn ok(process: u64, key: &str, f: Func, value: impl Into<Value>, output: impl Into<Value>, call: u64, ret: u64) -> Op {
        Op { process, key: key.to_string(), f, value: value.into(), output: output.into(), call, ret: Some(ret), status: Status::Ok, line: None }
    }

    /// A convenience constructor for an `info` (unknown outcome) operation.
    pub fn info(process: u64, key: &str, f: Func, value: impl Into<Value>, call: u64, ret: Option<u64>) -> Op {
        Op { process, key: key.to_string(), f, value: value.into(), output: Value::Null, call, ret, status: Status::Info, line: None }
    }

    /// A convenience constructor for a `fail` operation.
    pub fn fail(process: u64, key: &str, f: Func, value: impl Into<Value>, call: u64, ret: u64) -> Op {
        Op { status: Status::Fail, ret: Some(ret), ..Op::info(process, key, f, value, call, None) }
    }

    /// For `cas`: the `(from, to)` pair of the input.
    pub fn cas_pair(&self) -> Option<(&Value, &Value)> {
        match &self.value {
            Value::List(items) if items.len() == 2 => Some((&items[0], &items[1])),
            _ => None,
        }
    }

    /// Checks that the operation is well formed (a cas has `[from, to]`, a
    /// completion is not before its invocation).
    pub fn validate(&self) -> Result<(), String> {
        if self.f == Func::Cas && self.cas_pair().is_none() {
            return Err(format!("cas needs a value [from, to], got {}", self.value));
        }
        if let Some(ret) = self.ret {
            if ret < self.call {
                return Err(format!("it completed at {ret}, before it was invoked at {}", self.call));
            }
        }
        Ok(())
    }
}

/// How the times of a history read in explanations and witnesses.
///
/// The checker's times are in any monotonic unit (or event positions); a run
/// of lab records nanoseconds from the start of its workload, which read best
/// as seconds: `2.178 s`, `[2.178 s, 2.180 s]` (three decimals, enough to
/// tell operations a millisecond apart), as in the report's timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// The times as they are: `40`, `[40, 50]`.
    #[default]
    Raw,
    /// Nanoseconds from the start of the run, shown in seconds: `2.178 s`.
    Nanos,
}

impl TimeUnit {
    /// One point in time: `40`, or `2.178 s`.
    pub fn at(self, t: u64) -> String {
        match self {
            TimeUnit::Raw => t.to_string(),
            TimeUnit::Nanos => format!("{:.3} s", t as f64 / 1e9),
        }
    }

    /// An operation's interval: `[40, 50]`, `[2.178 s, 2.180 s]`; `[40, ...)`
    /// when it has no known completion.
    pub fn span(self, call: u64, ret: Option<u64>) -> String {
        match ret {
            Some(r) => format!("[{}, {}]", self.at(call), self.at(r)),
            None => format!("[{}, ...)", self.at(call)),
        }
    }
}

/// Describes the key for sentences: `x` or `the register`.
pub(crate) fn key_label(key: &str) -> String {
    if key.is_empty() {
        "the register".to_string()
    } else {
        key.to_string()
    }
}

impl Op {
    /// `process 2: read x => 3 [40, 50]`, with its times in `unit`
    /// (`[2.178 s, 2.180 s]` for [`TimeUnit::Nanos`]).
    pub fn text(&self, unit: TimeUnit) -> String {
        let mut s = format!("process {}: {}", self.process, self.f);
        if !self.key.is_empty() {
            s.push_str(&format!(" {}", self.key));
        }
        match self.f {
            Func::Read | Func::Get => {}
            Func::Cas => match self.cas_pair() {
                Some((from, to)) => s.push_str(&format!(" {from} -> {to}")),
                None => s.push_str(&format!(" {}", self.value)),
            },
            _ => s.push_str(&format!(" {}", self.value)),
        }
        match self.status {
            Status::Ok if self.f.is_read() => s.push_str(&format!(" => {}", self.output)),
            Status::Ok if self.f == Func::Cas && self.output == Value::Bool(false) => s.push_str(" => false"),
            Status::Ok => s.push_str(" => ok"),
            Status::Fail => s.push_str(" => fail"),
            Status::Info => s.push_str(" => unknown (timed out)"),
        }
        let ret = if self.status == Status::Info { None } else { self.ret };
        s.push(' ');
        s.push_str(&unit.span(self.call, ret));
        s
    }
}

impl fmt::Display for Op {
    /// `process 2: read x => 3 [40, 50]` (times as they are; see [`Op::text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(TimeUnit::Raw))
    }
}

/// One event of an event history: an invocation, or a completion matched to the
/// process's pending invocation. This is the element of the project's JSON format
/// (see [`crate::checker::formats`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: Func,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
}

/// A history of operations. Serializes to the project's JSON event format
/// (`{"ops": [events...]}`, see [`crate::checker::formats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Op>,
}

/// An event with the source line it came from; input of [`History::from_events`].
#[derive(Clone, Debug)]
pub struct SourcedEvent {
    pub event: Event,
    /// 1-based source line, or 0 when not from a file.
    pub line: usize,
}

/// An error reading a history: the 1-based line of the offending input (1 for
/// problems with the whole input) and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl History {
    pub fn new(ops: Vec<Op>) -> History {
        History { ops }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The distinct keys, in order of first appearance.
    pub fn keys(&self) -> Vec<&str> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut keys = Vec::new();
        for op in &self.ops {
            if seen.insert(op.key.as_str()) {
                keys.push(op.key.as_str());
            }
        }
        keys
    }

    /// Builds a history from an event list: each completion (`ok`, `fail`, `info`)
    /// is matched with the pending invocation of the same process. Times are the
    /// events' `time` when every event has one, else the events' positions.
    /// An invocation never completed is `info`.
    pub fn from_events(events: impl IntoIterator<Item = SourcedEvent>) -> Result<History, ParseError> {
        let events: Vec<SourcedEvent> = events.into_iter().collect();
        let use_time = !events.is_empty() && events.iter().all(|e| e.event.time.is_some());
        let mut pending: rustc_hash::FxHashMap<u64, usize> = rustc_hash::FxHashMap::default();
        let mut ops: Vec<Op> = Vec::with_capacity(events.len() / 2 + 1);
        let mut last_time = 0u64;
        for (index, SourcedEvent { event, line }) in events.into_iter().enumerate() {
            let time = if use_time { event.time.unwrap() } else { index as u64 };
            let err = |message: String| ParseError { line, message };
            if use_time && time < last_time {
                return Err(err(format!("time {time} is earlier than the previous event's time {last_time}; events must be in time order")));
            }
            last_time = time;
            match event.kind {
                EventType::Invoke => {
                    if let Some(&open) = pending.get(&event.process) {
                        let o = &ops[open];
                        return Err(err(format!(
                            "process {} invoked {} while its {} invoked{} has not completed; expected an ok, fail or info event for it first",
                            event.process,
                            event.f,
                            o.f,
                            o.line.map(|l| format!(" on line {l}")).unwrap_or_default()
                        )));
                    }
                    if event.f == Func::Cas && !matches!(&event.value, Value::List(v) if v.len() == 2) {
                        return Err(err(format!("cas needs a value [from, to], got {}", event.value)));
                    }
                    pending.insert(event.process, ops.len());
                    ops.push(Op {
                        process: event.process,
                        key: event.key,
                        f: event.f,
                        value: event.value,
                        output: Value::Null,
                        call: time,
                        ret: None,
                        status: Status::Info,
                        line: (line > 0).then_some(line),
                    });
                }
                kind => {
                    let Some(open) = pending.remove(&event.process) else {
                        return Err(err(format!("process {} completed {} ({}) but has no pending invocation; expected an invoke event before it", event.process, event.f, kind.name())));
                    };
                    let op = &mut ops[open];
                    if op.f != event.f {
                        return Err(err(format!("process {} completed {} but its pending invocation is {}; expected {} ({}) here", event.process, event.f, op.f, op.f, kind.name())));
                    }
                    if !event.key.is_empty() && event.key != op.key {
                        return Err(err(format!("process {} completed {} on key {:?} but invoked it on key {:?}", event.process, event.f, event.key, op.key)));
                    }
                    op.ret = Some(time);
                    op.status = match kind {
                        EventType::Ok => Status::Ok,
                        EventType::Fail => Status::Fail,
                        _ => Status::Info,
                    };
                    if kind == EventType::Ok {
                        if matches!(op.f, Func::Write | Func::Put | Func::Append) && op.value.is_null() && !event.value.is_null() {
                            // Some recorders only put the value on the completion.
                            op.value = event.value.clone();
                        }
                        op.output = match op.f {
                            // A read's invocation carries no value; its completion the value read.
                            Func::Read | Func::Get => event.value,
                            // A cas answered with a boolean: false means it did not swap.
                            Func::Cas if matches!(event.value, Value::Bool(_)) => event.value,
                            _ => Value::Null,
                        };
                    }
                }
            }
        }
        Ok(History { ops })
    }

    /// The event list of this history, in time order (invocations before
    /// completions at equal times), with `time` set.
    pub fn events(&self) -> Vec<Event> {
        // (time, completion?, op index)
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(self.ops.len() * 2);
        for (i, op) in self.ops.iter().enumerate() {
            order.push((op.call, false, i));
            if let Some(ret) = op.ret {
                order.push((ret, true, i));
            }
        }
        order.sort_unstable();
        order
            .into_iter()
            .map(|(time, completion, i)| {
                let op = &self.ops[i];
                if !completion {
                    Event { process: op.process, kind: EventType::Invoke, f: op.f, key: op.key.clone(), value: if op.f.is_read() { Value::Null } else { op.value.clone() }, time: Some(time) }
                } else {
                    let kind = match op.status {
                        Status::Ok => EventType::Ok,
                        Status::Fail => EventType::Fail,
                        Status::Info => EventType::Info,
                    };
                    let value = match (op.f, op.status) {
                        (f, Status::Ok) if f.is_read() => op.output.clone(),
                        (Func::Cas, Status::Ok) if matches!(op.output, Value::Bool(_)) => op.output.clone(),
                        (f, _) if f.is_read() => Value::Null,
                        _ => op.value.clone(),
                    };
                    Event { process: op.process, kind, f: op.f, key: op.key.clone(), value, time: Some(time) }
                }
            })
            .collect()
    }
}

impl Serialize for History {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("ops", &self.events())?;
        map.end()
    }
}

/// Records a history as it happens, from any number of threads or tasks.
///
/// ```
/// use lab::checker::{Func, Recorder, Value};
/// let rec = Recorder::new();
/// let h = rec.invoke(0, "x", Func::Write, Value::Int(1));
/// rec.ok(h, Value::Null);
/// let h = rec.invoke(1, "x", Func::Read, Value::Null);
/// rec.ok(h, Value::Int(1));
/// let history = rec.history().unwrap();
/// assert_eq!(history.ops.len(), 2);
/// ```
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

/// A pending invocation returned by [`Recorder::invoke`]; pass it to
/// [`Recorder::ok`], [`Recorder::fail`] or [`Recorder::info`].
#[derive(Debug)]
#[must_use = "complete the operation with ok, fail or info (an operation never completed counts as info)"]
pub struct Pending {
    process: u64,
    key: String,
    f: Func,
    value: Value,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { start: Instant::now(), events: Mutex::new(Vec::new()) }
    }

    fn push(&self, process: u64, kind: EventType, f: Func, key: &str, value: Value) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        // The clock is read under the lock so the event order is the time order.
        let time = self.start.elapsed().as_nanos() as u64;
        events.push(Event { process, kind, f, key: key.to_string(), value, time: Some(time) });
    }

    /// Records an invocation; call it right before sending the request.
    pub fn invoke(&self, process: u64, key: impl Into<String>, f: Func, value: Value) -> Pending {
        let key = key.into();
        let shown = if f.is_read() { Value::Null } else { value.clone() };
        self.push(process, EventType::Invoke, f, &key, shown);
        Pending { process, key, f, value }
    }

    /// Records a successful completion; `output` is the value read for reads
    /// (`Value::Bool(false)` for a cas the service refused), ignored otherwise.
    pub fn ok(&self, p: Pending, output: Value) {
        let value = if p.f.is_read() || (p.f == Func::Cas && matches!(output, Value::Bool(_))) { output } else { p.value };
        self.push(p.process, EventType::Ok, p.f, &p.key, value);
    }

    /// Records that the operation definitely did not happen (e.g. a refused cas,
    /// or an error the service answered before doing anything).
    pub fn fail(&self, p: Pending) {
        let value = if p.f.is_read() { Value::Null } else { p.value };
        self.push(p.process, EventType::Fail, p.f, &p.key, value);
    }

    /// Records that the outcome is unknown (a time-out, a dropped connection).
    pub fn info(&self, p: Pending) {
        let value = if p.f.is_read() { Value::Null } else { p.value };
        self.push(p.process, EventType::Info, p.f, &p.key, value);
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The history so far (pending invocations count as `info`). Fails only
    /// when the caller broke the protocol: two concurrent invocations by the
    /// same process id (the error's line is the event's 1-based position).
    pub fn history(&self) -> Result<History, ParseError> {
        let events = self.events().into_iter().enumerate().map(|(i, event)| SourcedEvent { event, line: i + 1 });
        History::from_events(events)
    }
}
