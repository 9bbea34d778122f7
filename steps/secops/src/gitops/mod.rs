//! The GitOps controllers that deliver bootstrap Secrets (RFC 5.2: "Argo: decrypt manifests,
//! create bootstrap Secrets"): which owners deliver from Git (`owner`: `OwnerKinds`, e.g.
//! Sealed Secrets; `delivering_owner`), the Flux switch mark-consumed writes, and
//! where in Git a Secret comes from (`GitOrigin`, references only) so that the last step of a
//! handover, removing the manifest from Git, can be done by a pull request.

pub mod origin;
pub mod owner;

use crate::error::{Error, Result};
use crate::kube::BootstrapSecret;

pub use origin::GitOrigin;
pub use owner::{OwnerKinds, OwnerRef, DEFAULT_OWNER_KINDS};

/// Flux's per-object switch: the kustomize-controller neither applies nor prunes an object
/// carrying it.
pub const FLUX_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
pub const FLUX_RECONCILE_DISABLED: &str = "disabled";

/// The controller that delivers this Secret from Git, if it is owned at all: exactly one
/// owner reference, the controller one, of an allowlisted kind. Anything else is refused.
pub fn delivering_owner<'s>(
    s: &'s BootstrapSecret,
    kinds: &OwnerKinds,
) -> Result<Option<&'s OwnerRef>> {
    match s.owners.as_slice() {
        [] => Ok(None),
        [o] if o.controller && kinds.allows(o) => Ok(Some(o)),
        owners => {
            let named: Vec<String> = owners
                .iter()
                .map(|o| format!("{} {}", o.kind_group(), o.name))
                .collect();
            Err(Error::precondition(
                s.object(),
                format!(
                    "has owner references ({}): it is managed by a controller, not delivered \
                     from Git (owners that deliver from Git: the one controller reference of a \
                     kind in --gitops-owner-kinds, now {kinds})",
                    named.join(", ")
                ),
                "remove the bootstrap label, or the owner references if it really is a bootstrap \
                 Secret, or add its controller's Kind.group to --gitops-owner-kinds if that \
                 controller delivers it from Git",
            ))
        }
    }
}
