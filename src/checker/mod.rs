//! History checkers (linearizability). Being written.
