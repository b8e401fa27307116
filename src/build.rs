//! Building the learner's solution: a Go source folder is built with
//! `go build` into a static binary; an executable file is taken as it is.
//! Either way the binary is copied into lab's cache, which is what gets mounted.
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
    /// Module mode when the folder has go.mod, GOPATH mode otherwise.
    #[default]
    Auto,
    /// `go build` in module mode (needs a module proxy or a vendor folder).
    Module,
    /// GOPATH mode with Debian's Go libraries (/usr/share/gocode); works offline.
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
}

/// Why a build failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    #[error("solution {0} does not exist")]
    #[diagnostic(help("give the folder of your Go code, or an executable you built"))]
    Missing(PathBuf),
    #[error("{0} is neither a folder of Go code nor an executable file")]
    #[diagnostic(help("a Go folder holds .go files with package main; a built binary needs its executable bit"))]
    NotBuildable(PathBuf),
    #[error("no Go toolchain found (looked at $LAB_GO, `go` on PATH, /usr/lib/go-1.23/bin/go, /usr/lib/go/bin/go, /usr/local/go/bin/go)")]
    #[diagnostic(help("install Go (on Debian 12: golang-1.23-go from bookworm-backports) or set LAB_GO to the go binary"))]
    NoGo,
    /// The learner's code does not compile: this is the learner's to fix.
    #[error("`go build` failed for {dir}:\n{output}")]
    #[diagnostic(help("fix the compile errors above; lab builds with CGO_ENABLED=0 and {mode}"))]
    Compile { dir: PathBuf, output: String, mode: String },
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

fn digest_file(p: &Path) -> Result<String, BuildError> {
    let bytes = std::fs::read(p).map_err(|e| BuildError::Io(format!("{}: {e}", p.display())))?;
    Ok(Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Where the binary of an instance's service goes.
pub fn out_dir(instance: &str) -> PathBuf {
    cache_dir().join("bin").join(instance)
}

/// Build (or take) the solution at `src` into `out_dir/<name>`.
pub async fn build(src: &Path, out_dir: &Path, name: &str, mode: GoMode) -> Result<Built, BuildError> {
    let start = Instant::now();
    if !src.exists() {
        return Err(BuildError::Missing(src.to_path_buf()));
    }
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let out = out_dir.join(name);
    let tmp = out_dir.join(format!(".{name}.tmp"));
    let (from_source, reused);
    if src.is_dir() {
        let has_go = std::fs::read_dir(src).map_err(|e| BuildError::Io(e.to_string()))?.flatten().any(|e| e.path().extension().is_some_and(|x| x == "go"));
        if !has_go {
            return Err(BuildError::NotBuildable(src.to_path_buf()));
        }
        let go = find_go().ok_or(BuildError::NoGo)?;
        let abs = src.canonicalize().map_err(|e| BuildError::Io(e.to_string()))?;
        let module = match mode {
            GoMode::Module => true,
            GoMode::Gopath => false,
            GoMode::Auto => abs.join("go.mod").is_file(),
        };
        // One build per source: the first takes the key's lock and builds, the others wait and reuse.
        let key = source_key(&abs, name, module, &go)?;
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
            go_build(&go, &abs, src, name, module, &part).await?;
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
        (from_source, reused) = (false, false);
    }
    std::fs::rename(&tmp, &out).map_err(|e| BuildError::Io(e.to_string()))?;
    let digest = digest_file(&out)?;
    Ok(Built { binary: out, digest, took: start.elapsed(), from_source, reused })
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Io(format!("{}: {e}", what.display()))
}

/// What a build's output depends on: every file of the folder (path and
/// content; hidden entries such as .git left out), the program's name, the
/// mode, the toolchain and the environment `go build` reads.
fn source_key(abs: &Path, name: &str, module: bool, go: &Path) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(format!("{name}\0{module}\0{}\0", go.display()));
    let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.len(), m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos())));
    h.update(format!("{:?}\0", stamp(go)));
    if !module {
        h.update(format!("{:?}\0", stamp(Path::new("/usr/share/gocode/src"))));
    }
    for var in ["GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOEXPERIMENT", "GOPROXY", "GONOSUMDB", "GOTOOLCHAIN"] {
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

/// Run `go build` of the folder into `out`.
async fn go_build(go: &Path, abs: &Path, src: &Path, name: &str, module: bool, out: &Path) -> Result<(), BuildError> {
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
    if module {
        mode_text = "module mode".to_string();
        cmd.current_dir(abs).arg("build").arg("-trimpath").arg("-o").arg(out).arg(".");
    } else {
        // GOPATH mode: the folder becomes lab.local/<name> in a private GOPATH,
        // with Debian's Go libraries after it.
        let gp = private_gopath()?;
        let pkg_dir = gp.path().join("src").join("lab.local");
        std::fs::create_dir_all(&pkg_dir).map_err(|e| BuildError::Io(e.to_string()))?;
        std::os::unix::fs::symlink(abs, pkg_dir.join(name)).map_err(|e| BuildError::Io(e.to_string()))?;
        let gopath = std::env::join_paths([gp.path().to_path_buf(), PathBuf::from("/usr/share/gocode")]).map_err(|e| BuildError::Io(e.to_string()))?;
        mode_text = "GOPATH mode (GO111MODULE=off, libraries from /usr/share/gocode)".to_string();
        cmd.env("GO111MODULE", "off").env("GOPATH", gopath).env("GOFLAGS", "").current_dir(gp.path()).arg("build").arg("-trimpath").arg("-o").arg(out).arg(format!("lab.local/{name}"));
        _gopath_guard = gp;
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

    #[tokio::test]
    async fn missing_and_unbuildable_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(build(&d.path().join("nope"), d.path(), "app", GoMode::Auto).await, Err(BuildError::Missing(_))));
        assert!(matches!(build(d.path(), d.path(), "app", GoMode::Auto).await, Err(BuildError::NotBuildable(_))));
        let f = d.path().join("notes.txt");
        std::fs::write(&f, "x").unwrap();
        assert!(matches!(build(&f, d.path(), "app", GoMode::Auto).await, Err(BuildError::NotBuildable(_))));
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
