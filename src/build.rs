//! Building the learner's solution: a Go source folder is built with
//! `go build` into a static binary; an executable file is taken as it is.
//! Either way the binary is copied into lab's cache, which is what gets mounted.

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
    std::fs::create_dir_all(&out_dir).map_err(|e| BuildError::Io(format!("{}: {e}", out_dir.display())))?;
    let out = out_dir.join(name);
    let tmp = out_dir.join(format!(".{name}.tmp"));
    let from_source;
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
        let gocache = std::env::var_os("GOCACHE").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("go-build"));
        let mut cmd = Command::new(&go);
        cmd.env("CGO_ENABLED", "0").env("GOCACHE", &gocache).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).kill_on_drop(true);
        let _gopath_guard;
        let mode_text;
        if module {
            mode_text = "module mode".to_string();
            cmd.current_dir(&abs).arg("build").arg("-trimpath").arg("-o").arg(&tmp).arg(".");
        } else {
            // GOPATH mode: the folder becomes lab.local/<name> in a private GOPATH,
            // with Debian's Go libraries after it.
            let gp = tempfile::Builder::new().prefix("lab-gopath-").tempdir().map_err(|e| BuildError::Io(e.to_string()))?;
            let pkg_dir = gp.path().join("src").join("lab.local");
            std::fs::create_dir_all(&pkg_dir).map_err(|e| BuildError::Io(e.to_string()))?;
            std::os::unix::fs::symlink(&abs, pkg_dir.join(name)).map_err(|e| BuildError::Io(e.to_string()))?;
            let gopath = std::env::join_paths([gp.path().to_path_buf(), PathBuf::from("/usr/share/gocode")]).map_err(|e| BuildError::Io(e.to_string()))?;
            mode_text = "GOPATH mode (GO111MODULE=off, libraries from /usr/share/gocode)".to_string();
            cmd.env("GO111MODULE", "off").env("GOPATH", gopath).env("GOFLAGS", "").current_dir(gp.path()).arg("build").arg("-trimpath").arg("-o").arg(&tmp).arg(format!("lab.local/{name}"));
            _gopath_guard = gp;
        }
        let output = cmd.output().await.map_err(|e| BuildError::Io(format!("running {}: {e}", go.display())))?;
        if !output.status.success() {
            let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            return Err(BuildError::Compile { dir: src.to_path_buf(), output: text.trim_end().to_string(), mode: mode_text });
        }
        from_source = true;
    } else {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(src).map_err(|e| BuildError::Io(e.to_string()))?;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(BuildError::NotBuildable(src.to_path_buf()));
        }
        std::fs::copy(src, &tmp).map_err(|e| BuildError::Io(format!("copying {}: {e}", src.display())))?;
        from_source = false;
    }
    std::fs::rename(&tmp, &out).map_err(|e| BuildError::Io(e.to_string()))?;
    let digest = digest_file(&out)?;
    Ok(Built { binary: out, digest, took: start.elapsed(), from_source })
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
