//! The KV version 2 state machine of one mount, rule for rule as
//! hashicorp/vault-plugin-secrets-kv implements it: versions with soft delete and
//! destroy, check-and-set against `current_version`, `max_versions` pruning (the
//! larger of key and mount setting, as `AddVersion` computes it, although the docs
//! say the key's value overrides), `delete_version_after`, and `custom_metadata`
//! limits. HTTP concerns live in `kv2_http`.

use crate::gofmt;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `defaultMaxVersions` in path_data.go.
const DEFAULT_MAX_VERSIONS: u32 = 10;
const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;
pub const CUSTOM_METADATA_ERROR_PREFIX: &str = "custom_metadata validation failed";

/// Mount configuration (path_config.go). `delete_version_after` is in seconds:
/// 0 is unset, negative disables it for every key.
#[derive(Debug, Default, Clone)]
pub struct Config {
    pub max_versions: u32,
    pub cas_required: bool,
    pub delete_version_after: i64,
}

impl Config {
    fn delete_version_after_disabled(&self) -> bool {
        self.delete_version_after < 0
    }

    pub fn json(&self) -> Value {
        json!({
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": gofmt::duration(self.delete_version_after),
        })
    }
}

/// The `options.cas` of a write, as `validateCheckAndSetOption` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    Absent,
    Value(i64),
    Unparsable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasError {
    Required,
    Mismatch,
    Unparsable,
}

impl CasError {
    pub fn message(self) -> &'static str {
        match self {
            CasError::Required => "check-and-set parameter required for this call",
            CasError::Mismatch => "check-and-set parameter did not match the current version",
            CasError::Unparsable => "error parsing check-and-set parameter",
        }
    }
}

#[derive(Debug, Clone)]
struct Version {
    created_time: Timestamp,
    deletion_time: Option<Timestamp>,
    destroyed: bool,
    /// `None` once destroyed.
    data: Option<Map<String, Value>>,
}

impl Version {
    /// A soft delete counts once its deletion time has passed; a future one (from
    /// `delete_version_after`) still reads.
    fn deleted(&self, now: Timestamp) -> bool {
        self.deletion_time.is_some_and(|t| t < now)
    }
}

#[derive(Debug, Clone, Default)]
struct KeyMeta {
    current_version: u64,
    oldest_version: u64,
    created_time: Option<Timestamp>,
    updated_time: Option<Timestamp>,
    max_versions: u32,
    cas_required: bool,
    /// Seconds; 0 is unset.
    delete_version_after: i64,
    custom_metadata: BTreeMap<String, String>,
    versions: BTreeMap<u64, Version>,
}

fn ts(t: Option<Timestamp>) -> String {
    t.map(gofmt::rfc3339_nano).unwrap_or_default()
}

impl KeyMeta {
    /// Stored as protobuf, an empty map reads back as `null`.
    fn custom_metadata_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            json!(self.custom_metadata)
        }
    }

    /// `{version, created_time, deletion_time, destroyed, custom_metadata}`.
    fn version_json(&self, number: u64, v: &Version) -> Value {
        json!({
            "version": number,
            "created_time": gofmt::rfc3339_nano(v.created_time),
            "deletion_time": ts(v.deletion_time),
            "destroyed": v.destroyed,
            "custom_metadata": self.custom_metadata_json(),
        })
    }

    /// `KeyMetadata.AddVersion` plus the storage cleanup of pruned versions.
    fn add_version(
        &mut self,
        data: Map<String, Value>,
        now: Timestamp,
        deletion_time: Option<Timestamp>,
        mount_max: u32,
    ) -> u64 {
        self.current_version += 1;
        self.versions.insert(
            self.current_version,
            Version {
                created_time: now,
                deletion_time,
                destroyed: false,
                data: Some(data),
            },
        );
        self.updated_time = Some(now);
        if self.created_time.is_none() {
            self.created_time = Some(now);
        }
        let max = match self.max_versions.max(mount_max) {
            0 => DEFAULT_MAX_VERSIONS,
            n => n,
        };
        if self.current_version - self.oldest_version >= u64::from(max) {
            let to_delete = self.current_version - u64::from(max);
            self.versions.retain(|n, _| *n > to_delete);
            self.oldest_version = to_delete + 1;
        }
        self.current_version
    }
}

/// `deletionTime` in delete_version_after.go: creation plus the smaller non-zero of
/// the mount and key settings.
fn deletion_time(now: Timestamp, config: &Config, meta_dva: i64) -> Option<Timestamp> {
    if config.delete_version_after_disabled() {
        return None;
    }
    let mount = config.delete_version_after;
    let chosen = match (mount, meta_dva) {
        (0, 0) => return None,
        (0, key) => key,
        (m, 0) => m,
        (m, key) => m.min(key),
    };
    now.checked_add(SignedDuration::from_secs(chosen)).ok()
}

