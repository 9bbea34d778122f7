//! The checks run over the real `templates/`: they must find nothing, and each breakage in
//! `mutations` must be found exactly.

mod docs;
mod mutations;
mod real;
mod rendered;
mod tidy;

use std::sync::OnceLock;

use template_checks::{load, Checker, Locations, Problem, Templates};

struct Setup {
    checker: Checker,
    templates: Templates,
}

/// Schemas are compiled once per test process (about a second).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let loc = Locations::locate().unwrap_or_else(|e| panic!("{e}"));
        let checker = Checker::new(&loc).unwrap_or_else(|e| panic!("{e}"));
        let templates = load(&loc.repo, &loc.templates);
        Setup { checker, templates }
    })
}

/// The problems found after `mutate` has broken a copy of the real templates.
fn check_after(mutate: impl FnOnce(&mut Templates)) -> Vec<Problem> {
    let s = setup();
    let mut t = s.templates.clone();
    mutate(&mut t);
    s.checker.check(&t)
}

/// `v` at a JSON pointer, which must exist.
fn at<'a>(v: &'a mut serde_json::Value, pointer: &str) -> &'a mut serde_json::Value {
    v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the document"))
}

/// `problems` are exactly `expected`: (file suffix, path, part of the message) each.
#[track_caller]
fn assert_exactly(problems: &[Problem], expected: &[(&str, &str, &str)]) {
    let matches = |(f, p, m): &(&str, &str, &str), x: &Problem| {
        x.file.ends_with(f) && x.path == *p && x.message.contains(m)
    };
    let ok = problems.len() == expected.len()
        && expected
            .iter()
            .all(|e| problems.iter().any(|x| matches(e, x)));
    assert!(
        ok,
        "expected exactly {expected:#?}\nfound {}",
        template_checks::report(problems)
    );
}
