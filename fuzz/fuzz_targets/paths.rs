//! Path validation and templating: an accepted path never escapes its namespace's subtree.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secops::names::is_dns_label;
use secops::paths::{PathPolicy, VaultPath};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a str,
    prefix: Option<&'a str>,
    namespace: &'a str,
    other_namespace: &'a str,
    name: &'a str,
    annotation: Option<&'a str>,
}

/// What "valid" means, written independently of the implementation.
fn well_formed(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 512
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

fuzz_target!(|i: Input<'_>| {
    // Validation accepts exactly the well-formed paths, and printing round-trips.
    match VaultPath::parse(i.raw) {
        Ok(p) => {
            assert!(well_formed(i.raw), "accepted {:?}", i.raw);
            assert_eq!(p.as_str(), i.raw);
            assert_eq!(VaultPath::parse(&p.to_string()).unwrap(), p);
        }
        Err(e) => {
            assert!(!well_formed(i.raw), "refused {:?}: {e}", i.raw);
            // Error text is printable: no raw control characters reach a terminal or log.
            assert!(!e.to_string().chars().any(|c| c.is_control()), "{e}");
        }
    }

    let Ok(prefix) = i.prefix.map(VaultPath::parse).transpose() else {
        return;
    };
    let policy = PathPolicy { prefix };
    if !is_dns_label(i.namespace) {
        return;
    }
    let Ok(target) = policy.target(i.namespace, i.name, i.annotation) else {
        return;
    };
    // Templating: the target lies strictly inside `{prefix}/{namespace}/`...
    let subtree = policy.subtree(i.namespace).unwrap();
    let rest = target
        .as_str()
        .strip_prefix(&format!("{subtree}/"))
        .unwrap_or_else(|| panic!("{target} escapes {subtree}"));
    assert!(well_formed(rest), "{target}");
    assert!(well_formed(target.as_str()), "{target}");
    // ...with no segment a server could resolve upwards or decode into a separator...
    assert!(!target.as_str().contains('%') && !target.as_str().contains('\\'));
    // ...and never inside another namespace's subtree.
    // (A longer namespace's subtree may pass the path limit: it is refused, and holds nothing.)
    if is_dns_label(i.other_namespace) && i.other_namespace != i.namespace {
        if let Ok(other) = policy.subtree(i.other_namespace) {
            assert!(!target.starts_with(&other), "{target} is inside {other}");
        }
    }
    // Without an annotation the target is the template's, exactly.
    if i.annotation.is_none() {
        assert_eq!(target.as_str(), format!("{subtree}/{}", i.name));
    }
});
