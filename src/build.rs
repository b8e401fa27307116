//! Building the learner's solution: a Go source folder is built with
//! `go build` into a static binary; an executable file is taken as it is; a
//! folder that holds a program and its files (or a .tar, .tar.gz or .tgz
//! archive of one) is copied as it is, nothing built. Either way the result
//! lands in the instance's folder in lab's cache, which is what gets mounted.
//!
//! Builds are shared by content: the key is a digest of the folder's files,
//! the build mode and the toolchain, so twenty students' instances of one
//! solution run one `go build` (the others wait for it, then link its output).
//! The temporary GOPATH lives in lab's cache and `go build` dies with lab, so
//! a `kill -9` leaves neither behind for long: the next build removes the
//! GOPATH folders of lab processes that are gone.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::process::Command;

/// How to build a Go folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoMode {
    /// Module mode when the folder has a go.mod whose requires this machine
    /// holds (none, vendor/, the module cache); GOPATH mode with Debian's Go
    /// libraries otherwise, with the go.mod's module path and Go version.
    #[default]
    Auto,
    /// `go build` in module mode (needs a module proxy, the module cache or a vendor folder).
    Module,
    /// GOPATH mode with Debian's Go libraries (/usr/share/gocode); works offline.
    /// The go.mod's module path and Go version are kept (see `GoBuild::Local`).
    Gopath,
}

/// A built solution.
#[derive(Debug, Clone)]
pub struct Built {
    pub binary: PathBuf,
    pub digest: String,
    pub took: Duration,
    pub from_source: bool,
    /// Taken from an earlier build of the same source (no `go build` ran).
    pub reused: bool,
    /// A folder of files (the program among them) copied as it was, or
    /// unpacked from an archive: how many files.
    pub files: Option<usize>,
}

impl Built {
    /// What lab did with the solution, for a progress line.
    pub fn what(&self, src: &Path) -> String {
        let took = crate::verify::expect::fmt_dur(self.took);
        let program = self.binary.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        match (self.from_source, self.reused, self.files) {
            (true, true, _) => format!("built {} in {took} (the build of the same source, reused)", src.display()),
            (true, false, _) => format!("built {} in {took}", src.display()),
            (false, _, Some(n)) if is_archive(src) => format!("unpacked {} ({n} files) and took its executable {program} as it is, nothing built ({took})", src.display()),
            (false, _, Some(n)) => format!("copied {} ({n} files) and took its executable {program} as it is, nothing built ({took})", src.display()),
            (false, _, None) => format!("took the executable {} as it is, nothing built ({took})", src.display()),
        }
    }
}

/// What lab is about to do with a solution, for a progress line.
pub fn doing(src: &Path) -> String {
    if src.is_dir() && has_go(src) {
        format!("building {}", src.display())
    } else if is_archive(src) {
        format!("unpacking {}", src.display())
    } else {
        format!("copying {}", src.display())
    }
}

fn has_go(dir: &Path) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| e.path().extension().is_some_and(|x| x == "go"))
}

/// A .tar, .tar.gz or .tgz file, by its name.
fn is_archive(p: &Path) -> bool {
    let n = p.file_name().map(|f| f.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    p.is_file() && (n.ends_with(".tar") || n.ends_with(".tar.gz") || n.ends_with(".tgz"))
}

/// Why a build failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    #[error("solution {0} does not exist")]
    #[diagnostic(help("give the folder of your Go code, or an executable you built"))]
    Missing(PathBuf),
    #[error("{0} is neither a folder of Go code nor an executable file")]
    #[diagnostic(help("a Go folder holds .go files with package main; a built binary needs its executable bit; a folder of a built program holds an executable file"))]
    NotBuildable(PathBuf),
    /// A folder of a built program, in which lab cannot tell which file to run.
    #[error("{dir}: {why}")]
    #[diagnostic(help("{hint}"))]
    NoProgram { dir: PathBuf, why: String, hint: String },
    #[error("cannot unpack the archive {path}: {detail}")]
    #[diagnostic(help("give a .tar, .tar.gz or .tgz file of the program's folder (tar -czf store.tgz -C dist .), or the folder itself"))]
    Archive { path: PathBuf, detail: String },
    #[error("no Go toolchain found (looked at $LAB_GO, `go` on PATH, /usr/lib/go-1.23/bin/go, /usr/lib/go/bin/go, /usr/local/go/bin/go)")]
    #[diagnostic(help("install Go (on Debian 12: golang-1.23-go from bookworm-backports) or set LAB_GO to the go binary"))]
    NoGo,
    /// The learner's code does not compile: this is the learner's to fix.
    #[error("`go build` failed for {dir}:\n{output}")]
    #[diagnostic(help("fix the compile errors above; lab builds with CGO_ENABLED=0 and {mode}"))]
    Compile { dir: PathBuf, output: String, mode: String },
    /// A go.mod requires modules that neither the module cache nor Debian's Go libraries hold.
    #[error("{dir}/go.mod requires modules this machine does not have: {}", missing.join(", "))]
    #[diagnostic(help("lab builds offline: a go.mod's requires come from the module cache, the folder's vendor/ (go mod vendor), or Debian's Go libraries in /usr/share/gocode (the golang-*-dev packages: `apt-cache search golang- | grep <name>`); the lab's README names those it uses"))]
    Libraries { dir: PathBuf, missing: Vec<String> },
    #[error("build I/O failed: {0}")]
    Io(String),
}

