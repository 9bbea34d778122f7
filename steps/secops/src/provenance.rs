//! Provenance: where a Vault secret came from (which Secret, which workflow, which cluster),
//! recorded in its KV v2 `custom_metadata` and judged by the steps before they write. Built
//! from Kubernetes objects here, so the Vault client (`vault/`) only moves the metadata map.

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::Workflow;
use crate::error::{Error, Result};
use crate::fleet::ClusterName;
use crate::kube::BootstrapSecret;
use crate::secret::VaultData;
use crate::vault::kv::{base64_keys, base64_keys_patch, META_VALUE_MAX};
use crate::vocab::*;

/// Where a Vault secret came from, recorded in its KV v2 `custom_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Which step owns the secret (`push-secret`); `None` for a handover.
    pub owner: Option<String>,
    /// `namespace/name` of the source Secret.
    pub source: String,
    pub source_uid: String,
    /// The cluster the source Secret lives in (`--cluster-name`); empty before cluster names.
    pub source_cluster: String,
    pub source_resource_version: String,
    pub source_type: String,
    pub handover_at: String,
    /// `workflow-name/workflow-uid`.
    pub workflow: String,
    pub base64_keys: BTreeSet<String>,
}

impl Provenance {
    /// Where `data` came from: this Secret, now, by this workflow; `owner` names the step that
    /// keeps ownership (push-secret), `None` for a handover.
    pub fn of(
        s: &BootstrapSecret,
        owner: Option<&str>,
        workflow: &Workflow,
        cluster: &ClusterName,
        data: &VaultData,
    ) -> Self {
        Provenance {
            owner: owner.map(str::to_owned),
            source: format!("{}/{}", s.namespace, s.name),
            source_uid: s.uid.clone(),
            source_cluster: cluster.to_string(),
            source_resource_version: s.resource_version.clone(),
            source_type: s.type_.clone(),
            handover_at: jiff::Timestamp::now().to_string(),
            workflow: workflow.label(),
            base64_keys: data.base64_keys.clone(),
        }
    }

    /// The metadata PATCH body: our keys set, stale base64 chunks removed, others untouched.
    pub fn to_metadata_patch(&self) -> Result<BTreeMap<String, Option<String>>> {
        let mut m: BTreeMap<String, Option<String>> = BTreeMap::new();
        if let Some(owner) = &self.owner {
            m.insert(META_OWNER.to_owned(), Some(owner.clone()));
        }
        for (k, v) in [
            (META_SOURCE, &self.source),
            (META_SOURCE_UID, &self.source_uid),
            (META_SOURCE_CLUSTER, &self.source_cluster),
            (META_SOURCE_RV, &self.source_resource_version),
            (META_SOURCE_TYPE, &self.source_type),
            (META_HANDOVER_AT, &self.handover_at),
            (META_WORKFLOW, &self.workflow),
        ] {
            // Vault rejects empty values; leave an unknown field unset instead.
            if !v.is_empty() {
                m.insert(k.to_owned(), Some(truncate(v)));
            }
        }
        let Some(chunks) = base64_keys_patch(&self.base64_keys) else {
            return Err(Error::precondition(
                format!("Secret {}", self.source),
                "too many binary (non-UTF-8) keys to record their encoding in Vault's custom_metadata",
                "split the Secret or store binary values base64-encoded in the Secret itself",
            ));
        };
        m.extend(chunks);
        Ok(m)
    }

    /// `None` when the secret carries no provenance of ours.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Option<Self> {
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        let source = m.get(META_SOURCE)?.clone();
        Some(Provenance {
            owner: m.get(META_OWNER).cloned(),
            source,
            source_uid: get(META_SOURCE_UID),
            source_cluster: get(META_SOURCE_CLUSTER),
            source_resource_version: get(META_SOURCE_RV),
            source_type: get(META_SOURCE_TYPE),
            handover_at: get(META_HANDOVER_AT),
            workflow: get(META_WORKFLOW),
            base64_keys: base64_keys(m),
        })
    }
}

