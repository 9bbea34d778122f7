//! Selector parsing: an accepted selection only ever names valid namespaces it was allowed,
//! a valid Secret name, and a selector without control characters.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secops::names::{is_dns_label, is_object_name};
use secops::selection::Selection;

#[derive(Arbitrary, Debug)]
struct Input {
    namespaces: Vec<String>,
    namespace: Option<String>,
    name: Option<String>,
    selector: Option<String>,
}

fuzz_target!(|i: Input| {
    let Ok(s) = Selection::new(&i.namespaces, i.namespace, i.name, i.selector) else {
        return;
    };
    assert!(!s.namespaces.is_empty());
    for ns in &s.namespaces {
        assert!(is_dns_label(ns), "{ns:?}");
        assert!(i.namespaces.iter().any(|given| given.trim() == ns));
    }
    if let Some((ns, name)) = &s.single {
        assert!(s.namespaces.contains(ns), "{ns:?} not allowed");
        assert!(is_object_name(name), "{name:?}");
        assert!(s.selector.is_none());
    }
    if let Some(sel) = &s.selector {
        assert!(!sel.is_empty() && !sel.chars().any(char::is_control), "{sel:?}");
        assert_eq!(sel.trim(), sel);
    }
    // Validation is stable: what was accepted is accepted again.
    s.validate().unwrap();
});
