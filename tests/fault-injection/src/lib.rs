//! Test-only fault injection. [`proxy`] is a recording, fault-injecting reverse proxy that
//! stands in front of any test server, so faults and request logs come from one place; [`pki`]
//! is the throwaway CA its TLS listener uses. The schedules below (*when* a request fails) are
//! also used by test servers that still inject faults themselves, until they move behind it.

pub mod pki;
pub mod proxy;

pub use pki::{TestPki, TlsIdentity};
pub use proxy::{is_vault_sys, start, Dialect, Fault, Handle, Hook, Options, Record, INJECTED};

use std::time::Duration;

/// How one request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An error answer with this HTTP status; not served.
    Status(u16),
    /// 429 with a `Retry-After` of this many seconds; not served.
    Throttle { retry_after: u32 },
    /// The socket is closed without a response; not served.
    Reset,
    /// Served, then the socket is closed before the response: the client cannot tell
    /// whether the request landed.
    LostResponse,
    /// Served after this delay (beyond the client's timeout, the client gives up first).
    Hang(Duration),
}

/// `Next { count, failure }`: the failure while `count` lasts. Returns it (if any) and
/// whether the fault is spent and should clear itself.
pub fn count_down<'a>(count: &mut u32, failure: &'a Failure) -> (Option<&'a Failure>, bool) {
    let hit = (*count > 0).then_some(failure);
    *count = count.saturating_sub(1);
    (hit, *count == 0)
}

/// `KillAfter { ok, served }`: a client killed after `ok` served requests. The next request
/// is served with its answer lost when `served` (once), else reset; every later one is reset.
pub fn kill_after(ok: &mut u32, served: &mut bool) -> Option<Failure> {
    if *ok > 0 {
        *ok -= 1;
        None
    } else if *served {
        *served = false;
        Some(Failure::LostResponse)
    } else {
        Some(Failure::Reset)
    }
}

/// `Random { percent, seed, failures }`: fails with probability `percent`/100, the failure
/// picked from `failures`; `seed` is the generator's state, so a seed repeats its sequence.
pub fn random<'a>(percent: u8, seed: &mut u64, failures: &'a [Failure]) -> Option<&'a Failure> {
    let roll = splitmix64(seed);
    if failures.is_empty() || roll % 100 >= u64::from(percent) {
        return None;
    }
    Some(&failures[(splitmix64(seed) % failures.len() as u64) as usize])
}

/// splitmix64: a tiny, repeatable generator.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_down_fails_count_times_then_is_spent() {
        let f = Failure::Status(500);
        let mut count = 2;
        assert_eq!(count_down(&mut count, &f), (Some(&f), false));
        assert_eq!(count_down(&mut count, &f), (Some(&f), true));
        let mut zero = 0;
        assert_eq!(count_down(&mut zero, &f), (None, true));
    }

    #[test]
    fn kill_after_serves_then_loses_one_answer_then_resets_all() {
        let (mut ok, mut served) = (1, true);
        assert_eq!(kill_after(&mut ok, &mut served), None);
        assert_eq!(
            kill_after(&mut ok, &mut served),
            Some(Failure::LostResponse)
        );
        for _ in 0..3 {
            assert_eq!(kill_after(&mut ok, &mut served), Some(Failure::Reset));
        }
        let (mut ok, mut served) = (0, false);
        assert_eq!(kill_after(&mut ok, &mut served), Some(Failure::Reset));
    }

    #[test]
    fn random_repeats_for_a_seed_and_follows_the_rate() {
        let failures = [Failure::Status(500), Failure::Reset];
        let run = |mut seed| {
            (0..2000)
                .map(|_| random(20, &mut seed, &failures).cloned())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let failed = a.iter().filter(|x| x.is_some()).count();
        assert!((300..500).contains(&failed), "{failed} of 2000 at 20%");
        assert!(a.contains(&Some(Failure::Reset)) && a.contains(&Some(Failure::Status(500))));
        assert!(random(100, &mut 1, &[]).is_none(), "no failures, no fault");
    }
}
