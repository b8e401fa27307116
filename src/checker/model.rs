//! Sequential models, compiled to integers for the search.
//!
//! Every model state is a `u32`:
//! - the register model interns values (`null` is 0, the initial value);
//! - the list-append model interns lists in a trie (the empty list, also what a
//!   read of a missing key returns as `null`, is 0; appending element `e` to
//!   state `s` is the child `(s, e)`), so comparing a read's list with the state
//!   is one integer comparison and an append is one hash lookup;
//! - the string-append model (a key-value store whose `append` concatenates
//!   strings, `get` returning the whole string, `""` or null when empty)
//!   hash-conses texts: a state is a text, kept as (the state it extends, the
//!   piece appended) with its length and a polynomial hash, so appending piece
//!   `e` to state `s` costs one hash computation and one lookup whatever the
//!   piece's length (then it is memoized), and equal texts are one state
//!   whatever pieces made them (two states whose hashes and lengths agree are
//!   compared byte by byte before they are taken as one).

use rustc_hash::FxHashMap;

use super::history::{Func, History, Op, Status, Value};

pub(crate) const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The state must equal `a`.
    Read,
    /// The state becomes `a`.
    Write,
    /// If the state equals `a` it becomes `b`; otherwise the op cannot happen.
    Cas,
    /// An ok cas that answered "did not swap": the state must differ from `a`.
    CasRefused,
    /// The state becomes the child of the state by element `a` (list model).
    Append,
}

/// A compiled operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct COp {
    pub kind: Kind,
    pub a: u32,
    pub b: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A register: read, write, compare-and-set (get/put are read/write).
    Register,
    /// A list: append an element; a read returns the whole list.
    ListAppend,
    /// A string: append concatenates; a read returns the whole string.
    StringAppend,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::ListAppend => "list-append",
            ModelKind::StringAppend => "string-append",
        }
    }
}

/// The mutable part of a model during a search (the list trie).
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub kind: ModelKind,
    /// List model: (state << 32 | element) -> child state.
    children: FxHashMap<u64, u32>,
    /// List model: state -> (parent state, element); the root is (NONE, NONE).
    parents: Vec<(u32, u32)>,
    /// List model, optional: state -> the only element that may be appended
    /// next (NONE: any). See [`Model::pin_order`].
    next_required: Vec<u32>,
    /// String model: every text state (the root 0 is the empty text).
    texts: Vec<TextNode>,
    /// String model: (hash, length) -> a state with that text; the others with
    /// the same hash and length follow through [`TextNode::same_hash`].
    text_index: FxHashMap<(u64, u32), u32>,
    /// String model: the text of each piece (appended, or a whole text given
    /// by a put or read), with its hash and BASE^length.
    elem_text: Vec<std::sync::Arc<str>>,
    elem_hash: Vec<(u64, u64)>,
    elem_ids: FxHashMap<std::sync::Arc<str>, u32>,
}

/// A text: the text of `parent` followed by the piece `elem`.
#[derive(Clone, Copy, Debug)]
struct TextNode {
    parent: u32,
    elem: u32,
    len: u32,
    hash: u64,
    /// Another state with the same hash and length (a different text), or NONE.
    same_hash: u32,
}

/// Polynomial hashing of texts modulo the Mersenne prime 2^61 - 1, so that the
/// hash of a concatenation follows from the hashes of its parts:
/// h(a + b) = h(a) * BASE^|b| + h(b).
mod text_hash {
    const P: u64 = (1 << 61) - 1;
    const BASE: u64 = 0x1f3d_5b79_a4c2_e681 % P;

    pub fn mul(a: u64, b: u64) -> u64 {
        let x = u128::from(a) * u128::from(b);
        let r = (x as u64 & P) + (x >> 61) as u64;
        if r >= P {
            r - P
        } else {
            r
        }
    }

    pub fn add(a: u64, b: u64) -> u64 {
        let r = a + b;
        if r >= P {
            r - P
        } else {
            r
        }
    }

    /// (hash, BASE^len) of a text.
    pub fn of(t: &[u8]) -> (u64, u64) {
        t.iter().fold((0, 1), |(h, pow), &b| (add(mul(h, BASE), u64::from(b) + 1), mul(pow, BASE)))
    }
}

impl Model {
    fn new(kind: ModelKind) -> Model {
        Model {
            kind,
            children: FxHashMap::default(),
            parents: vec![(NONE, NONE)],
            next_required: Vec::new(),
            texts: vec![TextNode { parent: NONE, elem: NONE, len: 0, hash: 0, same_hash: NONE }],
            text_index: FxHashMap::default(),
            elem_text: Vec::new(),
            elem_hash: Vec::new(),
            elem_ids: FxHashMap::default(),
        }
    }

