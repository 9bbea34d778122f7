//! Secret values in types that cannot print.
//!
//! Every value read from Kubernetes or Vault lives in [`SecretData`] from the moment it is
//! parsed until it is dropped (and zeroized). `Debug` shows key names only; there is no
//! `Display` and no `Serialize` except the one explicit encoding for Vault's request body.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use serde::ser::{Serialize, SerializeMap, Serializer};
use zeroize::Zeroize as _;

/// The bytes of one Secret key.
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    /// Takes the buffer over. secrecy's `From<Vec>` shrinks a vector with spare capacity by
    /// reallocating, which frees the old buffer unwiped; copy and wipe it ourselves instead.
    pub fn new(mut bytes: Vec<u8>) -> Self {
        if bytes.capacity() == bytes.len() {
            return SecretBytes(SecretSlice::from(bytes));
        }
        let exact: Box<[u8]> = bytes.as_slice().into();
        bytes.zeroize();
        SecretBytes(SecretBox::new(exact))
    }

    pub fn len(&self) -> usize {
        self.0.expose_secret().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Only for code that moves the value into the other authority or compares it.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED {} bytes]", self.len())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// A [`SecretString`] that owns exactly its bytes: a string with spare capacity is copied
/// and wiped, so no unwiped copy is left behind by a shrinking reallocation.
pub fn secret_string(mut s: String) -> SecretString {
    if s.capacity() == s.len() {
        return SecretString::from(s);
    }
    let exact: Box<str> = s.as_str().into();
    s.zeroize();
    SecretBox::new(exact)
}

/// JSON in a buffer allocated once at its final size: `serde_json::to_vec` grows its vector
/// by reallocating, leaving unwiped copies of a request body holding values behind.
pub fn json_exact<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, v)?;
    let mut out = Vec::with_capacity(n.0);
    serde_json::to_writer(&mut out, v)?;
    Ok(out)
}

/// A Kubernetes Secret's `data`: key name -> bytes. Key names are not secret.
#[derive(Default, PartialEq)]
pub struct SecretData(BTreeMap<String, SecretBytes>);

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretData {
    pub fn insert(&mut self, key: String, value: SecretBytes) {
        self.0.insert(key, value);
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn get(&self, key: &str) -> Option<&SecretBytes> {
        self.0.get(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn total_bytes(&self) -> usize {
        self.0.values().map(SecretBytes::len).sum()
    }

    /// Encodes for Vault, whose KV values are JSON strings: UTF-8 values are stored as they
    /// are, anything else as standard base64, and the names of those keys are returned so
    /// the encoding can be recorded in metadata and reversed exactly.
    pub fn to_vault(&self) -> VaultData {
        let mut values = BTreeMap::new();
        let mut base64_keys = BTreeSet::new();
        for (k, v) in &self.0 {
            let s = match std::str::from_utf8(v.expose()) {
                Ok(s) => s.to_owned(),
                Err(_) => {
                    base64_keys.insert(k.clone());
                    base64::engine::general_purpose::STANDARD.encode(v.expose())
                }
            };
            values.insert(k.clone(), secret_string(s));
        }
        VaultData {
            values,
            base64_keys,
        }
    }
}

impl FromIterator<(String, SecretBytes)> for SecretData {
    fn from_iter<T: IntoIterator<Item = (String, SecretBytes)>>(iter: T) -> Self {
        SecretData(iter.into_iter().collect())
    }
}

/// The KV form of a secret: key -> string value, plus which keys hold base64 of binary bytes.
#[derive(Default)]
pub struct VaultData {
    pub values: BTreeMap<String, SecretString>,
    pub base64_keys: BTreeSet<String>,
}

impl fmt::Debug for VaultData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultData")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("base64_keys", &self.base64_keys)
            .finish()
    }
}

impl VaultData {
    /// True when both hold the same keys with byte-identical values.
    pub fn same_values(&self, other: &VaultData) -> bool {
        self.values.len() == other.values.len()
            && self.values.iter().all(|(k, v)| {
                other
                    .values
                    .get(k)
                    .is_some_and(|o| o.expose_secret() == v.expose_secret())
            })
    }

    /// Reverses [`SecretData::to_vault`] given the recorded base64 key names.
    pub fn to_secret_data(&self) -> Result<SecretData, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                let bytes = if self.base64_keys.contains(k) {
                    base64::engine::general_purpose::STANDARD
                        .decode(v.expose_secret())
                        .map_err(|_| {
                            format!("key {k:?} is recorded as base64 but does not decode")
                        })?
                } else {
                    v.expose_secret().as_bytes().to_vec()
                };
                Ok((k.clone(), SecretBytes::new(bytes)))
            })
            .collect()
    }

    /// The JSON object Vault receives. Building the request body is the one place a value
    /// is serialized, and it goes straight to the authority.
    pub fn as_request_body(&self) -> ExposedToVault<'_> {
        ExposedToVault(&self.values)
    }
}

