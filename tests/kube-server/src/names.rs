//! `generateName` suffixes. kube-fake-client requires a name on create; the apiserver
//! appends five characters from this alphabet (no vowels, no look-alikes).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut bits = hasher.finish();
    let base = ALPHABET.len() as u64;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % base) as usize];
            bits /= base;
            char::from(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn suffixes_are_five_allowed_chars_and_vary() {
        let a = super::random_suffix();
        let b = super::random_suffix();
        assert_eq!(a.len(), 5);
        assert!(a.bytes().all(|c| super::ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
