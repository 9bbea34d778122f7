//! The value encoding: every byte string round-trips through Vault's string-only KV form,
//! UTF-8 values are stored unchanged and only the others are marked base64.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secops::secret::{SecretBytes, SecretData};
use secrecy::ExposeSecret;

fuzz_target!(|pairs: Vec<(String, Vec<u8>)>| {
    let data: SecretData = pairs
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::new(v.clone())))
        .collect();
    let vault = data.to_vault();
    for (k, v) in &vault.values {
        let original = data.get(k).unwrap().expose();
        match std::str::from_utf8(original) {
            Ok(s) => {
                assert!(!vault.base64_keys.contains(k));
                assert_eq!(v.expose_secret(), s);
            }
            Err(_) => assert!(vault.base64_keys.contains(k)),
        }
    }
    assert!(vault.base64_keys.iter().all(|k| vault.values.contains_key(k)));
    // Round trip is the identity, through the JSON Vault receives and returns too.
    let back = vault.to_secret_data().unwrap();
    assert!(back == data);
    let body = secops::secret::json_exact(&vault.as_request_body()).unwrap();
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(json.len(), data.len());
    for (k, v) in &json {
        assert_eq!(v.as_str().unwrap(), vault.values[k].expose_secret());
    }
    assert!(vault.same_values(&back.to_vault()));
});
