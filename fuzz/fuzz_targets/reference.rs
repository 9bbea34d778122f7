//! Reference parsing: whatever arrives between steps, an accepted reference names a real
//! Kubernetes object and a valid path, and survives a serialize/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secops::names::{is_dns_label, is_object_name};
use secops::reference::{SecretRef, MAX_BATCH, MAX_KEYS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(refs) = SecretRef::parse_many(text) else {
        return;
    };
    assert!(!refs.items.is_empty() && refs.items.len() <= MAX_BATCH);
    assert_eq!(refs.batch, text.trim_start().starts_with('['));
    for r in &refs.items {
        assert!(is_dns_label(&r.namespace), "{r:?}");
        assert!(is_object_name(&r.name), "{r:?}");
        assert!(!r.name.contains('/') && r.name != ".." && r.name != ".");
        for v in [&r.uid, &r.resource_version] {
            assert!(!v.is_empty() && !v.chars().any(char::is_control), "{r:?}");
        }
        assert!(r.keys.len() <= MAX_KEYS);
        assert!(secops::paths::VaultPath::parse(r.path.as_str()).is_ok());
        let again = SecretRef::parse(&serde_json::to_string(r).unwrap()).unwrap();
        assert_eq!(&again, r);
    }
});
