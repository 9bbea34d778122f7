//! A resurrected bootstrap Secret: one a GitOps controller put back after its handover
//! (Argo CD self-heal or Flux re-create it after a delete, or write its data back after it
//! was made inert; a SealedSecret re-renders it). RFC 5.4: the handover happens once per
//! secret, so a resurrected Secret is consumed again without any Vault write (no data
//! write, no metadata PATCH), and every output says that Git still holds its manifest:
//! the lasting fix is removing the manifest from Git.
//!
//! Recognised from what Vault records of the completed handover: its provenance names this
//! Secret (`namespace/name`, a handover, not a push-secret path) and the version holds
//! exactly this Secret's data, read back from Vault.

use super::is_consumed;
use crate::gitops::GitOrigin;
use crate::kube::BootstrapSecret;
use crate::vault::Provenance;
use crate::vocab::*;

/// What a Secret whose data Vault holds from a handover of its name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognition {
    /// The Secret the handover was made from (same uid): a re-run.
    SameSecret,
    /// Put back by GitOps after the handover: consumed again, Vault not written.
    Resurrected,
    /// A handover recorded elsewhere whose provenance should move to this Secret (a
    /// metadata PATCH). Nothing yields it until the provenance can tell another cluster's
    /// handover from this cluster's; then a handover from another cluster is relinked.
    Relink,
}

/// `p` is the provenance Vault holds for the path, `same_data` whether its version holds
/// exactly this Secret's data. `None`: not a handover of this Secret with this data.
pub fn recognise(p: &Provenance, s: &BootstrapSecret, same_data: bool) -> Option<Recognition> {
    if p.owner.is_some() || p.source != format!("{}/{}", s.namespace, s.name) || !same_data {
        return None;
    }
    Some(if p.source_uid == s.uid {
        Recognition::SameSecret
    } else {
        Recognition::Resurrected
    })
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
         without writing Vault; remove the manifest from Git (README: GitOps)"
    )
}