/// `validateCheckAndSetOption` in path_data.go.
fn check_cas(cas: Cas, current: u64, required: bool) -> Result<(), CasError> {
    match cas {
        Cas::Unparsable => Err(CasError::Unparsable),
        // `uint64(cas) != meta.CurrentVersion`: a negative cas never matches.
        Cas::Value(n) if u64::try_from(n).ok() != Some(current) => Err(CasError::Mismatch),
        Cas::Value(_) => Ok(()),
        Cas::Absent if required => Err(CasError::Required),
        Cas::Absent => Ok(()),
    }
}

/// A data read.
pub enum Read {
    Missing,
    /// Soft-deleted or destroyed: Vault answers 404 with this metadata.
    Gone {
        metadata: Value,
    },
    Found {
        metadata: Value,
        data: Map<String, Value>,
    },
}

/// A data PATCH.
pub enum Patched {
    /// No key metadata, or no current version: 404 with an empty body.
    Missing,
    /// The current version is deleted or destroyed: 404 with the flat version metadata.
    Gone {
        metadata: Value,
    },
    Written {
        metadata: Value,
    },
}

/// Settings written through `metadata/` (POST replaces `custom_metadata` whole).
#[derive(Debug, Default)]
pub struct MetaUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<i64>,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

impl MetaUpdate {
    pub fn is_empty(&self) -> bool {
        self.max_versions.is_none()
            && self.cas_required.is_none()
            && self.delete_version_after.is_none()
            && self.custom_metadata.is_none()
    }
}

/// A metadata PATCH, applied as a JSON merge patch: `custom_metadata` entries with
/// `None` are removed, and `custom_metadata: null` (`Clear`) removes them all.
#[derive(Debug, Default)]
pub struct MetaPatch {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<i64>,
    pub custom_metadata: Option<CustomMetadataPatch>,
}

#[derive(Debug)]
pub enum CustomMetadataPatch {
    Clear,
    Merge(BTreeMap<String, Option<String>>),
}

const CAS_FALSE_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// One KV v2 mount.
#[derive(Debug, Default)]
pub struct Kv2 {
    config: Config,
    keys: BTreeMap<String, KeyMeta>,
}

impl Kv2 {
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn configure(
        &mut self,
        max_versions: Option<u32>,
        cas_required: Option<bool>,
        delete_version_after: Option<i64>,
    ) {
        if let Some(m) = max_versions {
            self.config.max_versions = m;
        }
        if let Some(c) = cas_required {
            self.config.cas_required = c;
        }
        if let Some(d) = delete_version_after {
            // Negative disables (stored as -1s), zero resets.
            self.config.delete_version_after = if d < 0 { -1 } else { d };
        }
    }

