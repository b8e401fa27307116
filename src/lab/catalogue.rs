//! Finding labs: folders given with `--labs DIR` or `LAB_PATH`, then the labs
//! built into the binary (the repository's labs/ folder).

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use super::{load_path, parse, Lab, LoadError};

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/labs");

/// Where a lab's files are.
#[derive(Debug, Clone)]
pub enum LabSource {
    /// A folder on disk.
    Dir(PathBuf),
    /// Built into the binary, from the repository's labs/<name>.
    Builtin(&'static Dir<'static>),
}

impl LabSource {
    /// Read one of the lab's own files (README.md, protos, rules).
    pub fn read_file(&self, rel: &str) -> Option<String> {
        match self {
            LabSource::Dir(d) => std::fs::read_to_string(d.join(rel)).ok(),
            LabSource::Builtin(d) => d.get_file(d.path().join(rel)).and_then(|f| f.contents_utf8()).map(str::to_string),
        }
    }

    /// How to show it.
    pub fn describe(&self) -> String {
        match self {
            LabSource::Dir(d) => d.display().to_string(),
            LabSource::Builtin(d) => format!("built in (labs/{})", d.path().display()),
        }
    }
}

/// The labs that can be named on the command line.
#[derive(Debug, Default)]
pub struct Catalogue {
    dirs: Vec<PathBuf>,
}

impl Catalogue {
    /// Labs in these folders (each holding lab folders), searched before the built-in ones.
    pub fn new(mut dirs: Vec<PathBuf>) -> Self {
        if let Ok(p) = std::env::var("LAB_PATH") {
            dirs.extend(std::env::split_paths(&p));
        }
        Catalogue { dirs }
    }

    /// Every lab, loaded; one that does not load is returned as its error.
    pub fn all(&self) -> Vec<(String, Result<Lab, LoadError>)> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for dir in &self.dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.join("lab.yaml").is_file()).collect();
            entries.sort();
            for p in entries {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if seen.insert(name.clone()) {
                    out.push((name, load_path(&p)));
                }
            }
        }
        for d in BUILTIN.dirs() {
            let name = d.path().to_string_lossy().to_string();
            if d.get_file(d.path().join("lab.yaml")).is_some() && seen.insert(name.clone()) {
                out.push((name.clone(), load_builtin(d)));
            }
        }
        out
    }

    /// The lab with this name, or a path to a lab folder.
    pub fn find(&self, name: &str) -> Result<Lab, LoadError> {
        let as_path = Path::new(name);
        if name.contains('/') || as_path.join("lab.yaml").is_file() {
            return load_path(as_path);
        }
        for dir in &self.dirs {
            let p = dir.join(name);
            if p.join("lab.yaml").is_file() {
                return load_path(&p);
            }
        }
        if let Some(d) = BUILTIN.get_dir(name) {
            if d.get_file(d.path().join("lab.yaml")).is_some() {
                return load_builtin(d);
            }
        }
        let known: Vec<String> = self.all().into_iter().map(|(n, _)| n).collect();
        Err(LoadError::NotFound { name: name.to_string(), known: if known.is_empty() { "none".into() } else { known.join(", ") } })
    }
}

fn load_builtin(d: &'static Dir<'static>) -> Result<Lab, LoadError> {
    let name = d.path().to_string_lossy().to_string();
    let file = d.get_file(d.path().join("lab.yaml")).expect("checked by caller");
    let src = file.contents_utf8().unwrap_or_default();
    let def = parse(&format!("labs/{name}/lab.yaml"), src, Some(&name))?;
    Ok(Lab { def, source: LabSource::Builtin(d) })
}
