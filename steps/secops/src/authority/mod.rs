//! The runtime authority's own lifecycle (RFC 5.3): `init` (initialise Vault, store the
//! unseal material before anything else, establish policies and roles, revoke the root
//! token) and `unseal`. The material lives in one Kubernetes Secret, optionally encrypted
//! to age recipients so the cluster never holds plaintext keys.

pub mod copy;
pub mod establish;
pub mod init;
pub mod restore;
pub mod unseal;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kube::BootstrapSecret;
use crate::vocab::*;

/// Data key of the material in the Secret: plaintext JSON, or its age encryption.
pub const KEY_PLAIN: &str = "unseal-keys.json";
pub const KEY_AGE: &str = "unseal-keys.json.age";

/// Where the material lives.
#[derive(Debug, Clone)]
pub struct Store {
    pub namespace: String,
    pub name: String,
}

impl Store {
    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }
}

/// Unseal keys (Shamir) or recovery keys (auto-unseal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Shamir,
    Recovery,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Shamir => "shamir",
            KeyType::Recovery => "recovery",
        }
    }
}

/// The unseal material. Keys are as Vault returned them (base64 preferred, else hex); both
/// forms are accepted by `sys/unseal`.
pub struct Material {
    pub key_type: KeyType,
    pub threshold: u8,
    pub keys: Vec<SecretString>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Material {{ {} keys, threshold {}, [REDACTED] }}",
            self.keys.len(),
            self.threshold
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterialJson {
    version: u32,
    #[serde(rename = "type")]
    key_type: KeyType,
    threshold: u8,
    shares: u8,
    keys: Vec<String>,
}

impl Material {
    /// The plaintext document, in a zeroizing buffer.
    fn to_json(&self) -> Result<SecretSlice<u8>> {
        let doc = MaterialJson {
            version: 1,
            key_type: self.key_type,
            threshold: self.threshold,
            shares: self.keys.len() as u8,
            keys: self
                .keys
                .iter()
                .map(|k| k.expose_secret().to_owned())
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        let out = SecretSlice::from(bytes.clone());
        zeroize::Zeroize::zeroize(&mut bytes);
        for mut k in doc.keys {
            zeroize::Zeroize::zeroize(&mut k);
        }
        Ok(out)
    }

    fn from_json(bytes: &[u8], object: &str) -> Result<Self> {
        let doc: MaterialJson = serde_json::from_slice(bytes).map_err(|_| {
            // serde's message could quote a key: say only where.
            Error::precondition(
                object,
                "the stored unseal material is not the documented JSON",
                "restore the Secret from your backup; this step never rewrites it",
            )
        })?;
        if doc.version != 1 || doc.keys.is_empty() || doc.threshold == 0 {
            return Err(Error::precondition(
                object,
                "the stored unseal material has an unknown version or no keys",
                "restore the Secret from your backup",
            ));
        }
        Ok(Material {
            key_type: doc.key_type,
            threshold: doc.threshold,
            keys: doc.keys.into_iter().map(SecretString::from).collect(),
        })
    }
}

/// How the material is protected at rest.
#[derive(Clone)]
pub enum Protection {
    /// Plaintext in the Secret; only with an explicit `--plaintext-unseal-keys`.
    Plaintext,
    Age(Vec<age::x25519::Recipient>),
    /// Neither given: fine for a run that converges an initialised Vault, a usage error the
    /// moment keys would be stored (see [`Protection::required`]).
    Unset,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::Plaintext => write!(f, "Plaintext"),
            Protection::Age(r) => write!(f, "Age({} recipients)", r.len()),
            Protection::Unset => write!(f, "Unset"),
        }
    }
}