    pub fn exists(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    pub fn current_version(&self, key: &str) -> Option<u64> {
        self.keys.get(key).map(|m| m.current_version)
    }

    /// `pathDataRead`: `version` 0 means the current one.
    pub fn read(&self, key: &str, version: u64, now: Timestamp) -> Read {
        let Some(meta) = self.keys.get(key) else {
            return Read::Missing;
        };
        let number = if version > 0 {
            version
        } else {
            meta.current_version
        };
        let Some(v) = meta.versions.get(&number) else {
            return Read::Missing;
        };
        let metadata = meta.version_json(number, v);
        match &v.data {
            Some(data) if !v.deleted(now) && !v.destroyed => Read::Found {
                metadata,
                data: data.clone(),
            },
            _ => Read::Gone { metadata },
        }
    }

    /// `pathDataWrite`; returns the new version's metadata.
    pub fn write(
        &mut self,
        key: &str,
        data: Map<String, Value>,
        cas: Cas,
        now: Timestamp,
    ) -> Result<Value, CasError> {
        let (current, key_requires) = self
            .keys
            .get(key)
            .map_or((0, false), |m| (m.current_version, m.cas_required));
        check_cas(cas, current, self.config.cas_required || key_requires)?;
        Ok(self.append(key, data, now))
    }

    fn append(&mut self, key: &str, data: Map<String, Value>, now: Timestamp) -> Value {
        let config = self.config.clone();
        let meta = self.keys.entry(key.to_string()).or_default();
        let deletion = deletion_time(now, &config, meta.delete_version_after);
        let number = meta.add_version(data, now, deletion, config.max_versions);
        match meta.versions.get(&number) {
            Some(v) => meta.version_json(number, v),
            None => Value::Null,
        }
    }

    /// `pathDataPatch`: a JSON merge patch of the current version's data into a new
    /// version. CAS is checked before the current version is.
    pub fn patch(
        &mut self,
        key: &str,
        patch: &Value,
        cas: Cas,
        now: Timestamp,
    ) -> Result<Patched, CasError> {
        let Some(meta) = self.keys.get(key) else {
            return Ok(Patched::Missing);
        };
        check_cas(
            cas,
            meta.current_version,
            self.config.cas_required || meta.cas_required,
        )?;
        let Some(current) = meta.versions.get(&meta.current_version) else {
            return Ok(Patched::Missing);
        };
        let data = match &current.data {
            Some(data) if !current.deleted(now) && !current.destroyed => data.clone(),
            _ => {
                return Ok(Patched::Gone {
                    metadata: meta.version_json(meta.current_version, current),
                });
            }
        };
        let mut doc = Value::Object(data);
        json_patch::merge(&mut doc, patch);
        let merged = match doc {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Ok(Patched::Written {
            metadata: self.append(key, merged, now),
        })
    }

    /// `pathDataDelete`: soft-deletes the current version unless already gone.
    pub fn delete_latest(&mut self, key: &str, now: Timestamp) {
        if let Some(meta) = self.keys.get_mut(key) {
            let current = meta.current_version;
            if let Some(v) = meta.versions.get_mut(&current) {
                if !v.destroyed && !v.deleted(now) {
                    v.deletion_time = Some(now);
                }
            }
        }
    }

    /// `pathDeleteWrite`.
    pub fn delete_versions(&mut self, key: &str, versions: &[i64], now: Timestamp) {
        self.each_version(key, versions, |_, v| {
            if !v.destroyed && !v.deleted(now) {
                v.deletion_time = Some(now);
            }
        });
    }

    /// `pathUndeleteWrite`: clears the deletion, re-arming `delete_version_after`.
    pub fn undelete_versions(&mut self, key: &str, versions: &[i64], now: Timestamp) {
        let config = self.config.clone();
        self.each_version(key, versions, |meta_dva, v| {
            if !v.destroyed {
                v.deletion_time = deletion_time(now, &config, meta_dva);
            }
        });
    }

    /// `pathDestroyWrite`: drops the data for good.
    pub fn destroy_versions(&mut self, key: &str, versions: &[i64]) {
        self.each_version(key, versions, |_, v| {
            v.destroyed = true;
            v.data = None;
        });
    }

    fn each_version(&mut self, key: &str, versions: &[i64], mut f: impl FnMut(i64, &mut Version)) {
        let Some(meta) = self.keys.get_mut(key) else {
            return;
        };
        let dva = meta.delete_version_after;
        for number in versions {
            if let Some(v) = u64::try_from(*number)
                .ok()
                .and_then(|n| meta.versions.get_mut(&n))
            {
                f(dva, v);
            }
        }
    }

    /// `pathMetadataRead`.
    pub fn metadata(&self, key: &str) -> Option<Value> {
        let meta = self.keys.get(key)?;
        let versions: Map<String, Value> = meta
            .versions
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    json!({
                        "created_time": gofmt::rfc3339_nano(v.created_time),
                        "deletion_time": ts(v.deletion_time),
                        "destroyed": v.destroyed,
                    }),
                )
            })
            .collect();
        Some(json!({
            "versions": versions,
            "current_version": meta.current_version,
            "oldest_version": meta.oldest_version,
            "created_time": ts(meta.created_time),
            "updated_time": ts(meta.updated_time),
            "max_versions": meta.max_versions,
            "cas_required": meta.cas_required,
            "delete_version_after": gofmt::duration(meta.delete_version_after),
            "custom_metadata": meta.custom_metadata_json(),
        }))
    }

    /// `pathMetadataWrite`, after field validation. Creates the key's metadata with
    /// `current_version` 0 when missing; returns warnings.
    pub fn write_metadata(&mut self, key: &str, update: MetaUpdate, now: Timestamp) -> Vec<String> {
        let mut warnings = Vec::new();
        if update.cas_required == Some(false) && self.config.cas_required {
            warnings.push(CAS_FALSE_WARNING.to_string());
        }
        let meta = self.keys.entry(key.to_string()).or_insert_with(|| KeyMeta {
            created_time: Some(now),
            updated_time: Some(now),
            ..KeyMeta::default()
        });
        if let Some(m) = update.max_versions {
            meta.max_versions = m;
        }
        if let Some(c) = update.cas_required {
            meta.cas_required = c;
        }
        if let Some(d) = update.delete_version_after {
            meta.delete_version_after = d;
        }
        if let Some(cm) = update.custom_metadata {
            meta.custom_metadata = cm;
        }
        warnings
    }

    /// `pathMetadataPatch`; `None` when the key has no metadata. The merged map is not
    /// re-validated, as in Vault, which validates only the patch.
    pub fn patch_metadata(&mut self, key: &str, patch: MetaPatch) -> Option<Vec<String>> {
        let cas_required_by_mount = self.config.cas_required;
        let meta = self.keys.get_mut(key)?;
        let mut warnings = Vec::new();
        if patch.cas_required == Some(false) && cas_required_by_mount {
            warnings.push(CAS_FALSE_WARNING.to_string());
        }
        if let Some(m) = patch.max_versions {
            meta.max_versions = m;
        }
        if let Some(c) = patch.cas_required {
            meta.cas_required = c;
        }
        if let Some(d) = patch.delete_version_after {
            meta.delete_version_after = d;
        }
        match patch.custom_metadata {
            None => {}
            Some(CustomMetadataPatch::Clear) => meta.custom_metadata.clear(),
            Some(CustomMetadataPatch::Merge(entries)) => {
                for (k, v) in entries {
                    match v {
                        Some(v) => meta.custom_metadata.insert(k, v),
                        None => meta.custom_metadata.remove(&k),
                    };
                }
            }
        }
        Some(warnings)
    }

    /// `pathMetadataDelete`: every version and the key itself, so CAS starts at 0 again.
    pub fn delete_metadata(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// `pathMetadataList`: the names directly under `prefix`, folders ending in `/`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut names = BTreeSet::new();
        for key in self.keys.range(prefix.to_string()..).map(|(k, _)| k) {
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            match rest.find('/') {
                Some(i) => names.insert(rest[..=i].to_string()),
                None => names.insert(rest.to_string()),
            };
        }
        names.into_iter().collect()
    }
}

