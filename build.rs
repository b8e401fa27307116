//! Build script.
//!
//! 1. The built-in labs and compose templates are embedded with include_dir;
//!    rebuild when they change.
//! 2. The `lab` binary is linked as a position-dependent executable on Linux.
//!    `lab check` and the other short commands are dominated by process start
//!    on small inputs: a position-independent executable of this size carries
//!    about 70,000 relative relocations, and applying them at every start
//!    touches all of .data.rel.ro (about 1.8 MB, some 450 page faults, about
//!    2 ms). A position-dependent executable has them resolved at link time.
//!    Only the binaries are affected (libraries, build scripts and proc-macros
//!    stay as they are). Set LAB_PIE=1 to build a position-independent one.
//! 3. On Linux with glibc, the unwinder is linked in from libgcc_eh.a (the
//!    static half of libgcc_s, what `+crt-static` builds use) instead of being
//!    loaded from libgcc_s.so.1 at every start. Loading libgcc_s runs its CPU
//!    detection (a dozen CPUID instructions, each a trap to the hypervisor on
//!    a virtual machine) before main: 0.1-0.2 ms of a 2 ms `lab check`. Rust
//!    asks the linker for `-lgcc_s`; a linker script of that name in OUT_DIR,
//!    searched first, names libgcc_eh.a instead. Only the `_Unwind_*`
//!    functions come from it. Skipped when the C compiler does not know
//!    libgcc_eh.a; set LAB_LIBGCC_S=1 to keep the shared one.
//! 4. On Linux with glibc, the `lab` binary is linked statically: no dynamic
//!    loader runs at start (mapping libc and libm, resolving symbols: about
//!    0.3 ms of every run on a virtual machine), and the same file runs in
//!    any container image, as the fault proxy and the webhook sink do (they
//!    run lab's own binary inside a dependency's image). `+crt-static` would
//!    do it too but, without `--target` on every build, it also applies to
//!    proc-macros, which cannot be static. So the binaries alone get `-static`,
//!    and the C libraries Rust names (`-lc`, `-lm`, ...) are found as linker
//!    scripts in a directory of OUT_DIR, each naming its static archive
//!    (`cc -print-file-name=libc.a`). Name resolution still works (glibc has
//!    its `files` and `dns` sources built in). Skipped, leaving a dynamic
//!    binary, when an archive is missing (no libc6-dev) or the unwinder is
//!    shared; set LAB_DYNAMIC=1 for a dynamic one.
//! 5. The commit lab is built from (`git rev-parse`), for `lab --version`, as
//!    LAB_COMMIT; a LAB_COMMIT in the environment overrides it (a packager
//!    without the git history); without either it is `unknown`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=labs");
    println!("cargo:rerun-if-changed=compose-templates");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LAB_PIE");
    println!("cargo:rerun-if-env-changed=LAB_LIBGCC_S");
    println!("cargo:rerun-if-env-changed=LAB_DYNAMIC");
    commit();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && std::env::var_os("LAB_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if os == "linux" && env == "gnu" && std::env::var_os("LAB_LIBGCC_S").is_none() {
        if let Some(eh) = cc_file("libgcc_eh.a") {
            let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
            std::fs::create_dir_all(&out).expect("creating OUT_DIR/unwind");
            std::fs::write(out.join("libgcc_s.so"), format!("/* lab's build.rs: the unwinder, linked in */\nINPUT({})\n", eh.display())).expect("writing the libgcc_s linker script");
            println!("cargo:rustc-link-search=native={}", out.display());
            if std::env::var_os("LAB_DYNAMIC").is_none() && std::env::var_os("LAB_PIE").is_none() {
                link_statically();
            }
        }
    }
}

/// The C libraries rustc asks for on linux-gnu, besides gcc_s.
const C_LIBS: [&str; 6] = ["c", "m", "rt", "pthread", "dl", "util"];

/// Links the binaries statically (see 4. above): a linker script per C library
/// in a directory that only the binaries' link searches (`-L` given as a link
/// argument of the binaries applies to all their `-l`s, ahead of the system's
/// directories), and `-static`.
fn link_statically() {
    let mut scripts = Vec::new();
    for lib in C_LIBS {
        match cc_file(&format!("lib{lib}.a")) {
            Some(archive) => scripts.push((lib, archive)),
            None => return,
        }
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("static");
    std::fs::create_dir_all(&dir).expect("creating OUT_DIR/static");
    for (lib, archive) in scripts {
        std::fs::write(dir.join(format!("lib{lib}.so")), format!("/* lab's build.rs: linked statically */\nGROUP({})\n", archive.display())).expect("writing a C library's linker script");
    }
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bins=-static");
}

/// The path of a library file (libgcc_eh.a, libc.a, ...) as the C compiler
/// (the linker driver) knows it.
fn cc_file(name: &str) -> Option<PathBuf> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let out = std::process::Command::new(cc).arg(format!("-print-file-name={name}")).output().ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}

/// The output of a git command, if it ran and said something.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `LAB_COMMIT` for the crate: the commit's short hash and date.
fn commit() {
    println!("cargo:rerun-if-env-changed=LAB_COMMIT");
    let commit = std::env::var("LAB_COMMIT").ok().filter(|s| !s.is_empty()).or_else(|| {
        // Build again when HEAD moves: HEAD itself, the branch it points at, packed refs.
        if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
            let dir = std::path::PathBuf::from(dir);
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            println!("cargo:rerun-if-changed={}", dir.join("packed-refs").display());
            if let Some(r) = std::fs::read_to_string(dir.join("HEAD")).ok().and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string())) {
                println!("cargo:rerun-if-changed={}", dir.join(r).display());
            }
        }
        let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
        let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_default();
        Some(if date.is_empty() { hash } else { format!("{hash} {date}") })
    });
    println!("cargo:rustc-env=LAB_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
