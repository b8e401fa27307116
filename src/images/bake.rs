//! Baking the `debian` image set: debootstrap a minimal Debian with the
//! recipe's packages, write its files, run its setup in a chroot, and import the
//! tree as an image. Idempotent: an image that exists is kept unless forced.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::image::CreateImageOptions;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::debian::Recipe;

/// The Debian release the images are built from.
pub const SUITE: &str = "bookworm";

/// Failure to bake.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BakeError {
    #[error("baking images needs root (debootstrap and chroot)")]
    #[diagnostic(help("run it as root, e.g. `sudo lab images bake`"))]
    NotRoot,
    #[error("debootstrap is not installed")]
    #[diagnostic(help("install it: `apt-get install debootstrap`"))]
    NoDebootstrap,
    #[error("{step} failed for image {image}: {detail}")]
    Step { image: String, step: &'static str, detail: String },
    #[error("importing {image} into Docker failed: {detail}")]
    Import { image: String, detail: String },
}

/// Options of a bake.
#[derive(Debug, Clone)]
pub struct BakeOptions {
    /// Debian mirror (`LAB_DEBIAN_MIRROR`, default deb.debian.org).
    pub mirror: String,
    /// Where downloaded packages are kept between bakes.
    pub cache_dir: PathBuf,
    /// Where root file systems are built (removed afterwards).
    pub work_dir: PathBuf,
}

impl Default for BakeOptions {
    fn default() -> Self {
        BakeOptions {
            mirror: std::env::var("LAB_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into()),
            cache_dir: PathBuf::from("/var/cache/lab/debs"),
            work_dir: std::env::temp_dir(),
        }
    }
}

/// Whether an image exists locally.
pub async fn exists(docker: &Docker, tag: &str) -> bool {
    docker.inspect_image(tag).await.is_ok()
}

fn step_err(image: &str, step: &'static str, detail: impl Into<String>) -> BakeError {
    BakeError::Step { image: image.to_string(), step, detail: detail.into() }
}

/// Bake one recipe. `progress` receives short status lines.
pub async fn bake(docker: &Docker, recipe: &Recipe, opts: &BakeOptions, progress: &(dyn Fn(&str) + Sync)) -> Result<Duration, BakeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(BakeError::NotRoot);
    }
    let debootstrap = ["/usr/sbin/debootstrap", "/sbin/debootstrap", "/usr/bin/debootstrap"].into_iter().find(|p| Path::new(p).exists()).ok_or(BakeError::NoDebootstrap)?;
    let start = Instant::now();
    let tmp = tempfile::Builder::new().prefix("lab-bake-").tempdir_in(&opts.work_dir).map_err(|e| step_err(recipe.tag, "making a work folder", e.to_string()))?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir_all(&opts.cache_dir).map_err(|e| step_err(recipe.tag, "making the package cache", e.to_string()))?;

    progress("debootstrap");
    let mut cmd = Command::new(debootstrap);
    cmd.arg("--variant=minbase").arg(format!("--cache-dir={}", opts.cache_dir.display()));
    if !recipe.packages.is_empty() {
        cmd.arg(format!("--include={}", recipe.packages.join(",")));
    }
    cmd.arg(SUITE).arg(&root).arg(&opts.mirror);
    run_streaming(cmd, recipe.tag, "debootstrap", progress).await?;

    for (path, content, mode) in recipe.files {
        let dest = root.join(path.trim_start_matches('/'));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| step_err(recipe.tag, "writing files", e.to_string()))?;
        }
        std::fs::write(&dest, content).map_err(|e| step_err(recipe.tag, "writing files", format!("{}: {e}", dest.display())))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(*mode)).map_err(|e| step_err(recipe.tag, "writing files", e.to_string()))?;
    }
    if !recipe.setup.is_empty() {
        progress("setup");
        let mut cmd = Command::new("chroot");
        cmd.arg(&root).arg("/bin/sh").arg("-ec").arg(recipe.setup).env("DEBIAN_FRONTEND", "noninteractive");
        run_streaming(cmd, recipe.tag, "setup in chroot", progress).await?;
    }
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = root.join(dir);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    progress("import");
    let tar = Command::new("tar").arg("-C").arg(&root).arg("-c").arg(".").stdout(Stdio::piped()).stderr(Stdio::piped()).output().await.map_err(|e| step_err(recipe.tag, "tar", e.to_string()))?;
    if !tar.status.success() {
        return Err(step_err(recipe.tag, "tar", String::from_utf8_lossy(&tar.stderr).to_string()));
    }
    let (repo, tag) = recipe.tag.rsplit_once(':').unwrap_or((recipe.tag, "latest"));
    let mut changes: Vec<&str> = recipe.changes.to_vec();
    let label = format!("LABEL lab.image-set=debian lab.image={}", recipe.name);
    changes.push(&label);
    let options = CreateImageOptions { from_src: "-", repo, tag, changes, ..Default::default() };
    let mut stream = docker.create_image(Some(options), Some(tar.stdout.into()), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| BakeError::Import { image: recipe.tag.into(), detail: e.to_string() })?;
        if let Some(err) = info.error {
            return Err(BakeError::Import { image: recipe.tag.into(), detail: err });
        }
    }
    drop(tmp);
    Ok(start.elapsed())
}

async fn run_streaming(mut cmd: Command, image: &str, step: &'static str, progress: &(dyn Fn(&str) + Sync)) -> Result<(), BakeError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| step_err(image, step, e.to_string()))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut tail: Vec<String> = Vec::new();
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let (mut out_done, mut err_done) = (false, false);
    while !(out_done && err_done) {
        tokio::select! {
            l = out.next_line(), if !out_done => match l { Ok(Some(l)) => { progress(&l); push(&mut tail, l); } _ => out_done = true },
            l = err.next_line(), if !err_done => match l { Ok(Some(l)) => push(&mut tail, l), _ => err_done = true },
        }
    }
    let status = child.wait().await.map_err(|e| step_err(image, step, e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(step_err(image, step, format!("{status}; last lines:\n{}", tail.join("\n"))))
    }
}

fn push(tail: &mut Vec<String>, l: String) {
    tail.push(l);
    if tail.len() > 15 {
        tail.remove(0);
    }
}
