//! The lab definition: loading `lab.yaml`, validating it, and finding labs.
//! No network I/O happens here.

mod catalogue;
pub mod model;
pub mod probes;
pub mod span;
mod validate;
pub(crate) use validate::tera_message;

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};

pub use catalogue::{Catalogue, LabSource};
pub use model::*;
pub use probes::*;
use span::{Pos, SpanIndex};

/// A problem in a lab definition, with the place it was found.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
#[diagnostic(code(lab::definition))]
pub struct DefinitionError {
    /// The file, as shown to the user.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it.
    #[help]
    pub hint: Option<String>,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl DefinitionError {
    pub(crate) fn at(file: &str, src: &str, pos: Pos, message: impl Into<String>, hint: Option<String>) -> Self {
        let offset = char_to_byte(src, pos.offset);
        let len = src[offset..].find(['\n', ':']).unwrap_or(0).max(1);
        DefinitionError {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint,
            src: NamedSource::new(file, src.to_string()),
            span: SourceSpan::new(offset.into(), len.min(src.len().saturating_sub(offset))),
        }
    }
}

fn char_to_byte(src: &str, chars: usize) -> usize {
    src.char_indices().nth(chars).map(|(i, _)| i).unwrap_or(src.len())
}

/// Every problem found in one file (validation reports them all, not just the first).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{} problem(s) in {file}", errors.len())]
pub struct DefinitionErrors {
    pub file: String,
    #[related]
    pub errors: Vec<DefinitionError>,
}

/// A loaded and validated lab.
#[derive(Debug, Clone)]
pub struct Lab {
    pub def: LabDef,
    /// Where it came from, for messages and for the lab's own files.
    pub source: LabSource,
}

impl Lab {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The learner's README, if the lab has one.
    pub fn readme(&self) -> Option<String> {
        self.source.read_file("README.md")
    }
}

/// Parse and validate a lab.yaml text. `file` is the name shown in messages;
/// `folder` the folder name the lab's `name` must match, when known.
pub fn parse(file: &str, src: &str, folder: Option<&str>) -> Result<LabDef, DefinitionErrors> {
    let one = |e: DefinitionError| DefinitionErrors { file: file.to_string(), errors: vec![e] };
    let spans = SpanIndex::build(src);
    // serde_yaml refuses a repeated field of a struct at the start of its mapping and keeps the
    // last of a repeated map key; both are mistakes, reported where the key is written again.
    if !spans.duplicate_keys().is_empty() {
        return Err(DefinitionErrors { file: file.to_string(), errors: spans.duplicate_keys().iter().map(|d| duplicate_key(file, src, d)).collect() });
    }
    let def: LabDef = match serde_yaml::from_str(src) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; the location is already in front.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let pos = match e.location() {
                Some(l) => Pos { offset: src[..l.index().min(src.len())].chars().count(), line: l.line(), column: l.column() },
                None => match spans.alias_bomb() {
                    Some(a) if msg.starts_with("repetition limit exceeded") => return Err(one(alias_bomb(file, src, a, spans.alias_limit()))),
                    _ => Pos { offset: 0, line: 1, column: 1 },
                },
            };
            let hint = serde_hint(&msg);
            return Err(one(DefinitionError::at(file, src, pos, msg, hint)));
        }
    };
    let problems = validate::validate(&def, folder);
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(DefinitionErrors {
            file: file.to_string(),
            errors: problems
                .into_iter()
                .map(|p| {
                    let pos = if p.on_key { spans.key(&p.path) } else { spans.find(&p.path) };
                    DefinitionError::at(file, src, pos, p.message, p.hint)
                })
                .collect(),
        })
    }
}

fn duplicate_key(file: &str, src: &str, d: &span::DuplicateKey) -> DefinitionError {
    let within = if d.path.is_empty() { "at the top level".to_string() } else { format!("in `{}`", d.path) };
    DefinitionError::at(
        file,
        src,
        d.again,
        format!("key `{}` is given twice {within}: first at line {}, column {}", d.key, d.first.line, d.first.column),
        Some("a key appears once in a mapping (only one of the two values would be used); remove one, or merge the two".into()),
    )
}

