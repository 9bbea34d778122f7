//! ARCHITECTURE.md's code map against the library's modules. The map's `steps/secops` entry
//! has one sub-bullet per top-level module, starting with its name in backticks (several:
//! "`error`, `exit` — ..."; children inline: "`handover::{a, b}`"). A directory module's
//! children are named in its bullet, as `child` or `parent::child` in backticks.

use std::collections::{BTreeMap, BTreeSet};

/// The code map's modules: top-level name -> the backticked words of its bullet.
pub fn named(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let architecture = format!("\n{architecture}");
    let map = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Code map"))
        .unwrap_or("");
    let mut bullets: Vec<String> = Vec::new();
    let mut inside = false;
    for line in map.lines() {
        if line.starts_with("- ") {
            inside = line.starts_with("- `steps/secops`");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(b) = line.strip_prefix("  - ") {
            bullets.push(b.to_owned());
        } else if line.starts_with("    ") {
            if let Some(b) = bullets.last_mut() {
                b.push(' ');
                b.push_str(line.trim());
            }
        }
    }
    let mut out = BTreeMap::new();
    for b in bullets {
        let spans = backticked(&b);
        let head = b.split(" — ").next().unwrap_or("");
        for name in backticked(head) {
            let (top, children) = match name.split_once("::") {
                Some((t, rest)) => (t.to_owned(), rest.trim_matches(['{', '}']).to_owned()),
                None => (name.clone(), String::new()),
            };
            let words: &mut BTreeSet<String> = out.entry(top).or_default();
            words.extend(
                children
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            words.extend(spans.iter().cloned());
        }
    }
    out
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Problems: a module that exists but is not in the map, and a top-level name in the map
/// (or a `parent::child` in its bullet) that names no module.
pub fn compare(architecture: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let named = named(architecture);
    let mut out = Vec::new();
    for m in modules {
        let found = match m.split_once("::") {
            None => named.contains_key(m),
            Some((top, child)) => named
                .get(top)
                .is_some_and(|w| w.contains(child) || w.contains(m)),
        };
        if !found {
            out.push(format!(
                "module `{m}` exists but ARCHITECTURE.md's code map does not name it"
            ));
        }
    }
    for (top, words) in &named {
        if !modules.contains(top) {
            out.push(format!(
                "ARCHITECTURE.md's code map names `{top}`, which is no module of steps/secops"
            ));
        }
        for w in words {
            let child = w
                .strip_prefix(&format!("{top}::"))
                .filter(|c| c.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            if let Some(child) = child {
                let full = format!("{top}::{child}");
                if !modules.contains(&full) {
                    out.push(format!("ARCHITECTURE.md's code map names `{full}`, which is no module of steps/secops"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "# A\n\n## Code map\n\n- `steps/secops` — the library.\n  - `run` — the main.\n  \
        - `error`, `exit` — errors.\n  - `vault` — client (`auth`: login;\n    `kv`: KV v2).\n  \
        - `handover::{read_bootstrap, write_vault}` — steps.\n- `tests/e2e` — `nothing` here.\n\n## Invariants\n- `ghost`\n";

    fn set(m: &[&str]) -> BTreeSet<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_map_that_matches_is_clean() {
        let m = set(&[
            "run",
            "error",
            "exit",
            "vault",
            "vault::auth",
            "vault::kv",
            "handover",
            "handover::read_bootstrap",
            "handover::write_vault",
        ]);
        assert_eq!(compare(MAP, &m), Vec::<String>::new());
    }

    #[test]
    fn a_missing_and_a_stale_module_are_found() {
        let m = set(&[
            "run",
            "error",
            "exit",
            "vault",
            "vault::auth",
            "vault::kv",
            "vault::sys",
            "handover",
            "handover::read_bootstrap",
            "handover::write_vault",
            "selection",
        ]);
        let gone = MAP.replace("  - `run` — the main.\n", "");
        let p = compare(&gone, &m);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].contains("`run` exists"), "{p:#?}");
        assert!(p[1].contains("`selection` exists"), "{p:#?}");
        assert!(p[2].contains("`vault::sys` exists"), "{p:#?}");
        let stale = set(&[
            "error",
            "exit",
            "vault",
            "vault::auth",
            "vault::kv",
            "handover",
            "handover::read_bootstrap",
            "handover::write_vault",
        ]);
        assert_eq!(
            compare(MAP, &stale),
            ["ARCHITECTURE.md's code map names `run`, which is no module of steps/secops"]
        );
    }
}
