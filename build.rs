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

fn main() {
    println!("cargo:rerun-if-changed=labs");
    println!("cargo:rerun-if-changed=compose-templates");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LAB_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && std::env::var_os("LAB_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
