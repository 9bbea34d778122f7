//! Retries inside one step run, for requests that are safe to repeat.
//!
//! Only idempotent or check-and-set-guarded requests go through here (reads, `cas=N`
//! writes, merge patches, resourceVersion-guarded patches, precondition-guarded deletes,
//! version deletes, logins); a repeat of one whose answer was lost either lands nowhere or
//! is refused by its guard, and the caller reads to tell. Attempts are bounded, waits grow
//! exponentially with jitter, and a server's Retry-After is honoured up to the cap: a longer
//! one ends the run with exit 4 so Argo's backoff takes over instead of a sleeping pod.
//!
//! Throttling is not a failure: every attempt takes its turn from the server's
//! [`Limiter`], and a throttled answer ([`Failed::Throttled`]) spends no attempt. It waits
//! for its next turn, however often, until the limiter's deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::throttle::{Limiter, Throttled};

/// How hard a step tries before it exits with the failure's documented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry inside the run).
    pub attempts: u32,
    /// First wait; it doubles per attempt, with jitter.
    pub base_delay: Duration,
    /// Longest single wait, a server's Retry-After included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// How one attempt failed.
pub enum Failed<E> {
    /// Transient (network, 5xx, 429, timeout): another attempt may succeed.
    Retryable {
        error: E,
        /// The server's Retry-After, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The server asked us to wait (429, or a 503 with a Retry-After) without handling the
    /// request: wait for the limiter's next turn, spending no attempt, until its deadline.
    Throttled {
        error: E,
        /// The server's Retry-After / X-Ratelimit-Reset, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Repeating cannot help (or is not safe): stop now.
    Final(E),
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` >= 1): "equal jitter", half of the
    /// exponential step fixed and half random, so concurrent steps spread out but never
    /// hammer. `None` when the server asks for more than the cap.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry_after.is_some_and(|r| r > self.max_delay) {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        let backoff = half + jitter;
        Some(backoff.max(retry_after.unwrap_or_default()))
    }

    /// Runs `attempt` (each in its turn from `limiter`) until it succeeds, fails finally, or
    /// the attempts are spent; returns the last error then. Throttled attempts do not count.
    pub async fn run<T, E, F, Fut>(
        &self,
        limiter: &Limiter,
        what: &str,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failed<E>>>,
    {
        let mut n = 1;
        loop {
            let turn = limiter.acquire().await;
            let answer = attempt().await;
            drop(turn);
            match answer {
                Ok(v) => {
                    limiter.served();
                    return Ok(v);
                }
                Err(Failed::Throttled { error, retry_after }) => {
                    if limiter.throttled(retry_after) == Throttled::GiveUp {
                        return Err(error);
                    }
                }
                Err(Failed::Final(e)) => {
                    // An answer all the same (a 404, a conflict): the server handled it.
                    limiter.served();
                    return Err(e);
                }
                Err(Failed::Retryable { error, retry_after }) => {
                    if n >= self.attempts.max(1) {
                        return Err(error);
                    }
                    let Some(wait) = self.delay(n, retry_after) else {
                        tracing::warn!(
                            what,
                            retry_after_s = retry_after.unwrap_or_default().as_secs(),
                            "the server asks to wait longer than --retry-max-delay; giving up for now"
                        );
                        return Err(error);
                    };
                    tracing::warn!(
                        what,
                        attempt = n,
                        of = self.attempts,
                        wait_ms = wait.as_millis() as u64,
                        retry_after = retry_after.is_some(),
                        error = %error,
                        "transient failure; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn delays_grow_with_jitter_within_the_cap() {
        let p = policy(10);
        for attempt in 1..12 {
            let exp = (Duration::from_millis(100) * (1 << (attempt - 1))).min(p.max_delay);
            for _ in 0..50 {
                let d = p.delay(attempt, None).unwrap();
                assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| p.delay(3, None)).collect();
        assert!(spread.len() > 1, "jitter varies the wait");
    }

    #[test]
    fn retry_after_is_a_floor_up_to_the_cap() {
        let p = policy(10);
        let d = p.delay(1, Some(Duration::from_millis(700))).unwrap();
        assert!(d >= Duration::from_millis(700));
        assert_eq!(p.delay(1, Some(Duration::from_secs(2))), None);
    }

    fn unthrottled() -> Limiter {
        Limiter::new("Vault", std::time::Instant::now() + Duration::from_secs(60))
    }

    #[tokio::test]
    async fn throttled_attempts_spend_no_attempt_and_wait_until_the_deadline() {
        let p = policy(2);
        let calls = Cell::new(0);
        // Five throttled answers, then served: two attempts would not have been enough.
        let r: Result<u32, String> = p
            .run(&unthrottled(), "x", || async {
                calls.set(calls.get() + 1);
                if calls.get() <= 5 {
                    Err(Failed::Throttled {
                        error: "429".into(),
                        retry_after: None,
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!((r, calls.get()), (Ok(7), 6));

        // Past the deadline a throttled answer ends it, whatever the attempts left.
        let gone = Limiter::new(
            "Vault",
            std::time::Instant::now() + Duration::from_millis(300),
        );
        calls.set(0);
        let t = std::time::Instant::now();
        let r: Result<u32, String> = policy(20)
            .run(&gone, "x", || async {
                calls.set(calls.get() + 1);
                Err(Failed::Throttled {
                    error: "429".into(),
                    retry_after: None,
                })
            })
            .await;
        assert_eq!(r, Err("429".into()));
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(gone.summary().unwrap().gave_up == 1);
    }

    #[tokio::test]
    async fn stops_after_the_budget_or_a_final_failure() {
        let policy = |attempts| RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1),
        };
        let calls = Cell::new(0);
        let r: Result<(), String> = policy(3)
            .run(&unthrottled(), "x", || async {
                calls.set(calls.get() + 1);
                Err(Failed::Retryable {
                    error: format!("e{}", calls.get()),
                    retry_after: None,
                })
            })
            .await;
        assert_eq!((r, calls.get()), (Err("e3".into()), 3));

        calls.set(0);
        let r: Result<(), String> = policy(3)
            .run(&unthrottled(), "x", || async {
                calls.set(calls.get() + 1);
                Err(Failed::Final("no".into()))
            })
            .await;
        assert_eq!((r, calls.get()), (Err("no".into()), 1));

        calls.set(0);
        let r: Result<u32, String> = policy(3)
            .run(&unthrottled(), "x", || async {
                calls.set(calls.get() + 1);
                if calls.get() < 2 {
                    Err(Failed::Retryable {
                        error: "e".into(),
                        retry_after: Some(Duration::from_millis(1)),
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!((r, calls.get()), (Ok(7), 2));

        calls.set(0);
        let r: Result<(), String> = policy(5)
            .run(&unthrottled(), "x", || async {
                calls.set(calls.get() + 1);
                Err(Failed::Retryable {
                    error: "throttled".into(),
                    retry_after: Some(Duration::from_secs(60)),
                })
            })
            .await;
        assert_eq!(
            (r, calls.get()),
            (Err("throttled".into()), 1),
            "a Retry-After beyond the cap ends the run"
        );
    }
}