/// The metadata PATCH that moves a handover's provenance to a re-created bootstrap Secret
/// holding the same data (the cluster was rebuilt from Git): the new uid and resourceVersion
/// become the source, the uid Vault held goes first into `secops.io/previous-source-uids`
/// (no duplicates; the oldest dropped past Vault's 512-byte value limit). Keys, values and the
/// original handover time and workflow are left as they are. The source cluster is set to the
/// caller's: the same after a rebuild, and recorded for a handover made before cluster names.
pub fn relink_patch(
    custom_metadata: &BTreeMap<String, String>,
    uid: &str,
    resource_version: &str,
    cluster: &ClusterName,
    workflow: &str,
) -> BTreeMap<String, Option<String>> {
    let old = custom_metadata
        .get(META_SOURCE_UID)
        .map(String::as_str)
        .unwrap_or_default();
    let mut previous: Vec<&str> = Vec::new();
    let earlier = custom_metadata
        .get(META_PREVIOUS_SOURCE_UIDS)
        .map(String::as_str)
        .unwrap_or_default();
    for u in std::iter::once(old).chain(earlier.split(',')) {
        if !u.is_empty() && u != uid && !previous.contains(&u) {
            previous.push(u);
        }
    }
    while previous.join(",").len() > META_VALUE_MAX {
        previous.pop();
    }
    let mut m: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        // Vault rejects empty values: leave an unknown field as it is.
        if !v.is_empty() {
            m.insert(k.to_owned(), Some(truncate(&v)));
        }
    };
    set(META_SOURCE_UID, uid.to_owned());
    set(META_SOURCE_CLUSTER, cluster.to_string());
    set(META_SOURCE_RV, resource_version.to_owned());
    set(META_PREVIOUS_SOURCE_UIDS, previous.join(","));
    set(META_SOURCE_RELINKED_AT, jiff::Timestamp::now().to_string());
    set(META_SOURCE_RELINKED_BY, workflow.to_owned());
    m
}

/// The earlier source uids a relinked handover records.
pub fn previous_source_uids(custom_metadata: &BTreeMap<String, String>) -> Vec<String> {
    custom_metadata
        .get(META_PREVIOUS_SOURCE_UIDS)
        .map(|v| {
            v.split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn truncate(v: &str) -> String {
    v.chars()
        .scan(0usize, |n, c| {
            *n += c.len_utf8();
            (*n <= META_VALUE_MAX).then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_key_names_chunk_within_vaults_value_limit() {
        let keys: BTreeSet<String> = (0..100).map(|i| format!("binary-key-{i:03}")).collect();
        let p = Provenance {
            source: "ns/name".into(),
            base64_keys: keys.clone(),
            ..Provenance::default()
        };
        let patch = p.to_metadata_patch().unwrap();
        let set: BTreeMap<String, String> = patch
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        assert!(set.values().all(|v| !v.is_empty() && v.len() <= 512));
        assert!(set.keys().all(|k| k.len() <= 128));
        assert!(set.len() <= 64);
        assert_eq!(base64_keys(&set), keys);
        assert_eq!(Provenance::from_metadata(&set).unwrap().base64_keys, keys);
    }

    #[test]
    fn relinking_keeps_earlier_uids_once_and_within_vaults_limits() {
        let mut m = BTreeMap::from([
            (META_SOURCE.to_owned(), "apps/db".to_owned()),
            (META_SOURCE_UID.to_owned(), "uid-1".to_owned()),
        ]);
        // Vault's merge PATCH of custom_metadata: set, or remove on null.
        let apply = |m: &mut BTreeMap<String, String>, uid: &str, rv: &str| {
            for (k, v) in relink_patch(m, uid, rv, &ClusterName::parse("a").unwrap(), "wf/u") {
                match v {
                    Some(v) => m.insert(k, v),
                    None => m.remove(&k),
                };
            }
        };
        apply(&mut m, "uid-2", "7");
        assert_eq!(m[META_SOURCE_UID], "uid-2");
        assert_eq!(m[META_SOURCE_RV], "7");
        assert_eq!(previous_source_uids(&m), ["uid-1"]);
        assert_eq!(m[META_SOURCE_RELINKED_BY], "wf/u");
        assert_eq!(m[META_SOURCE_CLUSTER], "a");
        // The same uid again: nothing new recorded, no duplicate.
        apply(&mut m, "uid-2", "7");
        assert_eq!(previous_source_uids(&m), ["uid-1"]);
        // A third incarnation, then back to an earlier uid: most recent first, each once.
        apply(&mut m, "uid-3", "8");
        assert_eq!(previous_source_uids(&m), ["uid-2", "uid-1"]);
        apply(&mut m, "uid-1", "9");
        assert_eq!(previous_source_uids(&m), ["uid-3", "uid-2"]);
        // Many rebuilds: bounded to one value, the oldest dropped, the newest kept.
        for i in 0..100 {
            let uid = format!("{i:08}-aaaa-bbbb-cccc-dddddddddddd");
            apply(&mut m, &uid, "1");
        }
        let prev = &m[META_PREVIOUS_SOURCE_UIDS];
        assert!(prev.len() <= 512, "{}", prev.len());
        assert!(prev.starts_with("00000098-"), "{prev}");
        assert!(m.len() <= 64 && m.keys().all(|k| k.len() <= 128));
        assert!(m.values().all(|v| !v.is_empty() && v.len() <= 512));
    }

    #[test]
    fn unused_chunks_are_removed_and_empty_fields_skipped() {
        let p = Provenance {
            source: "ns/name".into(),
            source_uid: "u".into(),
            ..Provenance::default()
        };
        let patch = p.to_metadata_patch().unwrap();
        assert_eq!(patch.get(META_BASE64_KEYS), Some(&None));
        assert!(!patch.contains_key(META_WORKFLOW));
        assert_eq!(patch.get(META_SOURCE_UID), Some(&Some("u".to_string())));
    }
}