fn alias_bomb(file: &str, src: &str, a: &span::Alias, limit: u64) -> DefinitionError {
    let at = &src[char_to_byte(src, a.pos.offset)..];
    let name: String = at.trim_start_matches('*').chars().take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c)).collect();
    DefinitionError::at(
        file,
        src,
        a.pos,
        format!(
            "the alias `*{name}` expands too far: it takes {} alias expansions, and with the aliases before it the file passes the limit of {} ({} per node written)",
            a.jumps,
            limit,
            span::REPETITION_LIMIT
        ),
        Some("aliases that repeat aliases grow exponentially (a \"billion laughs\" bomb); write the values out, or nest fewer aliases".into()),
    )
}

fn serde_hint(msg: &str) -> Option<String> {
    if msg.contains("unknown field") {
        Some("check the spelling; the fields allowed here are listed after `expected`".into())
    } else if msg.contains("missing field") {
        Some("add the field named above; `lab show <lab>` and labs/url-shortener/lab.yaml show a complete example".into())
    } else if msg.contains("invalid type") {
        Some("the value has the wrong type (a string where a map is expected, or the reverse)".into())
    } else {
        None
    }
}

/// Parse and validate the bytes of a lab.yaml, which must be UTF-8 (see [`parse`]).
pub fn parse_bytes(file: &str, bytes: &[u8], folder: Option<&str>) -> Result<LabDef, DefinitionErrors> {
    match std::str::from_utf8(bytes) {
        Ok(src) => parse(file, src, folder),
        Err(e) => Err(DefinitionErrors { file: file.to_string(), errors: vec![not_utf8(file, bytes, &e)] }),
    }
}

/// A file that is not UTF-8, located at its first invalid byte.
fn not_utf8(file: &str, bytes: &[u8], e: &std::str::Utf8Error) -> DefinitionError {
    let at = e.valid_up_to();
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let pos = Pos { offset: before.chars().count(), line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 };
    let what = match e.error_len() {
        Some(n) => {
            format!("{} at byte offset {at} {} not part of a UTF-8 character", bytes[at..at + n].iter().map(|b| format!("0x{b:02X}")).collect::<Vec<_>>().join(" "), if n > 1 { "are" } else { "is" })
        }
        None => format!("it ends inside the character that starts at byte offset {at}"),
    };
    // Shown with U+FFFD for what is not UTF-8; the text before it is unchanged, so the position holds.
    let shown = String::from_utf8_lossy(bytes);
    DefinitionError::at(
        file,
        &shown,
        pos,
        format!("the file is not UTF-8: {what}"),
        Some("save lab.yaml as UTF-8; a file from a Latin-1 (ISO-8859-1) editor converts with `iconv -f latin1 -t utf-8`".into()),
    )
}

/// Load a lab from a folder on disk (the folder holding lab.yaml) or from a lab.yaml path.
pub fn load_path(path: &Path) -> Result<Lab, LoadError> {
    let (dir, file) = if path.is_dir() { (path.to_path_buf(), path.join("lab.yaml")) } else { (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf()) };
    let bytes = std::fs::read(&file).map_err(|e| LoadError::Read { path: file.clone(), source: e })?;
    let folder = dir.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let def = parse_bytes(&file.display().to_string(), &bytes, folder.as_deref())?;
    Ok(Lab { def, source: LabSource::Dir(dir) })
}

/// Failure to load a lab.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(help("give the folder of a lab (it holds lab.yaml) or the lab.yaml itself"))]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] DefinitionErrors),
    #[error("no lab named `{name}`; known labs: {known}")]
    #[diagnostic(help("`lab list` shows the labs; `--labs DIR` adds a folder of labs"))]
    NotFound { name: String, known: String },
}

#[cfg(test)]
mod tests;
