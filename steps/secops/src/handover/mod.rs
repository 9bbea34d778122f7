//! The one-time handover (RFC 5.4): read-bootstrap -> write-vault -> mark-consumed.
//!
//! Invariants every step keeps: Vault is written create-only (cas=0), so a handover makes
//! at most one version; a bootstrap Secret is marked consumed only after the Vault version
//! was read back and compared with it; anything unexpected is refused with nothing changed.

pub mod mark_consumed;
pub mod read_bootstrap;
pub mod resurrection;
pub mod write_vault;

use crate::audit::{Auditor, Target};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kube::BootstrapSecret;
use crate::kube::Kube;
use crate::paths::{annotation_hint, PathPolicy, VaultPath};
use crate::reference::SecretRef;
use crate::vocab::*;

pub(crate) fn target(mount: &VaultPath, path: &VaultPath, version: Option<u64>) -> Target {
    Target {
        mount: mount.to_string(),
        path: path.clone(),
        version,
    }
}

/// Where this Secret must go, refusing annotations that escape the namespace's subtree.
pub(crate) fn target_path(s: &BootstrapSecret, policy: &PathPolicy) -> Result<VaultPath> {
    policy
        .target(&s.namespace, &s.name, s.annotation(ANN_VAULT_PATH))
        .map_err(|e| {
            Error::precondition(
                s.object(),
                format!("target path refused: {e}"),
                annotation_hint(),
            )
        })
}

/// The live Secret still is the one the reference names and still goes where it said.
pub(crate) fn check_matches_reference(
    s: &BootstrapSecret,
    r: &SecretRef,
    policy: &PathPolicy,
) -> Result<()> {
    if s.uid != r.uid {
        return Err(Error::precondition(
            s.object(),
            format!(
                "was replaced since read-bootstrap (uid {} is now {})",
                r.uid, s.uid
            ),
            "re-run the handover workflow so read-bootstrap picks up the new Secret",
        ));
    }
    let path = target_path(s, policy)?;
    if path != r.path {
        return Err(Error::precondition(
            s.object(),
            format!(
                "reference says Vault path {} but the Secret maps to {path}",
                r.path
            ),
            "pass the reference from read-bootstrap unchanged, with the same --path-prefix",
        ));
    }
    Ok(())
}

/// What read-bootstrap refuses about a Secret itself; write-vault checks the live Secret
/// again, so a forged or stale reference cannot get around it. Returns the controller that
/// delivers it from Git, if it is owned by one (`--gitops-owner-kinds`).
pub(crate) fn check_eligible(
    s: &BootstrapSecret,
    kinds: &crate::gitops::OwnerKinds,
) -> Result<Option<crate::gitops::OwnerRef>> {
    let owner = crate::gitops::delivering_owner(s, kinds)?.cloned();
    if s.has_finalizers {
        return Err(Error::precondition(
            s.object(),
            "has finalizers: another controller manages its lifecycle",
            "remove the finalizers or the bootstrap label",
        ));
    }
    if s.type_ == "kubernetes.io/service-account-token" {
        return Err(Error::precondition(
            s.object(),
            "is a service-account token: Kubernetes' token controller owns it",
            "remove the bootstrap label; tokens are never handed over",
        ));
    }
    if s.data.len() > crate::reference::MAX_KEYS {
        return Err(Error::precondition(
            s.object(),
            format!(
                "has {} keys, more than the {} one handover takes",
                s.data.len(),
                crate::reference::MAX_KEYS
            ),
            "split it into several bootstrap Secrets",
        ));
    }
    Ok(owner)
}

/// Whether `mode` can hold for a Secret its controller rewrites. A controller owner (a
/// SealedSecret) re-creates its Secret after a delete and writes its data back after it was
/// blanked, so only `ignore` holds while the owner exists: the Secret is labelled consumed
/// and goes away with its owner once the manifest is removed from Git (garbage collection).
pub(crate) fn check_mode_holds(
    s: &BootstrapSecret,
    owner: &crate::gitops::OwnerRef,
    mode: mark_consumed::Mode,
) -> Result<()> {
    let what = match mode {
        mark_consumed::Mode::Ignore => return Ok(()),
        mark_consumed::Mode::Delete => "re-creates it after a delete",
        mark_consumed::Mode::Inert => "writes its data back after it is blanked",
    };
    Err(Error::precondition(
        s.object(),
        format!(
            "is delivered by its controller {} {} (bitnami Sealed Secrets or another \
             --gitops-owner-kinds controller), which {what}: --mode {} cannot hold",
            owner.kind_group(),
            owner.name,
            mode.as_str()
        ),
        "use --mode ignore for controller-owned bootstrap Secrets (consume-mode=ignore), then \
         remove the owner's manifest from Git: the Secret is garbage-collected with it",
    ))
}

pub(crate) fn is_consumed(s: &BootstrapSecret) -> bool {
    s.label(LABEL_STATE) == Some(STATE_CONSUMED)
}

pub(crate) fn is_bootstrap(s: &BootstrapSecret) -> bool {
    s.label(LABEL_CLASS) == Some(CLASS_BOOTSTRAP)
}

/// A step about one reference failed: audit it, and put refusals on the Secret's Events too
/// (transient failures are retried, so they would only be noise there).
pub(crate) async fn report_failure(
    audit: &Auditor,
    kube: &Kube,
    action: &'static str,
    event_reason: &str,
    r: &SecretRef,
    target: Target,
    e: &Error,
) {
    audit.emit(&audit.event(
        action,
        e.outcome(),
        Some(r.identity()),
        Some(target),
        Some(e.to_string()),
    ));
    if e.exit() == Exit::Precondition {
        kube.event(&r.identity(), true, event_reason, &e.to_string())
            .await;
    }
}
