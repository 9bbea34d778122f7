//! Throttling: one [`Limiter`] per server (Vault, Kubernetes) per step process, shared by
//! every request to that server, so a batch slows down as a whole when the server says it is
//! asked too much (a 429, or a 503 that says when to come back) instead of failing items.
//!
//! AIMD on two knobs, both off until the first throttled answer (an unthrottled run pays
//! nothing):
//! - **rate**: requests are started no faster than `rate` per second. A throttled answer cuts
//!   it to [`CUT`] × the answers actually served in the last second (what the server admits),
//!   at most once per second; every served answer adds back, so it grows by a tenth per
//!   second and finds the server's limit again (quotas without headers, like OpenBao's
//!   default, leave no other way to learn it). A throttle before anything was served in the
//!   last second (a step starting while an earlier one has used up the quota's window)
//!   measures nothing: it pauses every request for one second instead, and the next throttle
//!   cuts from what the server served meanwhile (cutting such a cold start to the floor left
//!   the step growing back by a tenth per second, far below the quota).
//! - **concurrency**: requests in flight; halved on a cut, grown by one per window served.
//!
//! A server's `Retry-After` (or `X-Ratelimit-Reset`) pauses every request to it until then.
//! A throttled request is never failed for being throttled: it waits its turn and is sent
//! again, however often, until the step's deadline; only then does it fail (exit 4, Argo
//! retries the step later). A 429 is an answer the server gives *instead of* handling the
//! request, so even a request that is otherwise never repeated waits and goes again.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `--deadline`'s default: below the 15-minute `activeDeadlineSeconds` of the shipped
/// templates, so a throttled step still writes its results and exits 4 itself.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// A cut keeps this share of what the server served in the last second.
pub const CUT: f64 = 0.8;
/// The slowest pace a cut can reach (requests per second).
pub const MIN_RATE: f64 = 1.0;
/// Cuts are at most this far apart: the measuring window of the served rate.
const COOLDOWN: Duration = Duration::from_secs(1);

/// The limiter of one server's requests in one step process.
pub struct Limiter {
    server: &'static str,
    deadline: Instant,
    state: Mutex<State>,
    freed: tokio::sync::Notify,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Limiter")
            .field("server", &self.server)
            .field("rate", &s.rate)
            .field("window", &s.window)
            .field("throttled", &s.throttled)
            .finish()
    }
}

#[derive(Default)]
struct State {
    /// Requests per second; `None` until the first throttled answer.
    rate: Option<f64>,
    /// Requests in flight at most; `None` until the first throttled answer.
    window: Option<usize>,
    /// Served answers towards the next window increase.
    window_credit: usize,
    in_flight: usize,
    next_slot: Option<Instant>,
    paused_until: Option<Instant>,
    last_cut: Option<Instant>,
    /// Served answers of the last second.
    served: VecDeque<Instant>,
    // For the summary.
    throttled: u64,
    first_throttled: Option<Instant>,
    last_throttled: Option<Instant>,
    lowest_rate: Option<f64>,
    lowest_window: Option<usize>,
    gave_up: u64,
}

/// What a throttled request does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Wait for its turn and go again.
    Wait,
    /// The deadline is reached (or the server's wait reaches past it): fail with exit 4.
    GiveUp,
}

/// What [`Limiter::acquire`] does next.
enum Wait {
    /// Start at this instant (the slot is taken).
    Go(Instant),
    /// The server's pause.
    Until(Instant),
    /// Every slot of the window is taken.
    Slot,
}

/// A slot for one request in flight; dropping it frees the slot.
pub struct Permit<'a> {
    limiter: &'a Limiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.limiter.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.limiter.freed.notify_one();
    }
}