/// Find the go binary.
pub fn find_go() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LAB_GO") {
        return Some(PathBuf::from(p));
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("go");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    ["/usr/lib/go-1.23/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"].into_iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The folder lab keeps built binaries in.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LAB_CACHE_DIR").map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("lab"))).unwrap_or_else(|| std::env::temp_dir().join("lab-cache"))
}

/// The first 8 bytes of a SHA-256 of `bytes`, in hex: a cache key.
pub fn short_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn digest_file(p: &Path) -> Result<String, BuildError> {
    let bytes = std::fs::read(p).map_err(|e| BuildError::Io(format!("{}: {e}", p.display())))?;
    Ok(short_digest(&bytes))
}

/// Where the binary of an instance's service goes.
pub fn out_dir(instance: &str) -> PathBuf {
    cache_dir().join("bin").join(instance)
}

/// Build (or take) the solution at `src` into `out_dir/<name>`.
pub async fn build(src: &Path, out_dir: &Path, name: &str, mode: GoMode) -> Result<Built, BuildError> {
    build_program(src, out_dir, name, mode, None).await
}

/// The same; a folder (or archive) of a built program is copied into
/// `out_dir` as it is, and `program` (a path in it) names its executable,
/// by default the only executable file at its top.
pub async fn build_program(src: &Path, out_dir: &Path, name: &str, mode: GoMode, program: Option<&str>) -> Result<Built, BuildError> {
    let start = Instant::now();
    if !src.exists() {
        return Err(BuildError::Missing(src.to_path_buf()));
    }
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    if is_archive(src) {
        let unpacked = unpack(src)?;
        let root = single_top_folder(unpacked.path());
        let mut b = copy_folder(&root, out_dir, program)?;
        b.took = start.elapsed();
        return Ok(b);
    }
    if src.is_dir() && !has_go(src) {
        let mut b = copy_folder(src, out_dir, program)?;
        b.took = start.elapsed();
        return Ok(b);
    }
    let out = out_dir.join(name);
    let tmp = out_dir.join(format!(".{name}.tmp"));
    let (from_source, reused);
    if src.is_dir() {
        let go = find_go().ok_or(BuildError::NoGo)?;
        let abs = src.canonicalize().map_err(|e| BuildError::Io(e.to_string()))?;
        let how = plan_go(&abs, name, mode, &go).await?;
        // One build per source: the first takes the key's lock and builds, the others wait and reuse.
        let key = source_key(&abs, name, &how, &go)?;
        let builds = cache_dir().join("builds");
        std::fs::create_dir_all(&builds).map_err(io(&builds))?;
        let lock_path = builds.join(format!("{key}.lock"));
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock)).await.map_err(|e| BuildError::Io(e.to_string()))?.map_err(io(&lock_path))?;
        let cached = builds.join(&key).join(name);
        reused = cached.is_file();
        if !reused {
            let dir = builds.join(&key);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let part = dir.join(format!(".{name}.tmp"));
            go_build(&go, &abs, src, &how, &part).await?;
            std::fs::rename(&part, &cached).map_err(io(&cached))?;
        }
        drop(lock);
        // A link where the cache and the instance's folder share a file system, else a copy.
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&cached, &tmp).is_err() {
            std::fs::copy(&cached, &tmp).map_err(io(&cached))?;
        }
        from_source = true;
    } else {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(src).map_err(|e| BuildError::Io(e.to_string()))?;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(BuildError::NotBuildable(src.to_path_buf()));
        }
        std::fs::copy(src, &tmp).map_err(|e| BuildError::Io(format!("copying {}: {e}", src.display())))?;
        // Keep the executable bit whatever the umask.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        (from_source, reused) = (false, false);
    }
    // What an earlier solution of another kind (a folder) left is of no more use.
    clear_except(out_dir, &[name, &format!(".{name}.tmp")])?;
    std::fs::rename(&tmp, &out).map_err(|e| BuildError::Io(e.to_string()))?;
    let digest = digest_file(&out)?;
    Ok(Built { binary: out, digest, took: start.elapsed(), from_source, reused, files: None })
}