    /// String model: the text of a state.
    fn text_of(&self, mut s: u32) -> Vec<u8> {
        let mut pieces = Vec::new();
        while s != 0 {
            let n = self.texts[s as usize];
            pieces.push(n.elem);
            s = n.parent;
        }
        pieces.iter().rev().flat_map(|&e| self.elem_text[e as usize].as_bytes().iter().copied()).collect()
    }

    /// String model: the state of piece `elem` appended to the text of `from`.
    fn text_append(&mut self, from: u32, elem: u32) -> u32 {
        let (piece_hash, pow) = self.elem_hash[elem as usize];
        let piece_len = self.elem_text[elem as usize].len() as u32;
        if piece_len == 0 {
            return from;
        }
        let base = self.texts[from as usize];
        let hash = text_hash::add(text_hash::mul(base.hash, pow), piece_hash);
        let len = base.len + piece_len;
        let head = self.text_index.get(&(hash, len)).copied().unwrap_or(NONE);
        if head != NONE {
            // The same hash and length: most likely the same text made of
            // other pieces; compared to be sure.
            let mut text = self.text_of(from);
            text.extend_from_slice(self.elem_text[elem as usize].as_bytes());
            let mut s = head;
            while s != NONE {
                if self.text_of(s) == text {
                    return s;
                }
                s = self.texts[s as usize].same_hash;
            }
        }
        let id = self.texts.len() as u32;
        self.texts.push(TextNode { parent: from, elem, len, hash, same_hash: head });
        self.text_index.insert((hash, len), id);
        id
    }

    /// String model: the state of a text.
    fn text_id(&mut self, t: &str) -> u32 {
        let e = self.elem_id(t);
        self.text_append(0, e)
    }

    /// String model: the element id of an appended string.
    fn elem_id(&mut self, t: &str) -> u32 {
        if let Some(&i) = self.elem_ids.get(t) {
            return i;
        }
        let rc: std::sync::Arc<str> = t.into();
        self.elem_hash.push(text_hash::of(t.as_bytes()));
        self.elem_text.push(rc.clone());
        self.elem_ids.insert(rc, (self.elem_text.len() - 1) as u32);
        (self.elem_text.len() - 1) as u32
    }

    #[inline]
    fn child(&mut self, state: u32, elem: u32) -> u32 {
        let k = (u64::from(state) << 32) | u64::from(elem);
        if let Some(&c) = self.children.get(&k) {
            return c;
        }
        let c = if self.kind == ModelKind::StringAppend {
            self.text_append(state, elem)
        } else {
            self.parents.push((state, elem));
            (self.parents.len() - 1) as u32
        };
        self.children.insert(k, c);
        c
    }

    /// Applies `op` to `state`; `None` if the op cannot happen in that state.
    #[inline(always)]
    pub fn step(&mut self, state: u32, op: COp) -> Option<u32> {
        match op.kind {
            Kind::Read => (state == op.a).then_some(state),
            Kind::Write => Some(op.a),
            Kind::Cas => (state == op.a).then_some(op.b),
            Kind::CasRefused => (state != op.a).then_some(state),
            Kind::Append => {
                if let Some(&req) = self.next_required.get(state as usize) {
                    if req != NONE && req != op.a {
                        return None;
                    }
                }
                Some(self.child(state, op.a))
            }
        }
    }

    /// List model without writes of whole lists: every state is a prefix of the
    /// final list, and so is every list read; so the final list starts with the
    /// longest list read, and the k-th append linearized must append its k-th
    /// element. Pins that order (exact: it removes only orders that no read
    /// allows), which keeps the search linear when few reads pin the order.
    pub fn pin_order(&mut self, longest_read: u32) {
        let mut path = Vec::new();
        let mut s = longest_read;
        while s != 0 && s != NONE {
            let (parent, elem) = self.parents[s as usize];
            path.push((parent, elem));
            s = parent;
        }
        self.next_required = vec![NONE; self.parents.len()];
        for (parent, elem) in path {
            self.next_required[parent as usize] = elem;
        }
    }

    /// The number of elements of a list state.
    pub fn depth(&self, mut s: u32) -> usize {
        let mut d = 0;
        while s != 0 && s != NONE {
            s = self.parents[s as usize].0;
            d += 1;
        }
        d
    }