impl Limiter {
    /// `server` names it in logs ("Vault", "Kubernetes"); throttled requests wait at most
    /// until `deadline`.
    pub fn new(server: &'static str, deadline: Instant) -> Self {
        Limiter {
            server,
            deadline,
            state: Mutex::new(State::default()),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this request's turn: the server's pause, a free slot, the paced start.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let turn = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.paused_until {
                    // A pause beyond the deadline is not waited for: the request goes and
                    // its throttled answer ends it at once.
                    Some(until) if until > now && until <= self.deadline => Wait::Until(until),
                    _ if s.window.is_some_and(|w| s.in_flight >= w) => Wait::Slot,
                    _ => {
                        s.in_flight += 1;
                        match s.rate {
                            Some(rate) => {
                                let slot = s.next_slot.map_or(now, |n| n.max(now));
                                s.next_slot = Some(slot + Duration::from_secs_f64(1.0 / rate));
                                Wait::Go(slot)
                            }
                            None => Wait::Go(now),
                        }
                    }
                }
            };
            match turn {
                Wait::Go(start) => {
                    let permit = Permit { limiter: self };
                    tokio::time::sleep_until(start.into()).await;
                    return permit;
                }
                Wait::Until(until) => tokio::time::sleep_until(until.into()).await,
                // A freed slot notifies; the timeout covers a window that grew meanwhile.
                Wait::Slot => {
                    let _ = tokio::time::timeout(Duration::from_millis(50), self.freed.notified())
                        .await;
                }
            }
        }
    }

    /// The server handled a request (whatever it answered): the pace grows back.
    pub fn served(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        s.served.push_back(now);
        while s.served.front().is_some_and(|t| now - *t > COOLDOWN) {
            s.served.pop_front();
        }
        if let Some(rate) = s.rate {
            // A tenth of the rate per second: each served answer adds 0.1.
            s.rate = Some(rate + 0.1);
        }
        if let Some(w) = s.window {
            s.window_credit += 1;
            if s.window_credit >= w {
                s.window_credit = 0;
                s.window = Some(w + 1);
                drop(s);
                self.freed.notify_one();
            }
        }
    }

    /// The server asked us to wait (`retry_after`: its hint, if any). Cuts the pace and
    /// concurrency (once per second), pauses everyone for the hint, and says whether the
    /// request may wait for another turn.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Throttled {
        self.throttled_at(Instant::now(), retry_after)
    }

    fn throttled_at(&self, now: Instant, retry_after: Option<Duration>) -> Throttled {
        let mut s = self.lock();
        s.throttled += 1;
        s.last_throttled = Some(now);
        let first = s.first_throttled.is_none();
        if first {
            s.first_throttled = Some(now);
        }
        if let Some(wait) = retry_after.filter(|w| !w.is_zero()) {
            let until = now + wait;
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        }
        if s.last_cut.is_none_or(|t| now.duration_since(t) >= COOLDOWN) {
            s.last_cut = Some(now);
            while s
                .served
                .front()
                .is_some_and(|t| now.duration_since(*t) > COOLDOWN)
            {
                s.served.pop_front();
            }
            let served = s.served.len() as f64;
            let (rate, window) = if s.rate.is_none() && served == 0.0 {
                // Cold: nothing served to measure the server's rate by. Wait out one window
                // with half the requests in flight; the next throttle measures and cuts. (Not
                // past the deadline: the request then goes and its answer ends it.)
                let until = (now + COOLDOWN).min(self.deadline);
                s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
                (None, (s.in_flight.max(1) / 2).max(1))
            } else {
                let base = match (s.rate, served > 0.0) {
                    (Some(rate), true) => rate.min(served),
                    (Some(rate), false) => rate,
                    (None, _) => served,
                };
                let rate = (base * CUT).max(MIN_RATE);
                let in_flight = s.in_flight.max(1);
                let window = (s.window.map_or(in_flight, |w| w.min(in_flight)) / 2).max(1);
                s.rate = Some(rate);
                s.lowest_rate = Some(s.lowest_rate.map_or(rate, |l| l.min(rate)));
                (Some(rate), window)
            };
            s.window = Some(window);
            s.window_credit = 0;
            s.lowest_window = Some(s.lowest_window.map_or(window, |l| l.min(window)));
            if first {
                tracing::warn!(
                    server = self.server,
                    rate_per_s = rate.map(|r| r.round() as u64),
                    paused_ms = rate.is_none().then_some(COOLDOWN.as_millis() as u64),
                    concurrency = window,
                    retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                    deadline_in_s = self.deadline.saturating_duration_since(now).as_secs(),
                    "{} is throttling this step; slowing down (throttled requests wait, until --deadline)",
                    self.server
                );
            }
        }
        let past_deadline =
            now >= self.deadline || retry_after.is_some_and(|w| now + w > self.deadline);
        if past_deadline {
            s.gave_up += 1;
            if s.gave_up == 1 {
                tracing::warn!(
                    server = self.server,
                    "{} still throttles this step at --deadline (or asks to wait past it); \
                     throttled requests now fail with exit 4 and Argo retries the step later",
                    self.server
                );
            }
            return Throttled::GiveUp;
        }
        Throttled::Wait
    }

    /// The end-of-run figures, `None` when the server never throttled.
    pub fn summary(&self) -> Option<Summary> {
        let s = self.lock();
        let first = s.first_throttled?;
        Some(Summary {
            throttled_answers: s.throttled,
            throttled_for: s.last_throttled.unwrap_or(first).duration_since(first),
            lowest_rate: s.lowest_rate,
            lowest_concurrency: s.lowest_window.unwrap_or(1),
            final_rate: s.rate,
            gave_up: s.gave_up,
        })
    }
}

