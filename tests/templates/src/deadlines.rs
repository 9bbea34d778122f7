//! Deadlines: a workflow's `activeDeadlineSeconds` must hold the worst case of what it runs,
//! each step's own deadline times its attempts plus the backoff between them. Otherwise Argo
//! kills the workflow while a retry its template promises is still waiting (the steps are
//! idempotent, so retries are the recovery plan). A fan-out counts as one wave: `parallelism`
//! and the number of items multiply it, which no template can know.
//!
//! Inside a step, its own `--deadline` (how long a throttled step keeps waiting; default 10m)
//! must end before the pod's `activeDeadlineSeconds`, with [`POD_MARGIN`] to spare: then a
//! throttled step exits 4 with its summary and Argo's retry applies, instead of Argo killing
//! it mid-wait. The containers of a containerSet run one after the other: their deadlines add.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::load::{Doc, Templates};
use crate::Problem;

pub fn check(t: &Templates, out: &mut Vec<Problem>) {
    for d in t.docs.iter().filter(|d| d.kind() == "WorkflowTemplate") {
        let spec = &d.value["spec"];
        let Some(limit) = seconds(&spec["activeDeadlineSeconds"]) else {
            out.push(Problem::at(
                d,
                "spec.activeDeadlineSeconds",
                "a workflow deadline is required (a hung step would hold its mutex forever)",
            ));
            continue;
        };
        let entry = spec["entrypoint"].as_str().unwrap_or("");
        let mut seen = BTreeSet::new();
        let worst = worst_case(d, entry, &mut seen, out);
        if worst > limit {
            out.push(Problem::at(
                d,
                "spec.activeDeadlineSeconds",
                format!(
                    "{limit}s is shorter than the worst case of {entry}, {worst}s (each step's \
                     activeDeadlineSeconds times its attempts, plus its backoff): Argo would \
                     stop the workflow before its retries"
                ),
            ));
        }
    }
}

fn template<'a>(d: &'a Doc, name: &str) -> Option<(usize, &'a Value)> {
    d.value["spec"]["templates"]
        .as_array()?
        .iter()
        .enumerate()
        .find(|(_, t)| t["name"] == name)
}

/// Seconds from an integer or an integer string.
fn seconds(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `"10s"`, `"5m"`, `"1h"` (Argo's backoff durations as the templates write them).
fn duration(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    })
}

/// What a pod needs beside its steps' own deadlines: start-up and the step's exit.
pub const POD_MARGIN: u64 = 60;

/// Each container's `--deadline=` in seconds, or a problem for one that has none.
fn step_deadlines(d: &Doc, at: &str, t: &Value, out: &mut Vec<Problem>) -> u64 {
    let containers: Vec<(String, &Value)> = match t["containerSet"]["containers"].as_array() {
        Some(cs) => cs
            .iter()
            .enumerate()
            .map(|(j, c)| (format!("{at}.containerSet.containers[{j}]"), c))
            .collect(),
        None => vec![(format!("{at}.container"), &t["container"])],
    };
    let mut total = 0u64;
    for (where_, c) in containers {
        let given = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix("--deadline="));
        match given.and_then(|g| duration(&Value::from(g))) {
            Some(secs) => total = total.saturating_add(secs),
            None => out.push(Problem::at(
                d,
                format!("{where_}.args"),
                "pass --deadline=<N>s (or m): the step's default (10m) is not bounded by this \
                 pod's activeDeadlineSeconds, and Argo would kill a throttled step mid-wait",
            )),
        }
    }
    total
}

/// Worst-case seconds of one template; problems for a leaf without its own deadline.
fn worst_case(d: &Doc, name: &str, seen: &mut BTreeSet<String>, out: &mut Vec<Problem>) -> u64 {
    let Some((i, t)) = template(d, name) else {
        return 0; // a missing template is xref's finding
    };
    if !seen.insert(name.to_owned()) {
        return 0; // recursion: Argo allows it, its bound is unknown
    }
    let at = format!("spec.templates[{i}]");
    let leaf = t.get("container").is_some() || t.get("containerSet").is_some();
    let total = if leaf {
        let Some(deadline) = seconds(&t["activeDeadlineSeconds"]) else {
            out.push(Problem::at(
                d,
                format!("{at}.activeDeadlineSeconds"),
                "every step needs a deadline, or the workflow's worst case is unbounded",
            ));
            seen.remove(name);
            return 0;
        };
        let steps = step_deadlines(d, &at, t, out);
        if steps.saturating_add(POD_MARGIN) > deadline {
            out.push(Problem::at(
                d,
                format!("{at}.activeDeadlineSeconds"),
                format!(
                    "{deadline}s does not hold its steps' --deadline ({steps}s) plus \
                     {POD_MARGIN}s: Argo would kill a throttled step before it exits 4; \
                     lower --deadline or raise activeDeadlineSeconds"
                ),
            ));
        }
        let r = &t["retryStrategy"];
        let retries = seconds(&r["limit"]).unwrap_or(0);
        let b = &r["backoff"];
        let base = duration(&b["duration"]).unwrap_or(0);
        let factor = seconds(&b["factor"]).unwrap_or(1).max(1);
        let cap = duration(&b["cap"]).unwrap_or(u64::MAX);
        let mut waits = 0u64;
        let mut wait = base;
        for _ in 0..retries {
            waits = waits.saturating_add(wait.min(cap));
            wait = wait.saturating_mul(factor);
        }
        deadline.saturating_mul(retries + 1).saturating_add(waits)
    } else if let Some(groups) = t["steps"].as_array() {
        groups
            .iter()
            .map(|g| {
                g.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| worst_case(d, s["template"].as_str().unwrap_or(""), seen, out))
                    .max()
                    .unwrap_or(0)
            })
            .sum()
    } else if let Some(tasks) = t["dag"]["tasks"].as_array() {
        // An upper bound: as if every task ran after the other.
        tasks
            .iter()
            .map(|s| worst_case(d, s["template"].as_str().unwrap_or(""), seen, out))
            .sum()
    } else {
        0
    };
    seen.remove(name);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_seconds_read_as_argo_writes_them() {
        assert_eq!(duration(&"10s".into()), Some(10));
        assert_eq!(duration(&"5m".into()), Some(300));
        assert_eq!(duration(&"1h".into()), Some(3600));
        assert_eq!(duration(&"1.5m".into()), None);
        assert_eq!(seconds(&"4".into()), Some(4));
        assert_eq!(seconds(&4.into()), Some(4));
    }
}