    fn intern_list(&mut self, elems: &[u32]) -> u32 {
        elems.iter().fold(0, |s, &e| self.child(s, e))
    }
}

/// A compiled operation of one key, ready for the search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SOp {
    /// Index of the operation in the history.
    pub orig: u32,
    /// Index of the operation in `Compiled::ops` (and `needs`, `gives`).
    pub idx: u32,
    pub call: u64,
    /// `u64::MAX` for info operations.
    pub ret: u64,
    pub info: bool,
    pub cop: COp,
}

/// The operations of one key, compiled.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub model: Model,
    /// The operations that matter, in history order: fail operations and reads
    /// with unknown outcome are left out.
    pub ops: Vec<SOp>,
    /// Per op (parallel to `ops`): the value tokens the op must have observed
    /// (register: the value read or compared; list: the elements read). Used to
    /// keep a witness honest: an op stays with every op that could have written
    /// what it saw.
    pub needs: Vec<Needs>,
    /// Per op: the value token it writes or appends (NONE if none).
    pub gives: Vec<u32>,
    /// List model: the writes of whole lists (they can give any token).
    pub list_writes: Vec<u32>,
}

/// The tokens one operation needs: most need none or one, kept inline
/// (a heap allocation per read cost more than the rest of compiling it).
pub type Needs = smallvec::SmallVec<[u32; 2]>;

struct Interner {
    ids: FxHashMap<Value, u32>,
}

impl Interner {
    fn new() -> Interner {
        let mut ids = FxHashMap::default();
        ids.insert(Value::Null, 0);
        Interner { ids }
    }
    fn id(&mut self, v: &Value) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(v.clone(), id);
        id
    }
}

/// The model a key's operations need: list-append when any op appends, or
/// reads or writes a list.
pub(crate) fn model_kind(ops: &[&Op]) -> ModelKind {
    let list = |v: &Value| matches!(v, Value::List(_));
    if ops.iter().any(|op| op.f == Func::Append && matches!(op.value, Value::Str(_))) {
        ModelKind::StringAppend
    } else if ops.iter().any(|op| op.f == Func::Append || (op.f.is_read() && op.status == Status::Ok && list(&op.output)) || (op.f.is_write() && list(&op.value))) {
        ModelKind::ListAppend
    } else {
        ModelKind::Register
    }
}

