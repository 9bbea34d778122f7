//! Cluster identity: many clusters share one Vault (fleets). Each step that writes or judges
//! provenance knows the name of the cluster it runs in (`--cluster-name`, as Git names the
//! cluster, so it survives a rebuild; the kube-system uid does not), records it in Vault's
//! custom_metadata and judges a path another cluster wrote by the rule in docs/fleets.md:
//! the same cluster (or one already sharing the path) is a rebuild, Vault authoritative;
//! another cluster with equal data shares the path; another cluster with other data is a
//! conflict that writes nothing and consumes nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::vault::kv::META_VALUE_MAX;
use crate::vocab::{META_CLUSTERS, META_SOURCE_CLUSTER};

/// The placeholder `--path-prefix` may contain, replaced by the cluster name.
pub const CLUSTER_PLACEHOLDER: &str = "{cluster}";

/// A cluster's name as Git knows it: a DNS-1123 label (lowercase letters, digits, `-`, at most
/// 63 characters), so it is safe in paths, metadata, audit lines and Events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if !crate::names::is_dns_label(s) {
            return Err(Error::Usage(format!(
                "--cluster-name {s:?} is not a cluster name: use at most 63 lowercase letters, \
                 digits and '-' (not first or last), the name Git gives the cluster"
            )));
        }
        Ok(ClusterName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{cluster}` in a path prefix replaced by the cluster name; the result is checked by the
/// path rules like any prefix. A prefix naming `{cluster}` without a cluster name is refused.
pub fn substitute(prefix: &str, cluster: Option<&ClusterName>) -> Result<String> {
    if !prefix.contains(CLUSTER_PLACEHOLDER) {
        return Ok(prefix.to_owned());
    }
    match cluster {
        Some(c) => Ok(prefix.replace(CLUSTER_PLACEHOLDER, c.as_str())),
        None => Err(Error::Usage(format!(
            "path prefix {prefix:?} contains {CLUSTER_PLACEHOLDER}: give --cluster-name \
             (env SECOPS_CLUSTER_NAME)"
        ))),
    }
}

/// An Event message naming the cluster it was recorded from.
pub fn with_cluster(message: &str, cluster: Option<&str>) -> String {
    match cluster {
        Some(c) => format!("{message} [cluster {c}]"),
        None => message.to_owned(),
    }
}

/// Which cluster a Vault secret's provenance belongs to, seen from the caller's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// Written from this cluster (before or after a rebuild).
    Same,
    /// Written from another cluster; this one shares the path (recorded in
    /// `secops.io/clusters` when its data was equal, or by `--fleet-vault-authoritative`).
    Shared { source: String },
    /// Written from another cluster that this one does not share the path with.
    Other { source: String },
    /// Handed over before clusters were recorded.
    Legacy,
}

impl Relation {
    pub fn of(custom_metadata: &BTreeMap<String, String>, me: &ClusterName) -> Self {
        match custom_metadata
            .get(META_SOURCE_CLUSTER)
            .filter(|c| !c.is_empty())
        {
            None => Relation::Legacy,
            Some(c) if c == me.as_str() => Relation::Same,
            Some(c)
                if sharing_clusters(custom_metadata)
                    .iter()
                    .any(|s| s == me.as_str()) =>
            {
                Relation::Shared { source: c.clone() }
            }
            Some(c) => Relation::Other { source: c.clone() },
        }
    }
}

/// The clusters other than the source that share a path, in the order they joined.
pub fn sharing_clusters(custom_metadata: &BTreeMap<String, String>) -> Vec<String> {
    custom_metadata
        .get(META_CLUSTERS)
        .map(|v| {
            v.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The metadata PATCH that records `me` among the clusters sharing the path; empty when it is
/// already recorded or when Vault's 512-byte value limit is reached (then the cluster is not
/// recorded and is later judged as another cluster: a conflict, never a lost value).
pub fn share_patch(
    custom_metadata: &BTreeMap<String, String>,
    me: &ClusterName,
) -> BTreeMap<String, Option<String>> {
    let mut clusters = sharing_clusters(custom_metadata);
    if clusters.iter().any(|c| c == me.as_str()) {
        return BTreeMap::new();
    }
    clusters.push(me.to_string());
    let joined = clusters.join(",");
    if joined.len() > META_VALUE_MAX {
        tracing::warn!(
            cluster = %me,
            "too many clusters share this path to record one more in {META_CLUSTERS}; it is \
             judged as another cluster if the data ever differs"
        );
        return BTreeMap::new();
    }
    BTreeMap::from([(META_CLUSTERS.to_owned(), Some(joined))])
}

/// What a handover records at a path that already holds a handover of the same
/// `namespace/name` before it consumes the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Nothing: the provenance already says it.
    Nothing,
    /// Move the provenance to this Secret ([`crate::provenance::relink_patch`]): a rebuild of
    /// this cluster (new uid), or a handover made before cluster names adopted by this one.
    Relink,
    /// Add this cluster to the clusters sharing the path ([`share_patch`]).
    Share,
}

/// The conflict rule (docs/fleets.md): what a handover of a Secret does at a path holding a
/// handover of the same `namespace/name`. `Ok((record, vault_differs))`: record that, then
/// consume (without a Vault data write when Vault differs: Vault is authoritative).
/// `Err(source)`: a conflict with that cluster (`None`: a handover before cluster names):
/// nothing written, nothing consumed.
pub fn judge(
    relation: &Relation,
    same_data: bool,
    same_uid: bool,
    fleet_vault_authoritative: bool,
) -> std::result::Result<(Record, bool), Option<String>> {
    let differs = !same_data;
    match relation {
        Relation::Same if same_data && !same_uid => Ok((Record::Relink, false)),
        Relation::Same | Relation::Shared { .. } => Ok((Record::Nothing, differs)),
        Relation::Other { .. } if same_data || fleet_vault_authoritative => {
            Ok((Record::Share, differs))
        }
        Relation::Other { source } => Err(Some(source.clone())),
        Relation::Legacy if same_uid || same_data || fleet_vault_authoritative => {
            Ok((Record::Relink, differs))
        }
        Relation::Legacy => Err(None),
    }
}

/// The refusal when another cluster holds other data at the path: nothing is written and the
/// Secret is not consumed, so its value survives.
pub fn conflict(
    object: String,
    path: &str,
    version: u64,
    source: Option<&str>,
    me: &ClusterName,
) -> Error {
    let holder = match source {
        Some(c) => format!("cluster {c:?}"),
        None => "a handover that recorded no cluster (before cluster names)".to_owned(),
    };
    Error::precondition(
        object,
        format!(
            "cluster conflict: Vault {path} version {version} holds other data, written by \
             {holder}; this is cluster {:?}; nothing written and the Secret is not consumed",
            me.as_str()
        ),
        "give each cluster its own paths (--path-prefix with {cluster}), or, if Vault's value \
         is the one every cluster must use, re-run with --fleet-vault-authoritative \
         (docs/fleets.md)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(s: &str) -> ClusterName {
        ClusterName::parse(s).unwrap()
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        assert!(ClusterName::parse("prod-eu-1").is_ok());
        for bad in [
            "",
            "Prod",
            "a/b",
            "-a",
            "a-",
            "a.b",
            &"x".repeat(64),
            "{cluster}",
        ] {
            assert!(ClusterName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_placeholder_needs_a_cluster() {
        assert_eq!(substitute("bootstrap", None).unwrap(), "bootstrap");
        assert_eq!(
            substitute("fleet/{cluster}/bootstrap", Some(&me("a"))).unwrap(),
            "fleet/a/bootstrap"
        );
        assert!(matches!(
            substitute("{cluster}", None),
            Err(Error::Usage(_))
        ));
    }

    /// (relation, same data, same uid, fleet flag) -> verdict
    type Row<'a> = (
        &'a Relation,
        bool,
        bool,
        bool,
        Result<(Record, bool), Option<String>>,
    );

    #[test]
    fn the_conflict_rule_table() {
        let other = Relation::Other { source: "b".into() };
        let shared = Relation::Shared { source: "b".into() };
        use Record::*;
        // (relation, same data, same uid, fleet flag) -> verdict
        let rows: [Row; 12] = [
            (&Relation::Same, true, true, false, Ok((Nothing, false))),
            (&Relation::Same, true, false, false, Ok((Relink, false))),
            (&Relation::Same, false, false, false, Ok((Nothing, true))),
            (&shared, false, false, false, Ok((Nothing, true))),
            (&shared, true, false, false, Ok((Nothing, false))),
            (&other, true, false, false, Ok((Share, false))),
            (&other, false, false, false, Err(Some("b".into()))),
            (&other, false, false, true, Ok((Share, true))),
            (&Relation::Legacy, true, false, false, Ok((Relink, false))),
            (&Relation::Legacy, false, true, false, Ok((Relink, true))),
            (&Relation::Legacy, false, false, false, Err(None)),
            (&Relation::Legacy, false, false, true, Ok((Relink, true))),
        ];
        for (rel, data, uid, fleet, want) in rows {
            assert_eq!(
                judge(rel, data, uid, fleet),
                want,
                "{rel:?} {data} {uid} {fleet}"
            );
        }
    }

    #[test]
    fn relation_and_sharing_are_bounded() {
        let mut m = BTreeMap::new();
        assert_eq!(Relation::of(&m, &me("a")), Relation::Legacy);
        m.insert(META_SOURCE_CLUSTER.to_owned(), "a".to_owned());
        assert_eq!(Relation::of(&m, &me("a")), Relation::Same);
        assert!(matches!(Relation::of(&m, &me("b")), Relation::Other { .. }));
        for (k, v) in share_patch(&m, &me("b")) {
            m.insert(k, v.unwrap());
        }
        assert!(matches!(
            Relation::of(&m, &me("b")),
            Relation::Shared { .. }
        ));
        assert!(share_patch(&m, &me("b")).is_empty(), "recorded once");
        for i in 0..100 {
            let c = me(&format!("cluster-{i:02}-{}", "x".repeat(40)));
            for (k, v) in share_patch(&m, &c) {
                m.insert(k, v.unwrap());
            }
        }
        assert!(m[META_CLUSTERS].len() <= META_VALUE_MAX);
        assert!(sharing_clusters(&m).contains(&"b".to_owned()));
    }
}