/// How much a server throttled one step process.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub throttled_answers: u64,
    /// From the first throttled answer to the last.
    pub throttled_for: Duration,
    /// `None` when no throttle measured a rate to cut to (only a cold start's pause).
    pub lowest_rate: Option<f64>,
    pub lowest_concurrency: usize,
    pub final_rate: Option<f64>,
    /// Throttled requests failed at the deadline.
    pub gave_up: u64,
}

/// The one summary line, when the limiter's last owner lets it go (the end of the step).
impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(s) = self.summary() {
            tracing::info!(
                server = self.server,
                throttled_answers = s.throttled_answers,
                throttled_for_s = format_args!("{:.1}", s.throttled_for.as_secs_f64()),
                lowest_rate_per_s = s.lowest_rate.map(|r| r.round() as u64),
                lowest_concurrency = s.lowest_concurrency,
                final_rate_per_s = s.final_rate.map(|r| r.round() as u64),
                failed_at_deadline = s.gave_up,
                "{} throttled this step for {:.1} s; lowest rate {}",
                self.server,
                s.throttled_for.as_secs_f64(),
                s.lowest_rate
                    .map_or("not cut (paused only)".to_owned(), |r| {
                        format!("{} requests/s", r.round() as u64)
                    })
            );
        }
    }
}