/// Compiles the operations `indices` (all of one key) of `history`.
pub(crate) fn compile(history: &History, indices: &[u32]) -> Result<Compiled, String> {
    let ops: Vec<&Op> = indices.iter().map(|&i| &history.ops[i as usize]).collect();
    let kind = model_kind(&ops);
    let mut model = Model::new(kind);
    let mut values = Interner::new();
    let mut out = Vec::with_capacity(ops.len());
    let mut needs = Vec::with_capacity(ops.len());
    let mut gives = Vec::with_capacity(ops.len());
    let mut list_writes = Vec::new();
    // String model: (index in `out`, text id) of the reads, (token, text) of the pieces written.
    let mut text_reads: Vec<(usize, String)> = Vec::new();
    let mut pieces: Vec<(u32, String)> = Vec::new();
    let describe = |op: &Op| {
        let line = op.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        format!("{op}{line}")
    };
    for (&orig, op) in indices.iter().zip(&ops) {
        op.validate().map_err(|e| format!("{}: {e}", describe(op)))?;
        let info = match op.status {
            Status::Fail => continue,
            Status::Info => true,
            Status::Ok => false,
        };
        let (cop, need, give) = match (kind, op.f) {
            (_, f) if f.is_read() => {
                if info {
                    // A read with an unknown result constrains nothing.
                    continue;
                }
                match kind {
                    ModelKind::Register => {
                        let v = values.id(&op.output);
                        (COp { kind: Kind::Read, a: v, b: 0 }, if v == 0 { Needs::new() } else { smallvec::smallvec![v] }, NONE)
                    }
                    ModelKind::ListAppend => {
                        let elems: Vec<u32> = match &op.output {
                            Value::Null => vec![],
                            Value::List(items) => items.iter().map(|e| values.id(e)).collect(),
                            other => return Err(format!("{}: a {} of a key that is appended to must return a list (or null), got {other}", describe(op), op.f)),
                        };
                        let s = model.intern_list(&elems);
                        let mut need: Needs = elems.iter().copied().collect();
                        need.sort_unstable();
                        need.dedup();
                        (COp { kind: Kind::Read, a: s, b: 0 }, need, NONE)
                    }
                    ModelKind::StringAppend => {
                        let text = match &op.output {
                            Value::Null => "",
                            Value::Str(t) => t.as_str(),
                            other => return Err(format!("{}: a {} of a key that is appended to with strings must return a string (or null), got {other}", describe(op), op.f)),
                        };
                        let a = model.text_id(text);
                        // What it observed: every piece written that occurs in its text
                        // (a superset of the pieces it really saw).
                        text_reads.push((out.len(), text.to_string()));
                        (COp { kind: Kind::Read, a, b: 0 }, Needs::new(), NONE)
                    }
                }
            }
            (ModelKind::Register, Func::Write | Func::Put) => {
                let v = values.id(&op.value);
                (COp { kind: Kind::Write, a: v, b: 0 }, Needs::new(), v)
            }
            (ModelKind::Register, Func::Cas) => {
                let (from, to) = op.cas_pair().expect("validated");
                let (a, b) = (values.id(from), values.id(to));
                if !info && op.output == Value::Bool(false) {
                    (COp { kind: Kind::CasRefused, a, b }, Needs::new(), NONE)
                } else {
                    let need = if info || a == 0 { Needs::new() } else { smallvec::smallvec![a] };
                    (COp { kind: Kind::Cas, a, b }, need, b)
                }
            }
            (ModelKind::ListAppend, Func::Append) => {
                let e = values.id(&op.value);
                (COp { kind: Kind::Append, a: e, b: 0 }, Needs::new(), e)
            }
            (ModelKind::ListAppend, Func::Write | Func::Put) => {
                let elems: Vec<u32> = match &op.value {
                    Value::Null => vec![],
                    Value::List(items) => items.iter().map(|e| values.id(e)).collect(),
                    other => return Err(format!("{}: a key that is appended to holds a list; a {} must write a list (or null), got {other}", describe(op), op.f)),
                };
                let s = model.intern_list(&elems);
                list_writes.push(out.len() as u32);
                (COp { kind: Kind::Write, a: s, b: 0 }, Needs::new(), NONE)
            }
            (ModelKind::StringAppend, Func::Append | Func::Write | Func::Put) => {
                let text = match &op.value {
                    Value::Null => "",
                    Value::Str(t) => t.as_str(),
                    other => return Err(format!("{}: a key that is appended to with strings holds a string; a {} must give a string, got {other}", describe(op), op.f)),
                };
                let e = model.elem_id(text);
                let piece = values.id(&Value::Str(text.to_string()));
                pieces.push((piece, text.to_string()));
                if op.f == Func::Append {
                    (COp { kind: Kind::Append, a: e, b: 0 }, Needs::new(), piece)
                } else {
                    let s = model.text_id(text);
                    (COp { kind: Kind::Write, a: s, b: 0 }, Needs::new(), piece)
                }
            }
            (ModelKind::StringAppend, f) => return Err(format!("{}: {f} is not supported on a key that is appended to with strings (use append, put and get)", describe(op))),
            (ModelKind::ListAppend, f) => return Err(format!("{}: {f} is not supported on a key that is appended to (use append and read/get)", describe(op))),
            (ModelKind::Register, Func::Append) => {
                unreachable!("a key with an append uses the list model")
            }
            (ModelKind::Register, _) => unreachable!(),
        };
        out.push(SOp { orig, idx: out.len() as u32, call: op.call, ret: if info { u64::MAX } else { op.ret.unwrap_or(u64::MAX) }, info, cop });
        needs.push(if info { Needs::new() } else { need });
        gives.push(give);
    }
    pieces.sort_unstable();
    pieces.dedup();
    if text_reads.len().saturating_mul(pieces.len()) > 4_000_000 {
        // Too many to match: every put and append may be a source of any get.
        list_writes = (0..out.len() as u32).filter(|&i| gives[i as usize] != NONE).collect();
    } else {
        // Every piece in every read, in one pass over each read's text.
        let pieces: Vec<&(u32, String)> = pieces.iter().filter(|(_, p)| !p.is_empty()).collect();
        if !pieces.is_empty() && !text_reads.is_empty() {
            let matcher = aho_corasick::AhoCorasick::new(pieces.iter().map(|(_, p)| p.as_str())).map_err(|e| format!("matching appended strings: {e}"))?;
            for (i, t) in text_reads {
                let mut found: Needs = matcher.find_overlapping_iter(t.as_str()).map(|m| pieces[m.pattern().as_usize()].0).collect();
                found.sort_unstable();
                found.dedup();
                needs[i] = found;
            }
        }
    }
    Ok(Compiled { model, ops: out, needs, gives, list_writes })
}

