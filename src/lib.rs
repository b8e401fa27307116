//! lab: an orchestrator for Go practice labs. It reads a lab definition,
//! brings up the lab's dependencies and the learner's service, and verifies
//! the service with checks whose failures a learner can act on.
//!
//! The data flows one way: `lab` (definition) → `plan` (pure) → `backend`
//! (Docker) → `session` → `verify` → `event` → `report`.

/// lab's version and the commit it was built from (`lab --version`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("LAB_COMMIT"), ")");

pub mod backend;
pub mod build;
pub mod chaos;
pub mod checker;
pub mod class;
pub mod cli;
pub mod error;
pub mod event;
pub mod images;
pub mod init;
pub mod lab;
pub mod plan;
pub mod probe;
pub mod report;
pub mod session;
pub mod template;
pub mod ui;
pub mod verify;

#[cfg(test)]
mod unwinding {
    /// build.rs links the unwinder in from libgcc_eh.a: a panic must still
    /// unwind through frames and be caught, and a backtrace be taken.
    #[test]
    fn a_panic_unwinds_and_a_backtrace_is_taken() {
        struct Dropped<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = std::cell::Cell::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = Dropped(&dropped);
            std::hint::black_box(Vec::<u8>::new()).get(3).copied().expect("out of range")
        }));
        assert!(caught.is_err());
        assert!(dropped.get(), "the frame's destructor ran while unwinding");
        let bt = std::backtrace::Backtrace::force_capture();
        assert_eq!(bt.status(), std::backtrace::BacktraceStatus::Captured);
        assert!(bt.to_string().contains("a_panic_unwinds_and_a_backtrace_is_taken"), "{bt}");
    }
}