/// Remove what `dir` holds except the entries named `keep`.
fn clear_except(dir: &Path, keep: &[&str]) -> Result<(), BuildError> {
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        if keep.iter().any(|k| e.file_name() == std::ffi::OsStr::new(k)) {
            continue;
        }
        let p = e.path();
        let r = if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        r.map_err(io(&p))?;
    }
    Ok(())
}

/// Unpack a .tar, .tar.gz or .tgz into a temporary folder of lab's cache
/// (entries that would land outside it are refused by `tar`).
fn unpack(src: &Path) -> Result<tempfile::TempDir, BuildError> {
    let err = |detail: String| BuildError::Archive { path: src.to_path_buf(), detail };
    let root = cache_dir().join("unpack");
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let dir = tempfile::Builder::new().prefix("solution-").tempdir_in(&root).map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::open(src).map_err(|e| err(e.to_string()))?;
    let mut head = [0u8; 2];
    let gz = {
        use std::io::Read;
        let mut f = std::fs::File::open(src).map_err(|e| err(e.to_string()))?;
        f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b]
    };
    let reader: Box<dyn std::io::Read> = if gz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.unpack(dir.path()).map_err(|e| err(e.to_string()))?;
    if std::fs::read_dir(dir.path()).map_err(|e| err(e.to_string()))?.next().is_none() {
        return Err(err("it holds no file".into()));
    }
    Ok(dir)
}

/// An archive of `store-1.2/...` is the folder `store-1.2`.
fn single_top_folder(dir: &Path) -> PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().collect();
    match entries.as_slice() {
        [only] if only.path().is_dir() => only.path(),
        _ => dir.to_path_buf(),
    }
}

/// Every file under `root` (hidden `.git` folders left out), relative, sorted.
fn files_of(root: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if e.file_name() == ".git" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                files.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Copy a folder of a built program into `out_dir` (replacing what was
/// there), and find its executable.
fn copy_folder(src: &Path, out_dir: &Path, program: Option<&str>) -> Result<Built, BuildError> {
    let files = files_of(src)?;
    let rel = match program {
        Some(p) => {
            let rel = PathBuf::from(p.trim_start_matches("./"));
            if !files.contains(&rel) {
                return Err(BuildError::NoProgram {
                    dir: src.to_path_buf(),
                    why: format!("the lab runs the program `{p}` (service.program), and the folder has no such file"),
                    hint: format!("put the executable at {p} in the folder; it holds {}", list(&files)),
                });
            }
            if !is_executable(&src.join(&rel)) {
                return Err(BuildError::NoProgram { dir: src.to_path_buf(), why: format!("{p} is not executable"), hint: format!("chmod +x {}", src.join(&rel).display()) });
            }
            rel
        }
        None => {
            let top: Vec<&PathBuf> = files.iter().filter(|f| f.components().count() == 1 && is_executable(&src.join(f))).collect();
            match top.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(BuildError::NoProgram {
                        dir: src.to_path_buf(),
                        why: "no Go source and no executable file at the top of the folder".into(),
                        hint: format!("give a folder of Go code (package main), or one with the built program at its top (chmod +x); it holds {}", list(&files)),
                    })
                }
                many => {
                    return Err(BuildError::NoProgram {
                        dir: src.to_path_buf(),
                        why: format!(
                            "{} executable files at the top of the folder ({}), and the lab does not say which to run",
                            many.len(),
                            many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                        ),
                        hint: "the lab's service.program names the one to run; or leave only one executable at the top".into(),
                    })
                }
            }
        }
    };
    clear_except(out_dir, &[])?;
    let mut h = Sha256::new();
    for f in &files {
        let from = src.join(f);
        let to = out_dir.join(f);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(&from, &to).map_err(io(&from))?;
        let bytes = std::fs::read(&to).map_err(io(&to))?;
        h.update(format!("{}\0{}\0", f.display(), bytes.len()));
        h.update(&bytes);
    }
    let digest = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(Built { binary: out_dir.join(&rel), digest, took: Duration::ZERO, from_source: false, reused: false, files: Some(files.len()) })
}

