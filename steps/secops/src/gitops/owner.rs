//! Owner references as the steps judge them, and the allowlist of owner kinds that deliver
//! bootstrap Secrets from Git (`--gitops-owner-kinds`). Pure: `kube` builds [`OwnerRef`]s
//! from what the API server returns.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;

/// `--gitops-owner-kinds`' default: the Sealed Secrets controller unseals a `SealedSecret`
/// (bitnami.com) from Git into a Secret it owns.
pub const DEFAULT_OWNER_KINDS: &str = "SealedSecret.bitnami.com";

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

impl From<OwnerReference> for OwnerRef {
    fn from(o: OwnerReference) -> Self {
        OwnerRef {
            controller: o.controller == Some(true),
            kind: o.kind,
            api_version: o.api_version,
            name: o.name,
        }
    }
}

/// A Secret's owner references as the API server returned them.
pub fn owners(refs: Option<Vec<OwnerReference>>) -> Vec<OwnerRef> {
    refs.into_iter().flatten().map(OwnerRef::from).collect()
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
