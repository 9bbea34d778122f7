//! Exit codes: part of the contract with Argo's retryStrategy and with operators (README's table).

/// How a step ended. The numeric values are stable and documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Exit {
    /// Done; a no-op counts as done.
    #[default]
    Done = 0,
    /// A bug or an unexpected state of our own.
    Internal = 1,
    /// Bad flags, environment or input reference.
    Usage = 2,
    /// A precondition failed or a conflict: a human must look; retrying will not help.
    Precondition = 3,
    /// Network, 5xx, 429, stale resourceVersion: retry.
    Transient = 4,
    /// Vault sealed, uninitialised, standby or unreachable: retry later.
    Unavailable = 5,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The worse of two outcomes, for batches. Internal errors outrank everything but
    /// otherwise the higher code is the one an operator must act on first.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Done => 0,
            Exit::Transient => 1,
            Exit::Unavailable => 2,
            Exit::Precondition => 3,
            Exit::Usage => 4,
            Exit::Internal => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let all = [
            (Exit::Done, 0),
            (Exit::Internal, 1),
            (Exit::Usage, 2),
            (Exit::Precondition, 3),
            (Exit::Transient, 4),
            (Exit::Unavailable, 5),
        ];
        for (e, n) in all {
            assert_eq!(e.code(), n);
        }
    }

    #[test]
    fn worst_prefers_what_needs_a_human() {
        assert_eq!(Exit::Done.worst(Exit::Transient), Exit::Transient);
        assert_eq!(
            Exit::Precondition.worst(Exit::Transient),
            Exit::Precondition
        );
        assert_eq!(Exit::Unavailable.worst(Exit::Transient), Exit::Unavailable);
        assert_eq!(Exit::Done.worst(Exit::Done), Exit::Done);
    }
}