fn list(files: &[PathBuf]) -> String {
    let mut shown: Vec<String> = files.iter().take(8).map(|f| f.display().to_string()).collect();
    if files.len() > 8 {
        shown.push(format!("and {} more", files.len() - 8));
    }
    if shown.is_empty() {
        "nothing".into()
    } else {
        shown.join(", ")
    }
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Io(format!("{}: {e}", what.display()))
}

/// What a build's output depends on: every file of the folder (path and
/// content; hidden entries such as .git left out), the program's name, how
/// it is built, the toolchain and the environment `go build` reads.
fn source_key(abs: &Path, name: &str, how: &GoBuild, go: &Path) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(format!("{name}\0{how:?}\0{}\0", go.display()));
    let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.len(), m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos())));
    h.update(format!("{:?}\0", stamp(go)));
    if matches!(how, GoBuild::Local { .. }) {
        h.update(format!("{:?}\0", stamp(Path::new(GOCODE))));
    }
    for var in ["GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOEXPERIMENT", "GOPROXY", "GONOSUMDB", "GOTOOLCHAIN", "GOMODCACHE"] {
        h.update(format!("{var}={:?}\0", std::env::var_os(var)));
    }
    let mut files = Vec::new();
    let mut stack = vec![abs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| BuildError::Io(format!("{}: {e}", dir.display())))?.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| BuildError::Io(format!("{}: {e}", f.display())))?;
        h.update(format!("{}\0{}\0", f.strip_prefix(abs).unwrap_or(&f).display(), bytes.len()));
        h.update(&bytes);
    }
    Ok(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

/// Debian's Go libraries, laid out by import path.
const GOCODE: &str = "/usr/share/gocode/src";

/// How a folder of Go code is built.
#[derive(Debug, Clone, PartialEq)]
enum GoBuild {
    /// Module mode, as `go build` does it: the go.mod's requires come from
    /// the module cache or the folder's vendor/.
    Module,
    /// GOPATH mode (GO111MODULE=off): the folder placed at `path` (its
    /// module's path, or lab.local/<name>) in a private GOPATH with Debian's
    /// Go libraries after it, built with the defaults of Go `go` (the
    /// go.mod's version, else the toolchain's), as module mode would: GOPATH
    /// mode alone takes those of Go 1.20 and before (no `GET /path` or
    /// `{id}` patterns in http.ServeMux, among others).
    Local { path: String, go: String },
}

/// What a go.mod says that lab needs.
#[derive(Debug, Default, PartialEq)]
struct GoMod {
    module: Option<String>,
    go: Option<String>,
    /// Direct requires: (module path, version).
    requires: Vec<(String, String)>,
}

fn parse_go_mod(text: &str) -> GoMod {
    let mut m = GoMod::default();
    let mut in_require = false;
    for raw in text.lines() {
        let (line, comment) = match raw.split_once("//") {
            Some((l, c)) => (l.trim(), c.trim()),
            None => (raw.trim(), ""),
        };
        let unquote = |w: &str| w.trim_matches('"').trim_matches('`').to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        if in_require {
            if line == ")" {
                in_require = false;
            } else if words.len() >= 2 && comment != "indirect" {
                m.requires.push((unquote(words[0]), words[1].to_string()));
            }
            continue;
        }
        match words.as_slice() {
            ["module", p, ..] => m.module = Some(unquote(p)),
            ["go", v, ..] => m.go = Some(v.to_string()),
            ["require", "("] => in_require = true,
            ["require", p, v, ..] if comment != "indirect" => m.requires.push((unquote(p), v.to_string())),
            _ => {}
        }
    }
    m
}

/// A version's language part: "1.22.3" and "go1.22" give "go1.22".
fn lang(v: &str) -> String {
    let v = v.trim_start_matches("go");
    let mut parts = v.split('.');
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => format!("go{a}.{}", b.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(b)),
        _ => format!("go{v}"),
    }
}

