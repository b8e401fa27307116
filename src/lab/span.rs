//! Positions of keys and values in a YAML file, by path (`service.env.PORT`,
//! `stages[1].checks[0].steps[2]`), so that validation errors found after
//! deserializing can still point at file:line:column. The same pass finds
//! what serde_yaml reports without a place: keys given twice in a mapping,
//! and aliases that expand past its repetition limit ("billion laughs").

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Byte offset, 1-based line and column of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos { offset: m.index(), line: m.line(), column: m.col() + 1 }
    }
}

/// Path -> position of the value at that path (for mapping entries, the key's position
/// is stored under `path` + `#key`).
#[derive(Debug, Default)]
pub struct SpanIndex {
    map: HashMap<String, Pos>,
    duplicates: Vec<DuplicateKey>,
    aliases: Vec<Alias>,
    /// Events as serde_yaml counts them (nodes and the ends of collections).
    events: usize,
}

/// A key written a second time in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub key: String,
    /// The mapping's path ("" for the top level).
    pub path: String,
    /// Where the key is first, and where again.
    pub first: Pos,
    pub again: Pos,
}

/// An alias (`*name`) as written in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub pos: Pos,
    /// How many alias jumps reading it takes: itself and the aliases inside what it names, expanded.
    pub jumps: u64,
}

/// serde_yaml gives up ("repetition limit exceeded") after this many alias jumps per event of the document.
pub const REPETITION_LIMIT: u64 = 100;

enum Frame {
    Map { path: String, pending_key: Option<String>, seen: HashMap<String, Pos>, anchor: usize, jumps: u64 },
    Seq { path: String, next: usize, anchor: usize, jumps: u64 },
}

impl Frame {
    fn jumps(&mut self) -> &mut u64 {
        match self {
            Frame::Map { jumps, .. } | Frame::Seq { jumps, .. } => jumps,
        }
    }
}

struct Builder {
    stack: Vec<Frame>,
    map: HashMap<String, Pos>,
    duplicates: Vec<DuplicateKey>,
    aliases: Vec<Alias>,
    /// Anchor id -> alias jumps of reading the node it names.
    anchors: HashMap<usize, u64>,
    events: usize,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of the node that starts now, advancing the parent's state.
    fn child_path(&mut self, scalar_key: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next, .. }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, pending_key, seen, .. }) => match pending_key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // This node is a key.
                    if let Some(k) = scalar_key {
                        if let Some(first) = seen.get(k) {
                            self.duplicates.push(DuplicateKey { key: k.to_string(), path: path.clone(), first: *first, again: pos });
                        } else {
                            seen.insert(k.to_string(), pos);
                        }
                        self.map.insert(format!("{}#key", join(path, k)), pos);
                        *pending_key = Some(k.to_string());
                    } else {
                        *pending_key = Some("?".into());
                    }
                    None
                }
            },
        }
    }
}

impl Builder {
    /// A node of `jumps` alias jumps is complete: it counts for its parent and, if anchored, for its aliases.
    fn done(&mut self, anchor: usize, jumps: u64) {
        if anchor != 0 {
            self.anchors.insert(anchor, jumps);
        }
        if let Some(f) = self.stack.last_mut() {
            let j = f.jumps();
            *j = j.saturating_add(jumps);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        if !matches!(ev, Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd) {
            self.events += 1;
        }
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                if let Some(p) = self.child_path(Some(&value), pos) {
                    self.map.insert(p, pos);
                }
                self.done(anchor, 0);
            }
            Event::Alias(id) => {
                if let Some(p) = self.child_path(None, pos) {
                    self.map.insert(p, pos);
                }
                let jumps = self.anchors.get(&id).copied().unwrap_or(0).saturating_add(1);
                self.aliases.push(Alias { pos, jumps });
                self.done(0, jumps);
            }
            Event::MappingStart(anchor, _) => {
                let p = self.child_path(None, pos).unwrap_or_default();
                self.map.insert(p.clone(), pos);
                self.stack.push(Frame::Map { path: p, pending_key: None, seen: HashMap::new(), anchor, jumps: 0 });
            }
            Event::SequenceStart(anchor, _) => {
                let p = self.child_path(None, pos).unwrap_or_default();
                self.map.insert(p.clone(), pos);
                self.stack.push(Frame::Seq { path: p, next: 0, anchor, jumps: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map { anchor, jumps, .. } | Frame::Seq { anchor, jumps, .. }) = self.stack.pop() {
                    self.done(anchor, jumps);
                }
            }
            _ => {}
        }
    }
}

impl SpanIndex {
    /// Index a YAML document. A document that does not parse gives an empty index
    /// (serde_yaml reports the syntax error with its own location).
    pub fn build(src: &str) -> Self {
        let mut b = Builder { stack: Vec::new(), map: HashMap::new(), duplicates: Vec::new(), aliases: Vec::new(), anchors: HashMap::new(), events: 0 };
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut b, false).is_err() {
            return SpanIndex::default();
        }
        SpanIndex { map: b.map, duplicates: b.duplicates, aliases: b.aliases, events: b.events }
    }

    /// Keys written twice in one mapping, in the order of the document.
    pub fn duplicate_keys(&self) -> &[DuplicateKey] {
        &self.duplicates
    }

    /// How many alias expansions serde_yaml allows in this document.
    pub fn alias_limit(&self) -> u64 {
        (self.events as u64).saturating_mul(REPETITION_LIMIT)
    }

    /// The alias at which reading the document, as serde_yaml does (in order,
    /// expanding each alias), passes its repetition limit: the alias to blame
    /// for "repetition limit exceeded". Failing that, the alias that expands most.
    pub fn alias_bomb(&self) -> Option<&Alias> {
        let limit = self.alias_limit();
        let mut read = 0u64;
        for a in &self.aliases {
            read = read.saturating_add(a.jumps);
            if read > limit {
                return Some(a);
            }
        }
        self.aliases.iter().rev().max_by_key(|a| a.jumps)
    }

    /// Position of the value at `path`, or of the nearest ancestor that exists.
    pub fn find(&self, path: &str) -> Pos {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.map.get(&p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return self.map.get("").copied().unwrap_or(Pos { offset: 0, line: 1, column: 1 }),
            }
        }
    }

    /// Position of the key of a mapping entry (falls back to the value).
    pub fn key(&self, path: &str) -> Pos {
        self.map.get(&format!("{path}#key")).copied().unwrap_or_else(|| self.find(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_at_lines() {
        let src = "name: x\nservice:\n  env:\n    PORT: \"8080\"\nstages:\n  - stage: a\n    checks:\n      - name: b\n";
        let idx = SpanIndex::build(src);
        assert_eq!(idx.find("service.env.PORT").line, 4);
        assert_eq!(idx.key("service.env.PORT").column, 5);
        assert_eq!(idx.find("stages[0].checks[0].name").line, 8);
        assert_eq!(idx.find("stages[0].checks[0]").line, 8);
        // Missing paths fall back to the nearest ancestor.
        assert_eq!(idx.find("stages[0].checks[0].steps[3]").line, 8);
        assert_eq!(idx.find("name").line, 1);
    }
}
