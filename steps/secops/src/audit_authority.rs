//! audit-authority: checks the single-authority guarantees (RFC 5.8, 5.2) and reports every
//! violation. Read-only. Values are compared in memory only; the report holds references.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kube::BootstrapSecret;
use crate::paths::VaultPath;
use crate::vault::{Kv2Read, Vault};
use crate::vocab::*;

/// The kinds of violation, in report order.
pub const KINDS: [&str; 6] = [
    "bootstrap-not-consumed",
    "inert-holds-data",
    "bootstrap-outside-allowed-namespaces",
    "vault-without-provenance",
    "sprawl",
    "other-cluster",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub namespaces: Vec<String>,
    pub grace: Duration,
    pub mount: VaultPath,
    /// Handover subtree prefix (`--path-prefix`); `None`: `{namespace}/` at the mount root.
    pub handover_prefix: Option<VaultPath>,
    pub internal_prefix: VaultPath,
    /// Compare Secret values with Vault values (needs `read` on the data paths).
    pub compare_values: bool,
    /// Values shorter than this are never called copies (too many coincidences).
    pub min_value_bytes: usize,
    /// LIST all namespaces for bootstrap Secrets outside the allowed set.
    pub cluster_wide: bool,
    /// Secrets per LIST page: what is in memory at once (a Secret holds up to 1 MiB).
    pub page_size: u32,
    pub fail_on_violations: bool,
    /// `--cluster-name`: Vault secrets under this layout's paths whose provenance names
    /// another cluster are reported (`other-cluster`).
    pub cluster: crate::fleet::ClusterName,
    /// Reads only either way; a dry run adds the plan (one `report` line per violation).
    pub dry_run: crate::plan::DryRun,
}

/// A report.json entry: camelCase like every other output (docs/steps.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub kind: &'static str,
    pub object: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_path: Option<String>,
}

pub async fn run(cfg: &Config, cx: &Ctx<'_>) -> Result<Exit> {
    let mut found: Vec<Violation> = Vec::new();
    let now = jiff::Timestamp::now();
    // Values of Secrets that could be copies, as keyed digests only: memory is one LIST page
    // plus 32 bytes per value, whatever the Secrets hold (Helm releases reach 1 MiB each).
    let mut copies = Copies::new();
    let mut secrets_checked = 0usize;
    for ns in &cfg.namespaces {
        let mut next: Option<String> = None;
        loop {
            let (page, cont) = cx
                .kube
                .list_secrets_page(ns, "", cfg.page_size, next.as_deref())
                .await?;
            for s in page {
                judge(cfg, &s, now, &mut found, &mut copies);
                secrets_checked += 1;
            }
            match cont {
                Some(c) => next = Some(c),
                None => break,
            }
        }
    }
    check_rest(cfg, cx, now, found, copies, secrets_checked).await
}

/// Keyed SHA-256 digests of candidate copies' values (the key is random per run, so the
/// digests are no lasting fingerprint of a value), by digest: which Secret keys hold it.
struct Copies {
    key: [u8; 32],
    by_digest: HashMap<[u8; 32], Vec<(String, String)>>,
}

impl Copies {
    fn new() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key[..]);
        Copies {
            key,
            by_digest: HashMap::new(),
        }
    }

    fn digest(&self, value: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(value);
        h.finalize().into()
    }

    fn add(&mut self, object: &str, key: &str, value: &[u8]) {
        let d = self.digest(value);
        self.by_digest
            .entry(d)
            .or_default()
            .push((object.to_owned(), key.to_owned()));
    }

    fn holders(&self, value: &[u8]) -> &[(String, String)] {
        self.by_digest
            .get(&self.digest(value))
            .map_or(&[], Vec::as_slice)
    }

    fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The Kubernetes-side checks of one Secret; a possible copy leaves only its digests.
