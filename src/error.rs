//! The library's top-level error and the exit codes the CLI maps it to.

use miette::Diagnostic;

use crate::backend::BackendError;
use crate::build::BuildError;
use crate::images::bake::BakeError;
use crate::lab::LoadError;
use crate::plan::PlanError;

/// Exit codes of `lab`, documented in `lab --help` and the README.
pub mod exit {
    /// Everything worked; every check passed.
    pub const OK: i32 = 0;
    /// The learner's service failed a check (or did not build, or did not start).
    pub const CHECKS_FAILED: i32 = 1;
    /// A bad lab definition or bad arguments.
    pub const BAD_INPUT: i32 = 2;
    /// The backend (Docker engine, Kubernetes API server) could not be reached.
    pub const BACKEND_UNREACHABLE: i32 = 3;
    /// lab itself could not run: a missing image, a dependency that never became
    /// ready, a failed bake, a missing toolchain.
    pub const LAB_FAILED: i32 = 4;
    /// A history checker could not decide within its budget (`lab check`).
    pub const UNKNOWN: i32 = 5;
    /// Interrupted (Ctrl-C); what was started has been cleaned up.
    pub const INTERRUPTED: i32 = 130;
}

/// Anything that stops a command.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Bake(#[from] BakeError),
    /// A dependency never became ready: lab's problem, not the learner's.
    #[error("{container} did not become ready within {timeout}: {last}\n{logs}")]
    #[diagnostic(help("the last log lines of the container are above; `lab logs` shows more"))]
    DependencyNotReady { container: String, timeout: String, last: String, logs: String },
    /// The learner's service never became ready.
    #[error("your service ({container}) did not become ready within {timeout}: {last}\n{logs}")]
    #[diagnostic(help("it must answer {probe}; its last log lines are above"))]
    ServiceNotReady { container: String, timeout: String, last: String, probe: String, logs: String },
    /// The learner's service ended while lab waited for it to become ready.
    #[error("your service ({container}) exited with code {code} after {after}{oom}\n{logs}")]
    #[diagnostic(help("it must keep running and answer {probe}; its last log lines are above"))]
    ServiceExited { container: String, code: i64, after: String, oom: String, probe: String, logs: String },
    #[error("no running instance of lab `{0}`")]
    #[diagnostic(help("start it with `lab up {0} --solution PATH` (or give --solution/--target to `lab verify`)"))]
    NotUp(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Chaos(Box<crate::chaos::ChaosError>),
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(#[from] crate::class::RosterError),
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Load(_) | Error::Usage(_) | Error::Plan(_) | Error::Roster(_) => exit::BAD_INPUT,
            Error::Backend(b) if b.unreachable() => exit::BACKEND_UNREACHABLE,
            Error::Backend(BackendError::Unsupported { .. }) => exit::BAD_INPUT,
            Error::Build(BuildError::Compile { .. } | BuildError::Libraries { .. }) | Error::ServiceNotReady { .. } | Error::ServiceExited { .. } => exit::CHECKS_FAILED,
            Error::Build(BuildError::Missing(_) | BuildError::NotBuildable(_)) => exit::BAD_INPUT,
            Error::NotUp(_) => exit::BAD_INPUT,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Chaos(e) => match e.as_ref() {
                // A lab that does not say how to find its leader is a definition problem.
                crate::chaos::ChaosError::Usage(_) | crate::chaos::ChaosError::NoTarget { .. } | crate::chaos::ChaosError::NoLeaderProbe { .. } => exit::BAD_INPUT,
                crate::chaos::ChaosError::Backend(b) if b.unreachable() => exit::BACKEND_UNREACHABLE,
                crate::chaos::ChaosError::Backend(BackendError::Unsupported { .. }) => exit::BAD_INPUT,
                _ => exit::LAB_FAILED,
            },
            _ => exit::LAB_FAILED,
        }
    }
}
