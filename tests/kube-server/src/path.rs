//! REST paths parsed once, so forbidding, validation, accounting and error bodies all
//! agree on group, scope, resource and name.

/// A Kubernetes resource path: `/api/v1/...` or `/apis/GROUP/VERSION/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    /// `None` for cluster-scoped requests, including a LIST across all namespaces.
    pub namespace: Option<String>,
    /// Plural resource name, e.g. `secrets`.
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ResourcePath {
    /// Parses a request path; `None` when it is not a resource path.
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (*resource, None, None),
            [resource, name] => (*resource, Some(name.to_string()), None),
            [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
            _ => return None,
        };
        Some(Self {
            group: group.to_string(),
            version: version.to_string(),
            namespace,
            resource: resource.to_string(),
            name,
            subresource,
        })
    }

    /// `secrets`, or `externalsecrets.external-secrets.io` outside the core group: the
    /// form the apiserver uses in its messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Whether this is the core/v1 Secret resource (not a subresource).
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.resource == "secrets"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_and_group_paths() {
        let p = ResourcePath::parse("/api/v1/namespaces/ns/secrets/s").expect("path");
        assert_eq!(p.group, "");
        assert_eq!(p.namespace.as_deref(), Some("ns"));
        assert_eq!(p.resource, "secrets");
        assert_eq!(p.name.as_deref(), Some("s"));
        assert!(p.is_secret());

        let p = ResourcePath::parse("/apis/external-secrets.io/v1/externalsecrets").expect("path");
        assert_eq!(p.namespace, None);
        assert_eq!(
            p.qualified_resource(),
            "externalsecrets.external-secrets.io"
        );

        let p = ResourcePath::parse("/apis/x.io/v1/namespaces/n/things/a/status").expect("path");
        assert_eq!(p.subresource.as_deref(), Some("status"));

        let p = ResourcePath::parse("/api/v1/namespaces/n").expect("path");
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref()),
            ("namespaces", Some("n"))
        );

        assert!(ResourcePath::parse("/version").is_none());
        assert!(ResourcePath::parse("/api").is_none());
        assert!(ResourcePath::parse("/api/v1/namespaces/n/secrets/a/b/c").is_none());
    }
}