fn judge(
    cfg: &Config,
    s: &BootstrapSecret,
    now: jiff::Timestamp,
    found: &mut Vec<Violation>,
    copies: &mut Copies,
) {
    let class = s.label(LABEL_CLASS).unwrap_or_default().to_owned();
    let consumed = s.label(LABEL_STATE) == Some(STATE_CONSUMED);
    if class == CLASS_BOOTSTRAP {
        let age = s
            .created
            .map(|c| now.duration_since(c))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        if !consumed && age >= cfg.grace {
            found.push(Violation {
                kind: KINDS[0],
                object: s.object(),
                reason: format!(
                    "bootstrap Secret not consumed {} after creation (grace {}){}",
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(cfg.grace),
                    gitops_hint(s)
                ),
                vault_path: None,
            });
        }
        let inert = s.annotation(ANN_CONSUMED_MODE) == Some("inert");
        // The placeholders mark-consumed leaves are not data (one definition: inert).
        let with_data = s.data.keys().any(|k| {
            s.data
                .get(k)
                .is_some_and(|v| !crate::inert::holds_nothing(&s.type_, k, v.expose()))
        });
        if consumed && inert && with_data {
            found.push(Violation {
                kind: KINDS[1],
                object: s.object(),
                reason: format!(
                    "consumed in inert mode but still holds data{}",
                    gitops_hint(s)
                ),
                vault_path: s.annotation(ANN_VAULT_PATH).map(str::to_owned),
            });
        }
        return;
    }
    let eso = s.label(LABEL_ESO_MANAGED) == Some("true")
        || s.owners.iter().any(|o| o.kind == "ExternalSecret");
    let origin = matches!(class.as_str(), CLASS_INTERNAL | CLASS_AUTHORITY);
    if !eso && !origin && cfg.compare_values {
        for k in s.data.keys() {
            if let Some(v) = s.data.get(k).filter(|v| v.len() >= cfg.min_value_bytes) {
                copies.add(&s.object(), k, v.expose());
            }
        }
    }
}

/// A bootstrap Secret a GitOps controller delivers comes back until Git no longer holds
/// it: name the manifest to remove (references only).
fn gitops_hint(s: &BootstrapSecret) -> String {
    let owner = s.owners.iter().find(|o| o.controller);
    crate::gitops::GitOrigin::of(s, owner)
        .describe()
        .map(|m| format!("; Git still holds its manifest ({m}): remove it from Git"))
        .unwrap_or_default()
}