/// Removes what is certain about operations with unknown outcome (exact, not a
/// heuristic), since each one otherwise doubles the states to search:
/// - an info op whose value nobody observed is dropped: taking it out of any
///   linearization changes only states that nobody reads (unless some cas was
///   refused, which observes "not this value": then nothing is dropped);
/// - an info op that is the only possible source of a value some ok op observed
///   must have happened before every such observer finished: it becomes an ok
///   op that returns when the first observer returned.
///
/// Returns None when nothing changes.
pub(crate) fn reduce_info(ops: &[SOp], comp: &Compiled) -> Option<Vec<SOp>> {
    if !ops.iter().any(|o| o.info) {
        return None;
    }
    if comp.model.kind == ModelKind::ListAppend && ops.iter().any(|o| o.cop.kind == Kind::Write) {
        // A write of a whole list could be the source of any element.
        return None;
    }
    if comp.model.kind == ModelKind::StringAppend {
        // What a get observed is known only up to substrings: nothing is certain.
        return None;
    }
    let refused = ops.iter().any(|o| o.cop.kind == Kind::CasRefused);
    // token -> (ops that give it, earliest return of an ok op that observed it,
    // whether an info cas may observe it)
    let mut wanted: FxHashMap<u32, (u32, u64, bool)> = FxHashMap::default();
    for o in ops.iter().filter(|o| o.info) {
        let g = comp.gives[o.idx as usize];
        if g != NONE && g != 0 {
            wanted.insert(g, (0, u64::MAX, false));
        }
    }
    if wanted.is_empty() {
        return None;
    }
    for o in ops {
        if let Some(e) = wanted.get_mut(&comp.gives[o.idx as usize]) {
            e.0 += 1;
        }
        if !o.info {
            for t in &comp.needs[o.idx as usize] {
                if let Some(e) = wanted.get_mut(t) {
                    e.1 = e.1.min(o.ret);
                }
            }
        } else if o.cop.kind == Kind::Cas {
            // If it happens, it saw its `from`.
            if let Some(e) = wanted.get_mut(&o.cop.a) {
                e.2 = true;
            }
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    let mut changed = false;
    for o in ops {
        if o.info {
            if let Some(&(sources, observed_by, maybe_observed)) = wanted.get(&comp.gives[o.idx as usize]) {
                if observed_by == u64::MAX {
                    if !refused && !maybe_observed {
                        changed = true;
                        continue;
                    }
                } else if sources == 1 {
                    changed = true;
                    out.push(SOp { info: false, ret: observed_by.max(o.call), ..*o });
                    continue;
                }
            }
        }
        out.push(*o);
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_are_one_state_whatever_pieces_made_them() {
        let mut m = Model::new(ModelKind::StringAppend);
        let [ab, c, a, bc, empty] = ["ab", "c", "a", "bc", ""].map(|t| m.elem_id(t));
        let abc1 = {
            let s = m.child(0, ab);
            m.child(s, c)
        };
        let abc2 = {
            let s = m.child(0, a);
            m.child(s, bc)
        };
        assert_eq!(abc1, abc2);
        assert_eq!(m.text_id("abc"), abc1);
        assert_eq!(m.text_of(abc1), b"abc");
        // Appending nothing changes nothing; the empty text is the root.
        assert_eq!(m.child(abc1, empty), abc1);
        assert_eq!(m.text_id(""), 0);
        // Other texts of the same length are other states.
        let acb = {
            let s = m.child(0, a);
            m.child(s, c)
        };
        let b = m.elem_id("b");
        let acb = m.child(acb, b);
        assert_ne!(acb, abc1);
        assert_eq!(m.text_of(acb), b"acb");
    }

    #[test]
    fn texts_with_the_same_hash_are_told_apart() {
        // Two different texts filed under one (hash, length) entry: the second
        // is chained behind the first and each is found by its own text.
        let mut m = Model::new(ModelKind::StringAppend);
        let x = m.text_id("xy");
        let key = (m.texts[x as usize].hash, 2);
        let y = m.text_id("yx");
        // Pretend "yx" hashed like "xy": re-file it under that entry.
        m.texts[y as usize].hash = key.0;
        m.texts[y as usize].same_hash = x;
        m.text_index.insert(key, y);
        // Appending "y" to "x" gives "xy", found behind "yx" in the chain.
        let xs = m.text_id("x");
        let y_elem = m.elem_id("y");
        assert_eq!(m.child(xs, y_elem), x);
        assert_eq!(m.text_of(y), b"yx");
    }
}