/// `validateCustomMetadata` in path_metadata.go; the error is the multierror text.
pub fn validate_custom_metadata(map: &BTreeMap<String, String>) -> Result<(), String> {
    let p = CUSTOM_METADATA_ERROR_PREFIX;
    if map.len() > MAX_CUSTOM_METADATA_KEYS {
        return Err(gofmt::multierror(&[format!(
            "{p}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            map.len()
        )]));
    }
    let mut errors = Vec::new();
    for (key, value) in map {
        let q = gofmt::quote(key);
        if key.is_empty() || key.len() > MAX_CUSTOM_METADATA_KEY_LEN {
            errors.push(format!(
                "{p}: length of key {q} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
            errors.push(format!(
                "{p}: length of value for key {q} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                value.len()
            ));
        }
        if !key.chars().all(gofmt::is_print) {
            errors.push(format!(
                "{p}: key {q} ({key}) contains unprintable characters"
            ));
        }
        if !value.chars().all(gofmt::is_print) {
            errors.push(format!(
                "{p}: value for key {q} contains unprintable characters"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(gofmt::multierror(&errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn pruning_keeps_max_versions() {
        let mut kv = Kv2::default();
        kv.configure(Some(2), None, None);
        let now = Timestamp::now();
        for i in 0..4 {
            kv.write("k", data(json!({ "i": i })), Cas::Absent, now)
                .expect("write");
        }
        let meta = kv.metadata("k").expect("metadata");
        assert_eq!(meta["current_version"], 4);
        assert_eq!(meta["oldest_version"], 3);
        let versions: Vec<&String> = meta["versions"].as_object().expect("map").keys().collect();
        assert_eq!(versions, ["3", "4"]);
    }

    #[test]
    fn key_and_mount_max_versions_take_the_larger() {
        let mut kv = Kv2::default();
        kv.configure(Some(3), None, None);
        let now = Timestamp::now();
        kv.write_metadata(
            "k",
            MetaUpdate {
                max_versions: Some(1),
                ..MetaUpdate::default()
            },
            now,
        );
        for i in 0..3 {
            kv.write("k", data(json!({ "i": i })), Cas::Absent, now)
                .expect("write");
        }
        assert!(matches!(kv.read("k", 1, now), Read::Found { .. }));
    }

    #[test]
    fn list_shows_folders_once() {
        let mut kv = Kv2::default();
        let now = Timestamp::now();
        for key in ["a", "a/b", "a/c/d", "b"] {
            kv.write(key, Map::new(), Cas::Absent, now).expect("write");
        }
        assert_eq!(kv.list(""), ["a", "a/", "b"]);
        assert_eq!(kv.list("a/"), ["b", "c/"]);
        assert!(kv.list("z/").is_empty());
    }
}