impl Protection {
    /// Parses `age1...` recipients from flags and files (one per line, `#` comments).
    pub fn from_flags(recipients: &[String], files: &[PathBuf], plaintext: bool) -> Result<Self> {
        let mut all: Vec<String> = recipients.iter().map(|s| s.trim().to_owned()).collect();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::Usage(format!(
                    "cannot read --age-recipients-file {}: {e}",
                    f.display()
                ))
            })?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        all.retain(|s| !s.is_empty());
        if all.is_empty() {
            return Ok(if plaintext {
                Protection::Plaintext
            } else {
                Protection::Unset
            });
        }
        if plaintext {
            return Err(Error::Usage(
                "--plaintext-unseal-keys contradicts --age-recipient: choose one".into(),
            ));
        }
        let parsed = all
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r).map_err(|e| {
                    Error::Usage(format!(
                        "{r:?} is not an age X25519 recipient (age1...): {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Protection::Age(parsed))
    }

    /// Before anything that would store keys: how they are protected must be chosen.
    pub fn required(&self) -> Result<()> {
        match self {
            Protection::Unset => Err(Error::Usage(
                "give --age-recipient (or --age-recipients-file) so the unseal keys are \
                 stored encrypted, or pass --plaintext-unseal-keys=true to store them in \
                 plaintext on purpose"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// The Secret's data and annotations holding `m`.
    pub fn seal(
        &self,
        m: &Material,
    ) -> Result<(String, SecretSlice<u8>, BTreeMap<String, String>)> {
        let plain = m.to_json()?;
        let mut ann = BTreeMap::from([
            (ANN_UNSEAL_TYPE.to_owned(), m.key_type.as_str().to_owned()),
            (ANN_UNSEAL_SHARES.to_owned(), m.keys.len().to_string()),
            (ANN_UNSEAL_THRESHOLD.to_owned(), m.threshold.to_string()),
        ]);
        match self {
            Protection::Unset => Err(Error::Internal(
                "unseal material stored without a chosen protection".into(),
            )),
            Protection::Plaintext => {
                ann.insert(ANN_UNSEAL_ENCRYPTION.to_owned(), "none".to_owned());
                Ok((KEY_PLAIN.to_owned(), plain, ann))
            }
            Protection::Age(recipients) => {
                let enc = age::Encryptor::with_recipients(
                    recipients.iter().map(|r| r as &dyn age::Recipient),
                )
                .map_err(|e| Error::Internal(format!("age: {e}")))?;
                let mut out = Vec::new();
                let mut w = enc
                    .wrap_output(&mut out)
                    .map_err(|e| Error::Internal(format!("age: {e}")))?;
                w.write_all(plain.expose_secret())
                    .and_then(|_| w.finish().map(|_| ()))
                    .map_err(|e| Error::Internal(format!("age: {e}")))?;
                ann.insert(ANN_UNSEAL_ENCRYPTION.to_owned(), "age".to_owned());
                ann.insert(
                    ANN_UNSEAL_RECIPIENTS.to_owned(),
                    recipients
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                Ok((KEY_AGE.to_owned(), SecretSlice::from(out), ann))
            }
        }
    }
}

/// Whether a stored Secret holds material (any non-empty material key).
pub fn has_material(s: &BootstrapSecret) -> bool {
    [KEY_PLAIN, KEY_AGE]
        .iter()
        .any(|k| s.data.get(k).is_some_and(|v| !v.is_empty()))
}

/// Reads the material from the Secret, decrypting with the identity file when encrypted.
pub fn open(s: &BootstrapSecret, identity_file: Option<&PathBuf>) -> Result<Material> {
    let object = s.object();
    if let Some(plain) = s.data.get(KEY_PLAIN).filter(|v| !v.is_empty()) {
        return Material::from_json(plain.expose(), &object);
    }
    let Some(cipher) = s.data.get(KEY_AGE).filter(|v| !v.is_empty()) else {
        return Err(Error::Internal(format!("{object} holds no material")));
    };
    open_age(cipher.expose(), &object, identity_file)
}

/// Decrypts age-encrypted material (the Secret's, or a copy of it in a file).
pub fn open_age(cipher: &[u8], object: &str, identity_file: Option<&PathBuf>) -> Result<Material> {
    let Some(path) = identity_file else {
        return Err(Error::Usage(format!(
            "{object} holds age-encrypted unseal keys: give --age-identity-file"
        )));
    };
    let file = std::fs::File::open(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read --age-identity-file {}: {e}",
            path.display()
        ))
    })?;
    let identities = age::IdentityFile::from_buffer(std::io::BufReader::new(file))
        .map_err(|e| {
            Error::Usage(format!(
                "--age-identity-file {} is not an age identity file: {e}",
                path.display()
            ))
        })?
        .into_identities()
        .map_err(|e| Error::Usage(format!("--age-identity-file {}: {e}", path.display())))?;
    let dec = age::Decryptor::new(cipher).map_err(|e| {
        Error::precondition(
            object,
            format!("the stored unseal keys are not an age file ({e})"),
            "restore the Secret from your backup",
        )
    })?;
    let mut reader = dec
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| {
            Error::precondition(
                object,
                format!("cannot decrypt the stored unseal keys with --age-identity-file ({e})"),
                "mount the identity matching one of the recipients in annotation secops.io/unseal-recipients",
            )
        })?;
    let mut plain = Vec::new();
    let res = reader.read_to_end(&mut plain);
    let plain = SecretSlice::from(plain);
    res.map_err(|e| {
        Error::precondition(
            object,
            format!("the stored unseal keys do not decrypt cleanly ({e})"),
            "restore the Secret from your backup",
        )
    })?;
    Material::from_json(plain.expose_secret(), object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    fn secret_with(key: &str, bytes: Vec<u8>) -> BootstrapSecret {
        BootstrapSecret {
            namespace: "secops-authority".into(),
            name: "vault-unseal".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            type_: "Opaque".into(),
            labels: Default::default(),
            annotations: Default::default(),
            immutable: false,
            has_finalizers: false,
            created: None,
            owners: Vec::new(),
            data: [(key.to_owned(), SecretBytes::new(bytes))]
                .into_iter()
                .collect(),
        }
    }

    const SHARE1: &str = "canary-share-1-0f3a9c";

    fn material() -> Material {
        Material {
            key_type: KeyType::Shamir,
            threshold: 2,
            keys: vec![
                SHARE1.into(),
                "canary-share-2".into(),
                "canary-share-3".into(),
            ],
        }
    }

    #[test]
    fn age_round_trip_and_wrong_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let p = Protection::from_flags(&[id.to_public().to_string()], &[], false).unwrap();
        let (key, bytes, ann) = p.seal(&material()).unwrap();
        assert_eq!(key, KEY_AGE);
        assert_eq!(ann[ANN_UNSEAL_ENCRYPTION], "age");
        // A share long enough that random ciphertext cannot contain it by chance.
        let share = SHARE1.as_bytes();
        assert!(!bytes
            .expose_secret()
            .windows(share.len())
            .any(|w| w == share));
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("id");
        std::fs::write(&good, id.to_string().expose_secret()).unwrap();
        let s = secret_with(&key, bytes.expose_secret().to_vec());
        let m = open(&s, Some(&good)).unwrap();
        assert_eq!(m.keys[2].expose_secret(), "canary-share-3");
        assert_eq!(m.threshold, 2);
        let bad = dir.path().join("other");
        std::fs::write(&bad, other.to_string().expose_secret()).unwrap();
        assert_eq!(
            open(&s, Some(&bad)).unwrap_err().exit(),
            crate::Exit::Precondition
        );
        assert_eq!(open(&s, None).unwrap_err().exit(), crate::Exit::Usage);
    }

    #[test]
    fn plaintext_needs_consent_and_never_prints() {
        let unset = Protection::from_flags(&[], &[], false).unwrap();
        assert_eq!(unset.required().unwrap_err().exit(), crate::Exit::Usage);
        assert!(
            unset.seal(&material()).is_err(),
            "nothing is stored unprotected by default"
        );
        assert!(Protection::Plaintext.required().is_ok());
        let (key, bytes, _) = Protection::Plaintext.seal(&material()).unwrap();
        assert_eq!(key, KEY_PLAIN);
        let m = open(&secret_with(&key, bytes.expose_secret().to_vec()), None).unwrap();
        assert!(!format!("{m:?}").contains(SHARE1));
        assert!(Protection::from_flags(&["nope".into()], &[], false).is_err());
    }
}
