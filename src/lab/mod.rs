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
    let def: LabDef = match serde_yaml::from_str(src) {
        Ok(d) => d,
        Err(e) => {
            let pos = match e.location() {
                Some(l) => Pos { offset: src[..l.index().min(src.len())].chars().count(), line: l.line(), column: l.column() },
                None => Pos { offset: 0, line: 1, column: 1 },
            };
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; the location is already in front.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let hint = serde_hint(&msg);
            return Err(one(DefinitionError::at(file, src, pos, msg, hint)));
        }
    };
    let spans = SpanIndex::build(src);
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

/// Load a lab from a folder on disk (the folder holding lab.yaml) or from a lab.yaml path.
pub fn load_path(path: &Path) -> Result<Lab, LoadError> {
    let (dir, file) = if path.is_dir() { (path.to_path_buf(), path.join("lab.yaml")) } else { (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf()) };
    let src = std::fs::read_to_string(&file).map_err(|e| LoadError::Read { path: file.clone(), source: e })?;
    let folder = dir.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let def = parse(&file.display().to_string(), &src, folder.as_deref())?;
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
