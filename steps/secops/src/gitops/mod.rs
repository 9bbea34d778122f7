//! The GitOps controllers that deliver bootstrap Secrets (RFC 5.2: "Argo: decrypt manifests,
//! create bootstrap Secrets"): which owners deliver from Git (`OwnerKinds`, e.g. Sealed
//! Secrets), which consume modes hold against a controller that rewrites what it owns, and
//! where in Git a Secret comes from (`GitOrigin`, references only) so that the last step of a
//! handover, removing the manifest from Git, can be done by a pull request.

pub mod flags;
pub mod origin;

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::handover::mark_consumed::Mode;
use crate::kube::BootstrapSecret;

pub use origin::GitOrigin;

/// `--gitops-owner-kinds`' default: the Sealed Secrets controller unseals a `SealedSecret`
/// (bitnami.com) from Git into a Secret it owns.
pub const DEFAULT_OWNER_KINDS: &str = "SealedSecret.bitnami.com";

/// Flux's per-object switch: the kustomize-controller neither applies nor prunes an object
/// carrying it.
pub const FLUX_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
pub const FLUX_RECONCILE_DISABLED: &str = "disabled";

/// One owner reference of a Secret, as far as the steps judge it (no values in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerRef {
    pub kind: String,
    /// `group/version`, or `version` for the core group.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub name: String,
    #[serde(skip)]
    pub controller: bool,
}

impl OwnerRef {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `Kind.group`, the form of the allowlist.
    pub fn kind_group(&self) -> String {
        format!("{}.{}", self.kind, self.group())
    }
}

/// The owner kinds that deliver a bootstrap Secret from Git (`Kind.group`, e.g.
/// `SealedSecret.bitnami.com`). Every other owner reference is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerKinds(Vec<(String, String)>);

impl Default for OwnerKinds {
    fn default() -> Self {
        OwnerKinds::parse(DEFAULT_OWNER_KINDS).expect("the default parses")
    }
}

impl OwnerKinds {
    /// A comma-separated list of `Kind.group`; empty allows no owner at all.
    pub fn parse(list: &str) -> std::result::Result<Self, String> {
        let mut kinds = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, group) = item
                .split_once('.')
                .filter(|(k, g)| !k.is_empty() && !g.is_empty())
                .ok_or_else(|| {
                    format!("{item:?} is not Kind.group (e.g. {DEFAULT_OWNER_KINDS})")
                })?;
            let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c);
            if !kind.chars().all(|c| c.is_ascii_alphanumeric()) || !group.chars().all(dns) {
                return Err(format!(
                    "{item:?} is not Kind.group: a kind is letters and digits, a group a lowercase DNS name"
                ));
            }
            kinds.push((kind.to_owned(), group.to_owned()));
        }
        Ok(OwnerKinds(kinds))
    }

    pub fn allows(&self, o: &OwnerRef) -> bool {
        self.0.iter().any(|(k, g)| *k == o.kind && g == o.group())
    }
}

impl fmt::Display for OwnerKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let list: Vec<String> = self.0.iter().map(|(k, g)| format!("{k}.{g}")).collect();
        f.write_str(&list.join(","))
    }
}

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

/// Whether `mode` can hold for a Secret its controller rewrites. A controller owner (a
/// SealedSecret) re-creates its Secret after a delete and writes its data back after it was
/// blanked, so only `ignore` holds while the owner exists: the Secret is labelled consumed
/// and goes away with its owner once the manifest is removed from Git (garbage collection).
pub fn check_mode_holds(s: &BootstrapSecret, owner: &OwnerRef, mode: Mode) -> Result<()> {
    let what = match mode {
        Mode::Ignore => return Ok(()),
        Mode::Delete => "re-creates it after a delete",
        Mode::Inert => "writes its data back after it is blanked",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, api: &str, controller: bool) -> OwnerRef {
        OwnerRef {
            kind: kind.into(),
            api_version: api.into(),
            name: "o".into(),
            controller,
        }
    }

    #[test]
    fn the_allowlist_matches_kind_and_group_only() {
        let k = OwnerKinds::default();
        assert!(k.allows(&owner("SealedSecret", "bitnami.com/v1alpha1", true)));
        assert!(!k.allows(&owner("SealedSecret", "evil.com/v1alpha1", true)));
        assert!(!k.allows(&owner("ExternalSecret", "external-secrets.io/v1", true)));
        assert!(!k.allows(&owner("SealedSecret", "v1", true)));
        assert_eq!(k.to_string(), DEFAULT_OWNER_KINDS);
        assert_eq!(OwnerKinds::parse("").unwrap().to_string(), "none");
        let two =
            OwnerKinds::parse("SealedSecret.bitnami.com, SopsSecret.isindir.github.com").unwrap();
        assert!(two.allows(&owner("SopsSecret", "isindir.github.com/v1alpha3", true)));
        for bad in [
            "SealedSecret",
            ".bitnami.com",
            "Sealed Secret.bitnami.com",
            "A.B_C",
        ] {
            assert!(OwnerKinds::parse(bad).is_err(), "{bad}");
        }
    }
}