/// Whether the module cache holds a module's version (its path written with
/// `!` and the lowercase letter for each uppercase one, as the cache does).
fn in_module_cache(cache: &Path, module: &str, version: &str) -> bool {
    let esc = |s: &str| s.chars().flat_map(|c| if c.is_ascii_uppercase() { vec!['!', c.to_ascii_lowercase()] } else { vec![c] }).collect::<String>();
    cache.join("cache/download").join(esc(module)).join("@v").join(format!("{}.mod", esc(version))).is_file()
}

async fn go_env(go: &Path, var: &str) -> Option<String> {
    let out = Command::new(go).arg("env").arg(var).stdin(Stdio::null()).output().await.ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// Choose how to build the folder. A folder with a go.mod whose requires
/// can all be had (none, a vendor/, or every one in the module cache) is
/// built in module mode; one whose requires cannot (there is no module
/// proxy here) gets them from Debian's Go libraries instead, and so does a
/// folder without a go.mod; either way with the defaults of its Go version.
async fn plan_go(abs: &Path, name: &str, mode: GoMode, go: &Path) -> Result<GoBuild, BuildError> {
    let text = std::fs::read_to_string(abs.join("go.mod")).ok();
    let m = text.as_deref().map(parse_go_mod).unwrap_or_default();
    if mode == GoMode::Module {
        return Ok(GoBuild::Module);
    }
    if mode == GoMode::Auto && text.is_some() {
        let cached = if abs.join("vendor/modules.txt").is_file() || m.requires.is_empty() {
            true
        } else {
            match go_env(go, "GOMODCACHE").await {
                Some(cache) => m.requires.iter().all(|(p, v)| in_module_cache(Path::new(&cache), p, v)),
                None => false,
            }
        };
        if cached {
            return Ok(GoBuild::Module);
        }
    }
    let version = match &m.go {
        Some(v) => lang(v),
        None => go_env(go, "GOVERSION").await.map(|v| lang(&v)).unwrap_or_else(|| "go1.23".into()),
    };
    let missing: Vec<String> = m.requires.iter().filter(|(p, _)| !Path::new(GOCODE).join(p).is_dir()).map(|(p, v)| format!("{p} {v}")).collect();
    if !missing.is_empty() {
        return Err(BuildError::Libraries { dir: abs.to_path_buf(), missing });
    }
    Ok(GoBuild::Local { path: m.module.clone().unwrap_or_else(|| format!("lab.local/{name}")), go: version })
}

/// The package clause of the folder's first Go file.
fn package_of(dir: &Path) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "go") && !p.to_string_lossy().ends_with("_test.go")).collect();
    files.sort();
    files.iter().find_map(|f| std::fs::read_to_string(f).ok()?.lines().find_map(|l| l.strip_prefix("package ").and_then(|p| p.split_whitespace().next()).map(str::to_string)))
}

/// Whether a Go file of the folder sets the defaults' version itself.
fn sets_default(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "go"))
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("//go:debug default="))))
}

/// The file lab adds, beside the learner's, in the GOPATH copy it builds.
const DEFAULTS_FILE: &str = "zz_lab_go_defaults.go";