/// A server's wait hint: `Retry-After` (seconds, or an HTTP date), else `X-Ratelimit-Reset`
/// (seconds until the window resets, or a Unix time as some servers send it).
pub fn wait_hint(retry_after: Option<&str>, ratelimit_reset: Option<&str>) -> Option<Duration> {
    let now = jiff::Timestamp::now();
    let seconds_or_date = |v: &str| -> Option<Duration> {
        let v = v.trim();
        if let Ok(n) = v.parse::<u64>() {
            // A Unix time, not a delay: no server asks for a 30-year wait.
            if n > 1_000_000_000 {
                return Some(Duration::from_secs(
                    n.saturating_sub(now.as_second().max(0) as u64),
                ));
            }
            return Some(Duration::from_secs(n));
        }
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
        Some(at.duration_since(now).try_into().unwrap_or(Duration::ZERO))
    };
    retry_after
        .and_then(seconds_or_date)
        .or_else(|| ratelimit_reset.and_then(seconds_or_date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new("Vault", Instant::now() + Duration::from_secs(60))
    }

    #[tokio::test]
    async fn an_unthrottled_limiter_neither_paces_nor_bounds() {
        let l = limiter();
        let t = Instant::now();
        let permits: Vec<_> = futures::future::join_all((0..100).map(|_| l.acquire())).await;
        assert_eq!(permits.len(), 100);
        assert!(t.elapsed() < Duration::from_millis(50));
        drop(permits);
        assert_eq!(l.summary(), None, "no summary without throttling");
    }

    #[test]
    fn a_throttle_cuts_to_what_the_server_served_and_served_answers_grow_it_back() {
        let l = limiter();
        for _ in 0..200 {
            l.served();
        }
        l.lock().in_flight = 8;
        let now = Instant::now();
        assert_eq!(l.throttled_at(now, None), Throttled::Wait);
        {
            let s = l.lock();
            assert_eq!(s.rate, Some(200.0 * CUT));
            assert_eq!(s.window, Some(4), "concurrency halved");
        }
        // More throttled answers within the second do not cut again.
        l.throttled_at(now + Duration::from_millis(10), None);
        assert_eq!(l.lock().rate, Some(200.0 * CUT));
        // Served answers grow the rate by a tenth per answer, the window by one per window.
        for _ in 0..4 {
            l.served();
        }
        let s = l.lock();
        assert!((s.rate.unwrap() - (160.0 + 0.4)).abs() < 1e-9);
        assert_eq!(s.window, Some(5));
    }

    #[test]
    fn a_cold_first_throttle_pauses_and_measures_instead_of_cutting_to_the_floor() {
        // A step starting while the quota's window is used up: throttled before anything
        // was served.
        let l = limiter();
        l.lock().in_flight = 8;
        let now = Instant::now();
        assert_eq!(l.throttled_at(now, None), Throttled::Wait);
        {
            let s = l.lock();
            assert_eq!(s.rate, None, "no rate measured, none set");
            assert_eq!(s.window, Some(4), "concurrency halved");
            assert_eq!(
                s.paused_until,
                Some(now + COOLDOWN),
                "everyone waits one window"
            );
        }
        // The server serves 250 in the next window, then throttles again: the cut is from
        // what it served, not from the floor.
        for _ in 0..250 {
            l.served();
        }
        l.throttled_at(now + COOLDOWN, None);
        assert_eq!(l.lock().rate, Some(250.0 * CUT));
        let s = l.summary().unwrap();
        assert_eq!(s.lowest_rate, Some(250.0 * CUT));
        assert_eq!(s.throttled_answers, 2);
    }

    #[test]
    fn repeated_cuts_stop_at_the_floor_and_the_summary_keeps_the_lowest() {
        let l = limiter();
        for _ in 0..100 {
            l.served();
        }
        let t = Instant::now();
        for i in 0..40 {
            l.throttled_at(t + COOLDOWN * i, None);
        }
        let s = l.summary().unwrap();
        assert_eq!(s.lowest_rate, Some(MIN_RATE));
        assert_eq!(s.lowest_concurrency, 1);
        assert_eq!(s.throttled_answers, 40);
        assert_eq!(s.throttled_for, COOLDOWN * 39);
        assert_eq!(s.gave_up, 0);
    }

    #[test]
    fn only_the_deadline_ends_the_wait() {
        let start = Instant::now();
        let l = Limiter::new("Kubernetes", start + Duration::from_secs(10));
        assert_eq!(l.throttled_at(start, None), Throttled::Wait);
        assert_eq!(
            l.throttled_at(start + Duration::from_secs(5), Some(Duration::from_secs(3))),
            Throttled::Wait
        );
        // A hint reaching past the deadline, or the deadline itself, ends it.
        assert_eq!(
            l.throttled_at(start + Duration::from_secs(5), Some(Duration::from_secs(6))),
            Throttled::GiveUp
        );
        assert_eq!(
            l.throttled_at(start + Duration::from_secs(10), None),
            Throttled::GiveUp
        );
        assert_eq!(l.summary().unwrap().gave_up, 2);
    }

    #[tokio::test]
    async fn a_retry_after_pauses_every_request_and_the_pace_spaces_them() {
        let l = limiter();
        l.served();
        l.throttled(Some(Duration::from_millis(200)));
        let t = Instant::now();
        drop(l.acquire().await);
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
        // Rate 1/s after a cut from one served answer: the next start is a second later.
        let t = Instant::now();
        drop(l.acquire().await);
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn the_window_bounds_requests_in_flight() {
        let l = limiter();
        {
            let mut s = l.lock();
            s.window = Some(2);
        }
        let a = l.acquire().await;
        let _b = l.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(100), l.acquire()).await;
        assert!(third.is_err(), "a third waits for a free slot");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(200), l.acquire()).await;
        assert!(third.is_ok(), "a freed slot lets it go");
    }

    #[test]
    fn wait_hints_are_seconds_dates_or_unix_times() {
        assert_eq!(wait_hint(Some("3"), None), Some(Duration::from_secs(3)));
        // OpenBao with enable_rate_limit_response_headers: Retry-After 0, Reset 0.
        assert_eq!(wait_hint(Some("0"), Some("0")), Some(Duration::ZERO));
        assert_eq!(wait_hint(None, Some(" 2 ")), Some(Duration::from_secs(2)));
        let soon = jiff::Timestamp::now().as_second() + 30;
        let d = wait_hint(None, Some(&soon.to_string())).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            wait_hint(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(wait_hint(Some("soon"), None), None);
        assert_eq!(wait_hint(None, None), None);
    }
}
