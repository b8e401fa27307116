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

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=labs");
    println!("cargo:rerun-if-changed=compose-templates");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LAB_PIE");
    println!("cargo:rerun-if-env-changed=LAB_LIBGCC_S");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && std::env::var_os("LAB_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if os == "linux" && env == "gnu" && std::env::var_os("LAB_LIBGCC_S").is_none() {
        if let Some(eh) = libgcc_eh() {
            let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
            std::fs::create_dir_all(&out).expect("creating OUT_DIR/unwind");
            std::fs::write(out.join("libgcc_s.so"), format!("/* lab's build.rs: the unwinder, linked in */\nINPUT({})\n", eh.display())).expect("writing the libgcc_s linker script");
            println!("cargo:rustc-link-search=native={}", out.display());
        }
    }
}

/// The path of libgcc_eh.a as the C compiler (the linker driver) knows it.
fn libgcc_eh() -> Option<PathBuf> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let out = std::process::Command::new(cc).arg("-print-file-name=libgcc_eh.a").output().ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