/// Run `go build` of the folder into `out`.
async fn go_build(go: &Path, abs: &Path, src: &Path, how: &GoBuild, out: &Path) -> Result<(), BuildError> {
    let gocache = std::env::var_os("GOCACHE").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("go-build"));
    let mut cmd = Command::new(go);
    cmd.env("CGO_ENABLED", "0").env("GOCACHE", &gocache).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).kill_on_drop(true);
    // `go build` ends with lab, even with a kill -9 that runs no destructor.
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from));
    }
    let _gopath_guard;
    let mode_text;
    match how {
        GoBuild::Module => {
            mode_text = "module mode".to_string();
            cmd.current_dir(abs).arg("build").arg("-trimpath").arg("-o").arg(out).arg(".");
        }
        GoBuild::Local { path, go: version } => {
            // The folder's entries are linked one by one into <GOPATH>/src/<path>,
            // beside a file of lab's that sets the Go version's defaults: the
            // learner's folder itself is never written to.
            let gp = private_gopath()?;
            let pkg_dir = gp.path().join("src").join(path);
            std::fs::create_dir_all(&pkg_dir).map_err(|e| BuildError::Io(e.to_string()))?;
            for e in std::fs::read_dir(abs).map_err(io(abs))?.flatten() {
                std::os::unix::fs::symlink(e.path(), pkg_dir.join(e.file_name())).map_err(|e| BuildError::Io(e.to_string()))?;
            }
            if package_of(abs).as_deref() == Some("main") && !sets_default(abs) && !abs.join(DEFAULTS_FILE).exists() {
                let text = format!("// Written by lab: the defaults of {version}, which module mode would give.\n\n//go:debug default={version}\n\npackage main\n");
                std::fs::write(pkg_dir.join(DEFAULTS_FILE), text).map_err(|e| BuildError::Io(e.to_string()))?;
            }
            let gopath = std::env::join_paths([gp.path().to_path_buf(), PathBuf::from("/usr/share/gocode")]).map_err(|e| BuildError::Io(e.to_string()))?;
            mode_text = format!("GOPATH mode (GO111MODULE=off, libraries from /usr/share/gocode, the defaults of {version})");
            cmd.env("GO111MODULE", "off").env("GOPATH", gopath).env("GOFLAGS", "").current_dir(gp.path()).arg("build").arg("-trimpath").arg("-o").arg(out).arg(path);
            _gopath_guard = gp;
        }
    }
    let output = cmd.output().await.map_err(|e| BuildError::Io(format!("running {}: {e}", go.display())))?;
    if !output.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        return Err(BuildError::Compile { dir: src.to_path_buf(), output: text.trim_end().to_string(), mode: mode_text });
    }
    Ok(())
}

