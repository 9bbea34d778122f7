//! KV v2 (versions, check-and-set, custom_metadata) and KV v1 (flat maps).

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use super::Vault;
use crate::error::{Error, Result};
use crate::paths::VaultPath;
use crate::secret::VaultData;
use crate::vocab::*;

/// Vault's limit on one custom_metadata value.
pub const META_VALUE_MAX: usize = 512;
/// How many `secops.io/base64-keys` entries we allow (Vault allows 64 keys in all).
const BASE64_CHUNKS_MAX: usize = 16;

fn chunk_key(i: usize) -> String {
    if i == 0 {
        META_BASE64_KEYS.to_owned()
    } else {
        format!("{META_BASE64_KEYS}-{}", i + 1)
    }
}

fn chunk_names(keys: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for k in keys {
        if !cur.is_empty() && cur.len() + 1 + k.len() > META_VALUE_MAX {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(k);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The custom_metadata keys that record which values are base64 (`None` removes an unused
/// chunk); `None` when there are too many binary keys to record within Vault's limits.
pub fn base64_keys_patch(keys: &BTreeSet<String>) -> Option<BTreeMap<String, Option<String>>> {
    let chunks = chunk_names(keys);
    if chunks.len() > BASE64_CHUNKS_MAX {
        return None;
    }
    Some(
        (0..BASE64_CHUNKS_MAX)
            .map(|i| (chunk_key(i), chunks.get(i).cloned()))
            .collect(),
    )
}

/// The base64 key names recorded in custom_metadata, from all chunks.
pub fn base64_keys(m: &BTreeMap<String, String>) -> BTreeSet<String> {
    (0..BASE64_CHUNKS_MAX)
        .filter_map(|i| m.get(&chunk_key(i)))
        .flat_map(|v| v.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a KV v2 read found.
#[derive(Debug)]
pub enum Kv2Read {
    Missing,
    /// The version exists but is soft-deleted or destroyed.
    Deleted {
        version: u64,
        destroyed: bool,
    },
    Present {
        version: u64,
        data: VaultData,
        /// Some values are not strings: not data a handover wrote.
        foreign_shape: bool,
        custom_metadata: BTreeMap<String, String>,
    },
}

/// A JSON value that is kept only if it is a string, and then as a secret.
struct MaybeString(Option<SecretString>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MaybeString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(Some(SecretString::from(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(Some(crate::secret::secret_string(s))))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_unit<E>(self) -> std::result::Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<MaybeString, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<MaybeString, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeString(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn to_vault_data(
    raw: BTreeMap<String, MaybeString>,
    base64_keys: BTreeSet<String>,
) -> (VaultData, bool) {
    let mut foreign = false;
    let mut values = BTreeMap::new();
    for (k, v) in raw {
        match v.0 {
            Some(s) => {
                values.insert(k, s);
            }
            None => foreign = true,
        }
    }
    (
        VaultData {
            values,
            base64_keys,
        },
        foreign,
    )
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize)]
struct Kv2DataBody {
    data: Option<BTreeMap<String, MaybeString>>,
    metadata: Option<Kv2VersionMeta>,
}

#[derive(Deserialize)]
struct Kv2VersionMeta {
    version: u64,
    #[serde(default)]
    destroyed: bool,
    #[serde(default)]
    custom_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Kv2WriteBody {
    version: u64,
}

/// Outcome of a check-and-set write.
#[derive(Debug, PartialEq, Eq)]
pub enum CasWrite {
    Written {
        version: u64,
    },
    /// Someone else's version is there (or was written meanwhile).
    Mismatch,
    /// Vault said 403. With a least-privilege policy (`create` but not `update` on the data
    /// path) this is also what an existing key looks like: the caller reads to tell.
    Denied {
        reason: String,
    },
}

impl Vault {
    /// Reads a version (latest when `None`) with its metadata.
    pub async fn kv2_read(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
        version: Option<u64>,
    ) -> Result<Kv2Read> {
        let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let what = format!("read of {mount}/data/{path}");
        let r = self
            .call(Method::GET, &format!("{mount}/data/{path}{q}"), None)
            .await?;
        let object = format!("Vault path {mount}/{path}");
        if r.status == 404 && !r.has_data() {
            if r.error_text().is_empty() {
                return Ok(Kv2Read::Missing);
            }
            return Err(Error::precondition(
                object,
                format!("Vault has no KV v2 route here ({})", r.error_text()),
                "check --kv-mount names a KV version 2 mount, or pass --kv-version 1",
            ));
        }
        if r.status != 200 && r.status != 404 {
            let api_path = format!("{mount}/data/{path}");
            return Err(self.unexpected_needing(&what, &object, "read", &api_path, &r));
        }
        // 200, or Vault's 404 for a deleted/destroyed version, which still carries metadata.
        let env: Envelope<Kv2DataBody> = r.parse(&what)?;
        let body = env
            .data
            .ok_or_else(|| Error::Internal(format!("Vault's answer to the {what} has no data")))?;
        let meta = body.metadata.ok_or_else(|| {
            Error::Internal(format!("Vault's answer to the {what} has no metadata"))
        })?;
        let custom = meta.custom_metadata.unwrap_or_default();
        match body.data {
            Some(raw) if r.status == 200 => {
                let (data, foreign_shape) = to_vault_data(raw, base64_keys(&custom));
                Ok(Kv2Read::Present {
                    version: meta.version,
                    data,
                    foreign_shape,
                    custom_metadata: custom,
                })
            }
            _ => Ok(Kv2Read::Deleted {
                version: meta.version,
                destroyed: meta.destroyed,
            }),
        }
    }

    /// Writes a new version only if the current version is `cas` (0: create-only).
    pub async fn kv2_write_cas(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
        data: &VaultData,
        cas: u64,
    ) -> Result<CasWrite> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            data: crate::secret::ExposedToVault<'a>,
            options: Opts,
        }
        #[derive(serde::Serialize)]
        struct Opts {
            cas: u64,
        }
        let body = crate::secret::json_exact(&Body {
            data: data.as_request_body(),
            options: Opts { cas },
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let what = format!("write of {mount}/data/{path}");
        let r = self
            .call(
                Method::POST,
                &format!("{mount}/data/{path}"),
                Some(("application/json", body)),
            )
            .await?;
        match r.status {
            200 => {
                let env: Envelope<Kv2WriteBody> = r.parse(&what)?;
                let v = env.data.ok_or_else(|| {
                    Error::Internal(format!("Vault's answer to the {what} has no version"))
                })?;
                Ok(CasWrite::Written { version: v.version })
            }
            400 if r
                .error_text()
                .contains("check-and-set parameter did not match") =>
            {
                Ok(CasWrite::Mismatch)
            }
            403 => Ok(CasWrite::Denied {
                reason: r.error_text(),
            }),
            _ => Err(self.unexpected(&what, &format!("Vault path {mount}/{path}"), &r)),
        }
    }

    /// Merges keys into custom_metadata (`None` removes a key); other keys survive.
    pub async fn kv2_patch_metadata(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
        patch: &BTreeMap<String, Option<String>>,
    ) -> Result<()> {
        let body = serde_json::to_vec(&serde_json::json!({ "custom_metadata": patch }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let what = format!("metadata update of {mount}/metadata/{path}");
        let r = self
            .call(
                Method::PATCH,
                &format!("{mount}/metadata/{path}"),
                Some(("application/merge-patch+json", body)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected_needing(
                &what,
                &format!("Vault path {mount}/{path}"),
                "patch",
                &format!("{mount}/metadata/{path}"),
                &r,
            )),
        }
    }

    /// KV v1 read; `None` when nothing is stored there.
    pub async fn kv1_read(&self, mount: &VaultPath, path: &VaultPath) -> Result<Option<VaultData>> {
        let what = format!("read of {mount}/{path}");
        let r = self
            .call(Method::GET, &format!("{mount}/{path}"), None)
            .await?;
        match r.status {
            200 => {
                let env: Envelope<BTreeMap<String, MaybeString>> = r.parse(&what)?;
                let (data, foreign) = to_vault_data(env.data.unwrap_or_default(), BTreeSet::new());
                if foreign {
                    return Err(Error::precondition(
                        format!("Vault path {mount}/{path}"),
                        "holds values that are not strings",
                        "this path was not written by a handover; choose another path",
                    ));
                }
                Ok(Some(data))
            }
            404 if r.error_text().is_empty() => Ok(None),
            _ => Err(self.unexpected_needing(
                &what,
                &format!("Vault path {mount}/{path}"),
                "read",
                &format!("{mount}/{path}"),
                &r,
            )),
        }
    }

    /// KV v1 write: replaces whatever is at the path.
    pub async fn kv1_write(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
        data: &VaultData,
    ) -> Result<()> {
        let body = crate::secret::json_exact(&data.as_request_body())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let what = format!("write of {mount}/{path}");
        // KV v1 has no check-and-set: an overwrite is never repeated blindly.
        let r = self
            .call_once(
                Method::POST,
                &format!("{mount}/{path}"),
                Some(("application/json", body)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, &format!("Vault path {mount}/{path}"), &r)),
        }
    }
}

/// One version as KV v2 metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    pub created: jiff::Timestamp,
    pub deleted: bool,
    pub destroyed: bool,
}

/// KV v2 metadata: versions and custom_metadata, never values.
#[derive(Debug, Clone)]
pub struct Kv2Metadata {
    pub current_version: u64,
    pub versions: Vec<VersionInfo>,
    pub custom_metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct MetadataBody {
    current_version: u64,
    #[serde(default)]
    versions: BTreeMap<String, MetadataVersion>,
    #[serde(default)]
    custom_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct MetadataVersion {
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

impl Vault {
    /// `None` when the path has no metadata.
    pub async fn kv2_metadata(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
    ) -> Result<Option<Kv2Metadata>> {
        let what = format!("metadata read of {mount}/metadata/{path}");
        let object = format!("Vault path {mount}/{path}");
        let r = self
            .call(Method::GET, &format!("{mount}/metadata/{path}"), None)
            .await?;
        match r.status {
            200 => {
                let env: Envelope<MetadataBody> = r.parse(&what)?;
                let body = env.data.ok_or_else(|| {
                    Error::Internal(format!("Vault's answer to the {what} has no data"))
                })?;
                let mut versions = Vec::new();
                for (k, v) in body.versions {
                    let version = k.parse().map_err(|_| {
                        Error::Internal(format!("{what}: version key {k:?} is not a number"))
                    })?;
                    let created = v.created_time.parse().map_err(|_| {
                        Error::Internal(format!(
                            "{what}: created_time of version {k} is not RFC 3339"
                        ))
                    })?;
                    versions.push(VersionInfo {
                        version,
                        created,
                        deleted: !v.deletion_time.is_empty(),
                        destroyed: v.destroyed,
                    });
                }
                versions.sort_by_key(|v| v.version);
                Ok(Some(Kv2Metadata {
                    current_version: body.current_version,
                    versions,
                    custom_metadata: body.custom_metadata.unwrap_or_default(),
                }))
            }
            404 if r.error_text().is_empty() => Ok(None),
            _ => Err(self.unexpected_needing(
                &what,
                &object,
                "read",
                &format!("{mount}/metadata/{path}"),
                &r,
            )),
        }
    }

    /// Soft-deletes (`destroy: false`) or destroys the given versions.
    pub async fn kv2_revoke_versions(
        &self,
        mount: &VaultPath,
        path: &VaultPath,
        versions: &[u64],
        destroy: bool,
    ) -> Result<()> {
        let verb = if destroy { "destroy" } else { "delete" };
        let body = serde_json::to_vec(&serde_json::json!({ "versions": versions }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let what = format!("{verb} of versions {versions:?} of {mount}/{path}");
        let r = self
            .call(
                Method::POST,
                &format!("{mount}/{verb}/{path}"),
                Some(("application/json", body)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected_needing(
                &what,
                &format!("Vault path {mount}/{path}"),
                "update",
                &format!("{mount}/{verb}/{path}"),
                &r,
            )),
        }
    }

    /// A value generated by Vault from a password policy; it never leaves Vault's answer
    /// except as a secret.
    pub async fn generate_password(&self, policy: &str) -> Result<SecretString> {
        #[derive(Deserialize)]
        struct Generated {
            password: SecretString,
        }
        let what = format!("password generation from policy {policy:?}");
        let object = format!("Vault password policy {policy:?}");
        let r = self
            .call(
                Method::GET,
                &format!("sys/policies/password/{policy}/generate"),
                None,
            )
            .await?;
        match r.status {
            200 => {
                let env: Envelope<Generated> = r.parse(&what)?;
                env.data.map(|g| g.password).ok_or_else(|| {
                    Error::Internal(format!("Vault's answer to the {what} has no data"))
                })
            }
            400 | 404 => Err(Error::precondition(
                object,
                format!("cannot generate ({})", r.error_text()),
                "create the password policy in Vault or fix --key ...=policy:NAME",
            )),
            _ => Err(self.unexpected(&what, &object, &r)),
        }
    }
}

impl super::Response {
    /// True when the body is an envelope with `data` (a deleted version's 404 has one).
    fn has_data(&self) -> bool {
        #[derive(Deserialize)]
        struct Probe {
            data: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_slice::<Probe>(&self.body).is_ok_and(|p| p.data.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_string_values_mark_a_foreign_shape() {
        let raw: BTreeMap<String, MaybeString> =
            serde_json::from_str(r#"{"a":"x","b":5,"c":{"d":[1]}}"#).unwrap();
        let (data, foreign) = to_vault_data(raw, BTreeSet::new());
        assert!(foreign);
        assert_eq!(data.values.len(), 1);
    }
}
