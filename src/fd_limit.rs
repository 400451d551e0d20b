//! The open-files limit: every connection holds a descriptor, so the server raises its soft limit
//! to the hard one at start-up (as a shell's `ulimit -n $(ulimit -Hn)` would). A soft limit of
//! 1,024, the default of many systems, would otherwise leave connections past about a thousand
//! waiting unaccepted (and unanswered) while the hard limit allows far more.

/// The soft open-files limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the process started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub after: Option<u64>,
}

/// Raises the soft open-files limit to the hard limit. Failing to raise it is not fatal: the limit
/// is left as it was. An unlimited hard limit (not possible on Linux, where it is capped by
/// `fs.nr_open`) leaves the soft limit alone.
#[cfg(unix)]
pub fn raise() -> Raised {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let unchanged = Raised { before: now.current, after: now.current };
    let Some(target) = now.maximum else { return unchanged };
    if now.current.is_none_or(|c| c >= target) {
        return unchanged;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: now.maximum }) {
        Ok(()) => Raised { before: now.current, after: Some(target) },
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            unchanged
        }
    }
}

/// Elsewhere the limit is left alone.
#[cfg(not(unix))]
pub fn raise() -> Raised {
    Raised { before: None, after: None }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Where the soft limit starts below the hard one, this checks the raise; where they start
    /// equal, only that nothing is lowered (tests/integration/fd_limit.rs starts the server with a low one).
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let r = raise();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, r.after);
        if let Some(max) = now.maximum {
            assert_eq!(now.current, Some(max));
        }
        // A second call finds nothing to do.
        assert_eq!(raise(), Raised { before: r.after, after: r.after });
    }
}
