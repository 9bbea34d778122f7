//! A resurrected bootstrap Secret: one a GitOps controller put back after its handover
//! (Argo CD self-heal or Flux re-create it after a delete, or write its data back after it
//! was made inert; a SealedSecret re-renders it). RFC 5.4: the handover happens once per
//! secret, so a resurrected Secret is consumed again without any Vault write (no data
//! write, no metadata PATCH), and every output says that Git still holds its manifest:
//! the lasting fix is removing the manifest from Git.
//!
//! A re-created Secret (same cluster, same `namespace/name`, the data Vault holds, a new
//! uid) is either resurrected by GitOps or re-created after a cluster rebuild. What tells
//! them apart is what survives a GitOps re-create but not a rebuild: the Secret's namespace.
//! write-vault records the namespace's uid in the provenance
//! ([`META_SOURCE_NAMESPACE_UID`]) when it hands over and when it relinks; the same uid
//! now: resurrected (nothing written); another uid (the namespace was re-created: a
//! rebuild), none recorded (a handover from before this rule) or no namespace to read:
//! the provenance moves to the new uid (`provenance-updated`), recording the namespace uid.

use std::collections::BTreeMap;

use super::is_consumed;
use crate::fleet::ClusterName;
use crate::gitops::GitOrigin;
use crate::kube::BootstrapSecret;
use crate::provenance::Provenance;
use crate::vocab::*;

/// Whether the namespace uid Vault recorded for the handover is the namespace's uid now
/// (`None`: the namespace cannot be read, which counts as not recorded).
pub fn same_namespace(custom_metadata: &BTreeMap<String, String>, now: Option<&str>) -> bool {
    match (custom_metadata.get(META_SOURCE_NAMESPACE_UID), now) {
        (Some(recorded), Some(now)) => !recorded.is_empty() && recorded == now,
        _ => false,
    }
}

/// The provenance PATCH entry recording the namespace's uid (nothing when it is unknown:
/// Vault rejects empty values).
pub fn record_namespace(patch: &mut BTreeMap<String, Option<String>>, uid: Option<String>) {
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        patch.insert(META_SOURCE_NAMESPACE_UID.to_owned(), Some(uid));
    }
}

/// mark-consumed's view, after write-vault judged: Vault holds a handover of this
/// `namespace/name` from this cluster with exactly this data, and its provenance still
/// names another uid, so write-vault recognised the Secret as resurrected (a rebuild would
/// have moved the provenance to this uid).
pub fn resurrected(
    p: &Provenance,
    s: &BootstrapSecret,
    same_data: bool,
    cluster: &ClusterName,
) -> bool {
    same_data
        && p.owner.is_none()
        && p.source == format!("{}/{}", s.namespace, s.name)
        && p.source_cluster == cluster.as_str()
        && p.source_uid != s.uid
}

/// A Secret consumed in inert mode whose data came back (a GitOps sync wrote it back): the
/// value is live in Kubernetes again (RFC 5.8), so discovery selects it to be blanked again.
pub fn inert_restored(s: &BootstrapSecret) -> bool {
    is_consumed(s)
        && s.annotation(ANN_CONSUMED_MODE) == Some("inert")
        && s.data.keys().any(|k| {
            s.data
                .get(k)
                .is_some_and(|v| !crate::inert::holds_nothing(&s.type_, k, v.expose()))
        })
}

/// Said by every output about a resurrected Secret: Git still holds the manifest.
pub fn git_still_holds(origin: &GitOrigin) -> String {
    let which = origin
        .describe()
        .unwrap_or_else(|| "no GitOps mark on the Secret says which".to_owned());
    format!(
        "resurrected after its handover: Git still holds its manifest ({which}); consumed again \
         without writing Vault; remove the manifest from Git (docs/runbook.md: GitOps controllers)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recorded_namespace_uid_makes_a_resurrection() {
        let mut m = BTreeMap::new();
        // A handover from before this rule: nothing recorded, a relink.
        assert!(!same_namespace(&m, Some("ns-1")));
        m.insert(META_SOURCE_NAMESPACE_UID.to_owned(), "ns-1".to_owned());
        assert!(same_namespace(&m, Some("ns-1")), "GitOps re-created it");
        assert!(
            !same_namespace(&m, Some("ns-2")),
            "the namespace is new: a rebuild"
        );
        assert!(
            !same_namespace(&m, None),
            "no namespace to read: not recorded"
        );
        let mut patch = BTreeMap::new();
        record_namespace(&mut patch, None);
        record_namespace(&mut patch, Some(String::new()));
        assert!(patch.is_empty());
        record_namespace(&mut patch, Some("ns-2".into()));
        assert_eq!(patch[META_SOURCE_NAMESPACE_UID], Some("ns-2".to_owned()));
    }
}
