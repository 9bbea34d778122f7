//! Test-only fault injection, set through `Handle::set_fault`. The apiserver has nothing
//! like it: it lets tests see how a client copes with a failing, throttling or slow API.
//! Injected failures are `metav1.Status` bodies worded like the apiserver's, so clients
//! classify them as they would real ones.

use std::time::Duration;

use crate::status::Reply;
use serde_json::json;

pub use fault_injection::Failure;

/// A fault applied to every request (or only those of one method, see `Handle::set_fault_for`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Always(Failure),
    /// The next `count` requests fail; then the fault clears itself.
    Next {
        count: u32,
        failure: Failure,
    },
    /// The client is killed after `ok` served requests: the next one is served with its
    /// response lost when `served`, else reset unserved; every later one is reset.
    KillAfter {
        ok: u32,
        served: bool,
    },
    /// Each request fails with probability `percent`/100, the failure picked from
    /// `failures`; `seed` makes it repeatable (it advances as the generator's state).
    Random {
        percent: u8,
        seed: u64,
        failures: Vec<Failure>,
    },
}

/// What a request meets.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Reply(Reply, Option<u32>),
    Reset,
    Lost,
    Delay(Duration),
}

fn action_of(f: &Failure) -> Action {
    match f {
        Failure::Status(code) => Action::Reply(injected(*code), None),
        Failure::Throttle { retry_after } => {
            let mut r = injected(429);
            r.body["details"] = json!({ "retryAfterSeconds": retry_after });
            Action::Reply(r, Some(*retry_after))
        }
        Failure::Reset => Action::Reset,
        Failure::LostResponse => Action::Lost,
        Failure::Hang(d) => Action::Delay(*d),
    }
}

/// A Status worded like the apiserver's for that code.
fn injected(code: u16) -> Reply {
    let (reason, message) = match code {
        409 => (
            "Conflict",
            "Operation cannot be fulfilled (injected): the object has been modified; please apply your changes to the latest version and try again",
        ),
        429 => ("TooManyRequests", "injected: too many requests"),
        500 => ("InternalError", "injected: Internal error occurred"),
        503 => ("ServiceUnavailable", "injected: the server is currently unable to handle the request"),
        504 => ("Timeout", "injected: the server was unable to return a response in the time allotted"),
        _ => ("", "injected"),
    };
    Reply::failure(code, reason, message, json!({}))
}

/// The fault and the method it is limited to.
#[derive(Debug, Default)]
pub struct Rule {
    pub fault: Option<Fault>,
    pub method: Option<String>,
}

impl Rule {
    /// The action for a request, advancing counting faults.
    pub fn apply(&mut self, method: &str) -> Option<Action> {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let fault = &mut self.fault;
        match fault {
            None => None,
            Some(Fault::Always(f)) => Some(action_of(f)),
            Some(Fault::Next { count, failure }) => {
                let (hit, spent) = fault_injection::count_down(count, failure);
                let action = hit.map(action_of);
                if spent {
                    *fault = None;
                }
                action
            }
            Some(Fault::KillAfter { ok, served }) => {
                fault_injection::kill_after(ok, served).map(|f| action_of(&f))
            }
            Some(Fault::Random {
                percent,
                seed,
                failures,
            }) => fault_injection::random(*percent, seed, failures).map(action_of),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_counts_down_only_for_its_method() {
        let mut r = Rule {
            fault: Some(Fault::Next {
                count: 1,
                failure: Failure::Status(409),
            }),
            method: Some("PATCH".into()),
        };
        assert_eq!(r.apply("GET"), None);
        let Some(Action::Reply(reply, None)) = r.apply("PATCH") else {
            panic!("expected a reply")
        };
        assert_eq!(
            (reply.code, reply.body["reason"].as_str()),
            (409, Some("Conflict"))
        );
        assert_eq!(r.apply("PATCH"), None);
        assert_eq!(r.fault, None);
    }

    #[test]
    fn throttle_carries_retry_after_in_header_and_details() {
        let mut r = Rule {
            fault: Some(Fault::Always(Failure::Throttle { retry_after: 3 })),
            method: None,
        };
        let Some(Action::Reply(reply, Some(3))) = r.apply("GET") else {
            panic!("expected a throttle")
        };
        assert_eq!(reply.body["details"]["retryAfterSeconds"], json!(3));
    }

    #[test]
    fn kill_after_loses_one_answer_then_resets() {
        let mut r = Rule {
            fault: Some(Fault::KillAfter {
                ok: 1,
                served: true,
            }),
            method: None,
        };
        assert_eq!(r.apply("GET"), None);
        assert_eq!(r.apply("PATCH"), Some(Action::Lost));
        assert_eq!(r.apply("GET"), Some(Action::Reset));
    }
}