/// A GOPATH folder of this process in lab's cache (`gopath/<pid>-…`), after
/// removing those of lab processes that are gone.
fn private_gopath() -> Result<tempfile::TempDir, BuildError> {
    let root = cache_dir().join("gopath");
    std::fs::create_dir_all(&root).map_err(|e| BuildError::Io(format!("{}: {e}", root.display())))?;
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().split('-').next().and_then(|p| p.parse::<i32>().ok());
        let gone = pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None) == Err(nix::errno::Errno::ESRCH));
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    tempfile::Builder::new().prefix(&format!("{}-", std::process::id())).tempdir_in(&root).map_err(|e| BuildError::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_mod_gives_its_module_version_and_direct_requires() {
        let m = parse_go_mod(
            "// a comment\nmodule example.com/orders // trailing\n\ngo 1.22.3\n\nrequire github.com/gomodule/redigo v1.9.2\nrequire (\n\tgithub.com/rabbitmq/amqp091-go v1.10.0\n\tgolang.org/x/sys v0.1.0 // indirect\n)\n",
        );
        assert_eq!(m.module.as_deref(), Some("example.com/orders"));
        assert_eq!(lang(m.go.as_deref().unwrap()), "go1.22");
        assert_eq!(m.requires, vec![("github.com/gomodule/redigo".to_string(), "v1.9.2".to_string()), ("github.com/rabbitmq/amqp091-go".to_string(), "v1.10.0".to_string())]);
        assert_eq!(lang("go1.23.5"), "go1.23");
        assert_eq!(lang("1.24rc1"), "go1.24");
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("cache/download/github.com/!burnt!sushi/toml/@v");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("v1.3.2.mod"), "module github.com/BurntSushi/toml\n").unwrap();
        assert!(in_module_cache(d.path(), "github.com/BurntSushi/toml", "v1.3.2"));
        assert!(!in_module_cache(d.path(), "github.com/BurntSushi/toml", "v1.4.0"));
    }

    #[tokio::test]
    async fn missing_and_unbuildable_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(build(&d.path().join("nope"), d.path(), "app", GoMode::Auto).await, Err(BuildError::Missing(_))));
        // A folder with neither Go code nor an executable says so.
        assert!(matches!(build(d.path(), &d.path().join("out"), "app", GoMode::Auto).await, Err(BuildError::NoProgram { .. })));
        let f = d.path().join("notes.txt");
        std::fs::write(&f, "x").unwrap();
        assert!(matches!(build(&f, d.path(), "app", GoMode::Auto).await, Err(BuildError::NotBuildable(_))));
    }

    fn exe(p: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn a_folder_of_a_built_program_is_copied_whole_and_its_one_executable_runs() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("dist");
        exe(&src.join("store"), "#!/bin/sh\n");
        std::fs::create_dir_all(src.join("conf")).unwrap();
        std::fs::write(src.join("conf/store.toml"), "x = 1\n").unwrap();
        std::fs::write(src.join("README"), "hi\n").unwrap();
        let out = d.path().join("out");
        // What an earlier Go build left in the instance's folder goes.
        exe(&out.join("app"), "old");
        let b = build_program(&src, &out, "app", GoMode::Auto, None).await.unwrap();
        assert_eq!(b.binary, out.join("store"));
        assert_eq!((b.from_source, b.files), (false, Some(3)));
        assert_eq!(std::fs::read_to_string(out.join("conf/store.toml")).unwrap(), "x = 1\n");
        assert!(!out.join("app").exists(), "the old program is gone");
        assert!(b.what(&src).contains("took its executable store as it is, nothing built"), "{}", b.what(&src));
        assert!(doing(&src).starts_with("copying"), "{}", doing(&src));
        // Another file changes the digest: the nodes restart with it.
        std::fs::write(src.join("README"), "changed\n").unwrap();
        let again = build_program(&src, &out, "app", GoMode::Auto, None).await.unwrap();
        assert_ne!(again.digest, b.digest);
    }

    #[tokio::test]
    async fn a_folder_with_several_executables_needs_the_lab_to_name_one() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("dist");
        exe(&src.join("store"), "a");
        exe(&src.join("store-admin"), "b");
        exe(&src.join("bin/inner"), "c");
        let out = d.path().join("out");
        match build_program(&src, &out, "app", GoMode::Auto, None).await {
            Err(BuildError::NoProgram { why, hint, .. }) => {
                assert!(why.contains("2 executable files") && why.contains("store, store-admin"), "{why}");
                assert!(hint.contains("service.program"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
        let b = build_program(&src, &out, "app", GoMode::Auto, Some("bin/inner")).await.unwrap();
        assert_eq!(b.binary, out.join("bin/inner"));
        match build_program(&src, &out, "app", GoMode::Auto, Some("bin/missing")).await {
            Err(BuildError::NoProgram { why, hint, .. }) => assert!(why.contains("no such file") && hint.contains("bin/inner"), "{why} / {hint}"),
            other => panic!("{other:?}"),
        }
        let empty = d.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("notes.txt"), "x").unwrap();
        match build_program(&empty, &out, "app", GoMode::Auto, None).await {
            Err(BuildError::NoProgram { why, .. }) => assert!(why.contains("no Go source and no executable"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_archive_of_the_folder_is_unpacked_and_its_top_folder_taken() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("store-1.2");
        exe(&src.join("store"), "#!/bin/sh\n");
        std::fs::write(src.join("LICENSE"), "free\n").unwrap();
        let tgz = d.path().join("store-1.2.tgz");
        {
            let f = std::fs::File::create(&tgz).unwrap();
            let mut t = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
            t.append_dir_all("store-1.2", &src).unwrap();
            t.into_inner().unwrap().finish().unwrap();
        }
        let out = d.path().join("out");
        assert!(doing(&tgz).starts_with("unpacking"));
        let b = build_program(&tgz, &out, "app", GoMode::Auto, None).await.unwrap();
        assert_eq!(b.binary, out.join("store"));
        assert_eq!(std::fs::read_to_string(out.join("LICENSE")).unwrap(), "free\n");
        assert!(is_executable(&b.binary));
        assert!(b.what(&tgz).starts_with("unpacked"), "{}", b.what(&tgz));
        let bad = d.path().join("broken.tar.gz");
        std::fs::write(&bad, b"\x1f\x8bnot really").unwrap();
        assert!(matches!(build_program(&bad, &out, "app", GoMode::Auto, None).await, Err(BuildError::Archive { .. })));
    }

    #[tokio::test]
    async fn an_executable_is_taken_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("svc");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = build(&f, &d.path().join("out"), "app", GoMode::Auto).await.unwrap();
        assert!(!b.from_source);
        assert_eq!(std::fs::read(&b.binary).unwrap(), b"#!/bin/sh\n");
        assert_eq!(b.digest.len(), 16);
    }
}
