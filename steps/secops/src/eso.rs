//! Consumers get rotated values without a redeploy: ExternalSecrets that read a rotated path
//! are told to refresh now (ESO's `force-sync` annotation); those ESO will not refresh that
//! way are reported.

use serde::Serialize;

use crate::error::Result;
use crate::kube::{ExternalSecretInfo, Kube};
use crate::paths::VaultPath;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    /// `namespace/name` of ExternalSecrets bumped now.
    pub refreshed: Vec<String>,
    /// Already bumped for this rotation (a re-run).
    pub unchanged: Vec<String>,
    /// `namespace/name: why` for ExternalSecrets ESO will not refresh on an annotation change.
    pub not_refreshable: Vec<String>,
}

/// True when an ExternalSecret remote key names this path: `path`, `mount/path` or
/// `mount/data/path` (how the Vault provider's key may be written with or without the
/// store's `path`).
pub fn refers_to(es: &ExternalSecretInfo, mount: &VaultPath, path: &VaultPath) -> bool {
    let forms = [
        path.to_string(),
        format!("{mount}/{path}"),
        format!("{mount}/data/{path}"),
    ];
    es.remote_keys
        .iter()
        .any(|k| forms.iter().any(|f| k.trim_start_matches('/') == f))
}

/// Why ESO would ignore an annotation bump (externalsecret_controller.go `shouldRefresh`).
pub fn not_refreshable_reason(es: &ExternalSecretInfo) -> Option<&'static str> {
    match es.refresh_policy.as_deref() {
        Some("CreatedOnce") => Some("refreshPolicy CreatedOnce never refreshes"),
        Some("OnChange") => None,
        _ => match es.refresh_interval.as_deref() {
            Some("0") | Some("0s") | Some("0m") | Some("0h") => {
                Some("refreshInterval 0 does not refresh once synced")
            }
            _ => None,
        },
    }
}

/// Bumps every ExternalSecret in `namespaces` that reads `mount/path` to `stamp`.
pub async fn refresh(
    kube: &Kube,
    namespaces: &[String],
    mount: &VaultPath,
    path: &VaultPath,
    stamp: &str,
    dry_run: &crate::plan::DryRun,
) -> Result<RefreshReport> {
    let mut report = RefreshReport::default();
    for ns in namespaces {
        for es in kube.list_external_secrets(ns).await? {
            if !refers_to(&es, mount, path) {
                continue;
            }
            let id = format!("{}/{}", es.namespace, es.name);
            if let Some(why) = not_refreshable_reason(&es) {
                report.not_refreshable.push(format!("{id}: {why}"));
                continue;
            }
            if es.force_sync.as_deref() == Some(stamp) {
                report.unchanged.push(id);
                continue;
            }
            let plan = || {
                crate::plan::PlanItem::new(
                    crate::plan::Action::WouldRefresh,
                    format!("ExternalSecret {id}"),
                )
                .at(mount, path)
                .because(format!("set its force-sync annotation to {stamp}"))
            };
            let bump = kube.bump_force_sync(&es.namespace, &es.name, stamp);
            dry_run.gate(plan, (), bump).await?;
            report.refreshed.push(id);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(keys: &[&str], policy: Option<&str>, interval: Option<&str>) -> ExternalSecretInfo {
        ExternalSecretInfo {
            namespace: "ns".into(),
            name: "es".into(),
            remote_keys: keys.iter().map(|s| s.to_string()).collect(),
            refresh_policy: policy.map(str::to_owned),
            refresh_interval: interval.map(str::to_owned),
            force_sync: None,
        }
    }

    #[test]
    fn matches_the_key_forms_eso_users_write() {
        let m = VaultPath::parse("secret").unwrap();
        let p = VaultPath::parse("apps/db").unwrap();
        for k in [
            "apps/db",
            "secret/apps/db",
            "secret/data/apps/db",
            "/apps/db",
        ] {
            assert!(refers_to(&es(&[k], None, None), &m, &p), "{k}");
        }
        for k in ["apps/db2", "apps", "other/apps/db"] {
            assert!(!refers_to(&es(&[k], None, None), &m, &p), "{k}");
        }
    }

    #[test]
    fn reports_what_eso_will_not_refresh() {
        assert!(not_refreshable_reason(&es(&[], Some("CreatedOnce"), None)).is_some());
        assert!(not_refreshable_reason(&es(&[], Some("Periodic"), Some("0"))).is_some());
        assert!(not_refreshable_reason(&es(&[], None, Some("0s"))).is_some());
        assert!(not_refreshable_reason(&es(&[], Some("OnChange"), Some("0"))).is_none());
        assert!(not_refreshable_reason(&es(&[], None, Some("1h"))).is_none());
    }
}
