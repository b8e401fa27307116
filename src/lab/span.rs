//! Positions of keys and values in a YAML file, by path (`service.env.PORT`,
//! `stages[1].checks[0].steps[2]`), so that validation errors found after
//! deserializing can still point at file:line:column.

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
}

enum Frame {
    Map { path: String, pending_key: Option<String> },
    Seq { path: String, next: usize },
}

struct Builder {
    stack: Vec<Frame>,
    map: HashMap<String, Pos>,
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
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // This node is a key.
                    if let Some(k) = scalar_key {
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

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.child_path(Some(&value), pos) {
                    self.map.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.child_path(None, pos) {
                    self.map.insert(p, pos);
                }
            }
            Event::MappingStart(..) => {
                let p = self.child_path(None, pos).unwrap_or_default();
                self.map.insert(p.clone(), pos);
                self.stack.push(Frame::Map { path: p, pending_key: None });
            }
            Event::SequenceStart(..) => {
                let p = self.child_path(None, pos).unwrap_or_default();
                self.map.insert(p.clone(), pos);
                self.stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl SpanIndex {
    /// Index a YAML document. A document that does not parse gives an empty index
    /// (serde_yaml reports the syntax error with its own location).
    pub fn build(src: &str) -> Self {
        let mut b = Builder { stack: Vec::new(), map: HashMap::new() };
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut b, false).is_err() {
            return SpanIndex::default();
        }
        SpanIndex { map: b.map }
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