/// The cluster-wide check, the Vault walk and the report.
#[allow(clippy::too_many_arguments)]
async fn check_rest(
    cfg: &Config,
    cx: &Ctx<'_>,
    now: jiff::Timestamp,
    mut found: Vec<Violation>,
    copies: Copies,
    secrets_checked: usize,
) -> Result<Exit> {
    if cfg.cluster_wide {
        for s in cx
            .kube
            .list_secrets_all_namespaces(&bootstrap_selector())
            .await?
        {
            if !cfg.namespaces.contains(&s.namespace) {
                found.push(Violation {
                    kind: KINDS[2],
                    object: s.object(),
                    reason: "bootstrap Secret in a namespace outside the allowed set".into(),
                    vault_path: None,
                });
            }
        }
    }
    let mut roots: Vec<VaultPath> = cfg
        .namespaces
        .iter()
        .filter_map(|ns| {
            let p = match &cfg.handover_prefix {
                Some(pre) => format!("{pre}/{ns}"),
                None => ns.clone(),
            };
            VaultPath::parse(&p).ok()
        })
        .collect();
    roots.push(cfg.internal_prefix.clone());
    let mut vault_checked = 0usize;
    for root in &roots {
        for path in walk(cx.vault, &cfg.mount, root).await? {
            vault_checked += 1;
            let shown = format!("{}/{}", cfg.mount, path);
            let meta = cx.vault.kv2_metadata(&cfg.mount, &path).await?;
            let has_provenance = meta
                .as_ref()
                .is_some_and(|m| m.custom_metadata.contains_key(META_SOURCE));
            if !has_provenance {
                found.push(Violation {
                    kind: KINDS[3],
                    object: format!("Vault secret {shown}"),
                    reason: format!("no provenance ({META_SOURCE} missing from custom_metadata)"),
                    vault_path: Some(shown.clone()),
                });
            }
            if let Some(v) = meta
                .as_ref()
                .and_then(|m| other_cluster(cfg, &m.custom_metadata))
            {
                found.push(Violation {
                    kind: KINDS[5],
                    object: format!("Vault secret {shown}"),
                    reason: v,
                    vault_path: Some(shown.clone()),
                });
            }
            if !cfg.compare_values || copies.is_empty() {
                continue;
            }
            let Kv2Read::Present { data, .. } = cx.vault.kv2_read(&cfg.mount, &path, None).await?
            else {
                continue;
            };
            // One violation per Secret key and path, naming the first Vault key that matched.
            let mut reported = BTreeSet::new();
            for (vk, vv) in &data.values {
                for (object, k) in copies.holders(vv.expose_secret().as_bytes()) {
                    if reported.insert((object, k)) {
                        found.push(Violation {
                            kind: KINDS[4],
                            object: object.clone(),
                            reason: format!(
                                "key {k:?} holds the value of Vault key {vk:?} but the Secret is not managed by ESO"
                            ),
                            vault_path: Some(shown.clone()),
                        });
                    }
                }
            }
        }
    }
    let mut counts: BTreeMap<&str, usize> = KINDS.iter().map(|k| (*k, 0)).collect();
    for v in &found {
        *counts.entry(v.kind).or_default() += 1;
        let mut ev = cx
            .audit
            .event("violation", v.kind, None, None, Some(v.reason.clone()));
        ev.details = Some(serde_json::json!({ "object": v.object, "vaultPath": v.vault_path }));
        cx.audit.emit(&ev);
    }
    let report = serde_json::json!({
        "time": now.to_string(),
        "violations": found,
        "counts": counts,
        "checked": {
            "namespaces": cfg.namespaces,
            "secrets": secrets_checked,
            "vaultSecrets": vault_checked,
        },
    });
    let mut ev = cx.audit.event(
        "audit",
        if found.is_empty() {
            "clean"
        } else {
            "violations"
        },
        None,
        None,
        None,
    );
    ev.details = Some(serde_json::json!({
        "violations": found.len(),
        "counts": counts,
        "secrets": secrets_checked,
        "vaultSecrets": vault_checked,
    }));
    cx.audit.emit(&ev);
    cx.outputs.write_json("report.json", &report)?;
    cx.outputs.write("violations", &found.len().to_string())?;
    for (k, n) in &counts {
        cx.outputs.write(&format!("count-{k}"), &n.to_string())?;
    }
    if !found.is_empty() {
        crate::console::err(&format!(
            "audit-authority: {} violation(s): {}",
            found.len(),
            counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if cfg.fail_on_violations {
            return Ok(Exit::Precondition);
        }
    }
    Ok(Exit::Done)
}

/// Every leaf key under `root` (depth-first, bounded).
async fn walk(vault: &Vault, mount: &VaultPath, root: &VaultPath) -> Result<Vec<VaultPath>> {
    const MAX: usize = 100_000;
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for k in vault.kv2_list(mount, Some(&dir)).await? {
            let (name, folder) = match k.strip_suffix('/') {
                Some(n) => (n, true),
                None => (k.as_str(), false),
            };
            let Ok(p) = VaultPath::parse(&format!("{dir}/{name}")) else {
                tracing::warn!(path = %format!("{dir}/{name}"), "skipping a Vault key outside our path rules");
                continue;
            };
            if folder {
                stack.push(p);
            } else {
                out.push(p);
            }
            if out.len() + stack.len() > MAX {
                return Err(Error::precondition(
                    format!("Vault path {mount}/{root}"),
                    "more than 100000 keys",
                    "audit a narrower set of namespaces",
                ));
            }
        }
    }
    out.sort_by_key(|p| p.to_string());
    Ok(out)
}

/// A Vault secret under this cluster's layout whose provenance names another cluster that this
/// one does not share the path with: another cluster writes where this one would.
fn other_cluster(cfg: &Config, custom: &BTreeMap<String, String>) -> Option<String> {
    match crate::fleet::Relation::of(custom, &cfg.cluster) {
        crate::fleet::Relation::Other { source } => Some(format!(
            "its provenance names cluster {source:?} ({META_SOURCE_CLUSTER}), not this cluster \
             {:?}, under this cluster's paths; give each cluster its own paths (--path-prefix \
             with {{cluster}}) or see docs/fleets.md",
            cfg.cluster.as_str()
        )),
        _ => None,
    }
}