/// A borrowed view that serializes values; only constructed by [`VaultData::as_request_body`].
pub struct ExposedToVault<'a>(&'a BTreeMap<String, SecretString>);

impl Serialize for ExposedToVault<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v.expose_secret())?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec())))
            .collect()
    }

    #[test]
    fn debug_never_shows_values() {
        let d = data(&[("password", b"hunter2-canary")]);
        let shown = format!("{d:?} {:?} {:?}", d.get("password"), d.to_vault());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password"));
    }

    /// Compiles only when `T` does not implement the trait (an ambiguous impl otherwise).
    macro_rules! assert_not_impl {
        ($t:ty: $tr:path) => {{
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + $tr> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::some_item;
        }};
    }

    #[test]
    fn value_types_cannot_display_or_serialize() {
        assert_not_impl!(SecretBytes: std::fmt::Display);
        assert_not_impl!(SecretData: std::fmt::Display);
        assert_not_impl!(VaultData: std::fmt::Display);
        assert_not_impl!(SecretBytes: serde::Serialize);
        assert_not_impl!(SecretData: serde::Serialize);
        assert_not_impl!(VaultData: serde::Serialize);
        assert_not_impl!(ExposedToVault<'static>: std::fmt::Debug);
        assert_not_impl!(ExposedToVault<'static>: std::fmt::Display);
        assert_not_impl!(SecretBytes: Clone);
        assert_not_impl!(SecretData: Clone);
    }

    #[test]
    fn every_debug_form_hides_values() {
        let d = data(&[("password", b"CANARY-x1"), ("bin", &[0xff, b'C', 0x00])]);
        let v = d.to_vault();
        for shown in [
            format!("{d:?}"),
            format!("{d:#?}"),
            format!("{:?}", d.get("password").unwrap()),
            format!("{:#?}", d.get("password").unwrap()),
            format!("{v:?}"),
            format!("{v:#?}"),
            format!("{:?}", v.values),
        ] {
            assert!(!shown.contains("CANARY"), "{shown}");
            assert!(
                !shown.contains("/0MA"),
                "base64 of the binary value: {shown}"
            );
        }
        assert_eq!(
            format!("{:?}", d.get("password").unwrap()),
            "[REDACTED 9 bytes]"
        );
    }

    #[test]
    fn holders_zeroize_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<SecretSlice<u8>>();
        zeroized_on_drop::<SecretString>();
        zeroized_on_drop::<zeroize::Zeroizing<Vec<u8>>>();
    }

    #[test]
    fn buffers_with_spare_capacity_are_copied_exactly() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"CANARY-bytes");
        let b = SecretBytes::new(v);
        assert_eq!(b.expose(), b"CANARY-bytes");
        let mut s = String::with_capacity(64);
        s.push_str("CANARY-string");
        assert_eq!(secret_string(s).expose_secret(), "CANARY-string");
        let body = json_exact(&data(&[("k", &[b'x'; 1000])]).to_vault().as_request_body()).unwrap();
        assert_eq!(body.capacity(), body.len(), "allocated once, never grown");
        assert_eq!(body.len(), r#"{"k":""}"#.len() + 1000);
    }

    #[test]
    fn binary_values_round_trip_through_base64() {
        let bin: Vec<u8> = (0..=255u8).collect();
        let d = data(&[
            ("bin", &bin),
            ("text", "héllo\0\n".as_bytes()),
            ("empty", b""),
        ]);
        let v = d.to_vault();
        assert_eq!(v.base64_keys.iter().collect::<Vec<_>>(), vec!["bin"]);
        let back = v.to_secret_data().unwrap();
        assert!(back == d);
    }

    #[test]
    fn same_values_compares_every_byte() {
        let a = data(&[("k", b"value1")]).to_vault();
        let b = data(&[("k", b"value2")]).to_vault();
        let c = data(&[("k", b"value1"), ("extra", b"")]).to_vault();
        assert!(a.same_values(&data(&[("k", b"value1")]).to_vault()));
        assert!(!a.same_values(&b));
        assert!(!a.same_values(&c));
        assert!(!c.same_values(&a));
    }

    #[test]
    fn request_body_is_a_flat_string_map() {
        let v = data(&[("a", b"1"), ("b", &[0xff, 0x00])]).to_vault();
        let json = serde_json::to_value(v.as_request_body()).unwrap();
        assert_eq!(json, serde_json::json!({"a": "1", "b": "/wA="}));
    }
}
