//! push-secret (v1.1 internal distribution): publish operator-generated Secrets into Vault so
//! other namespaces consume them through ExternalSecrets instead of copying Secrets around.
//!
//! Writes only when the content differs from Vault's current version, with check-and-set;
//! never writes over a Vault secret it did not create from the same source uid; never
//! modifies the source Secret.

use futures::StreamExt as _;
use serde::Serialize;

use crate::audit::{Target, Workflow};
use crate::cli::VaultTarget;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::fleet::{ClusterName, Relation};
use crate::kube::BootstrapSecret;
use crate::paths::{annotation_hint, PathPolicy, VaultPath};
use crate::plan::{Action, DryRun, PlanItem};
use crate::provenance::{relink_patch, Provenance};
use crate::selection::Selection;
use crate::vault::kv::CasWrite;
use crate::vault::{Kv2Read, Need, Vault};
use crate::vocab::*;

/// The label of Secrets published for internal distribution.
pub const CLASS_INTERNAL: &str = "internal";
/// custom_metadata mark of secrets push-secret owns.
pub const OWNER_PUSH: &str = "push-secret";

#[derive(Debug, Clone)]
pub struct Config {
    pub selection: Selection,
    /// Default prefix `internal`: `internal/{namespace}/{name}`.
    pub paths: PathPolicy,
    pub vault: VaultTarget,
    pub workflow: Workflow,
    /// The cluster this runs in (`--cluster-name`): the owner is this cluster's
    /// `namespace/name`, whatever its uid (a rebuilt cluster takes back its own paths).
    pub cluster: ClusterName,
    /// Secrets pushed at once.
    pub concurrency: usize,
    /// `--dry-run`: every write below goes through its gate.
    pub dry_run: DryRun,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushResult {
    pub namespace: String,
    pub name: String,
    pub path: String,
    /// `pushed`, `unchanged`, or the failure class.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn internal_selector() -> String {
    format!("{LABEL_CLASS}={CLASS_INTERNAL}")
}

pub async fn run(cfg: &Config, cx: &Ctx<'_>) -> Result<Exit> {
    cfg.selection.validate()?;
    let sources = cfg.selection.fetch(cx.kube, &internal_selector()).await?;
    let paths = sources
        .iter()
        .filter_map(|s| {
            cfg.paths
                .target(&s.namespace, &s.name, s.annotation(ANN_VAULT_PATH))
                .ok()
        })
        .flat_map(|p| [data_path(cfg, &p), metadata_path(cfg, &p)]);
    cx.vault.prefetch_capabilities(paths).await;
    let mut exit = Exit::Done;
    let mut results = Vec::new();
    let pushed: Vec<_> = futures::stream::iter(&sources)
        .map(|s| async move {
            // A Secret fetched by name carries no selector: check the label here.
            let path = if s.label(LABEL_CLASS) != Some(CLASS_INTERNAL) {
                Err(Error::precondition(
                    s.object(),
                    format!("is not labeled {}", internal_selector()),
                    "only Secrets labeled for internal distribution are published; label it if it is one",
                ))
            } else {
                cfg.paths
                .target(&s.namespace, &s.name, s.annotation(ANN_VAULT_PATH))
                .map_err(|e| {
                    Error::precondition(
                        s.object(),
                        format!("target path refused: {e}"),
                        annotation_hint(),
                    )
                    })
            };
            match path {
                Ok(p) => push_one(cfg, cx.vault, s, &p).await.map(|(o, v)| {
                    (p, if cfg.dry_run.active() && o == "pushed" { "would-push" } else { o }, v)
                }),
                Err(e) => Err(e),
            }
        })
        .buffered(cfg.concurrency.max(1))
        .collect()
        .await;
    for (s, res) in sources.iter().zip(pushed) {
        let path_str = res
            .as_ref()
            .map(|(p, _, _)| p.to_string())
            .unwrap_or_default();
        let result = match res {
            Ok((p, outcome, version)) => {
                if outcome == "pushed" {
                    cx.kube
                        .event(
                            &s.identity(),
                            false,
                            "Pushed",
                            &format!(
                                "published to Vault {}/{p} version {version} by {}",
                                cfg.vault.mount,
                                cfg.workflow.label()
                            ),
                        )
                        .await;
                }
                PushResult {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    path: p.to_string(),
                    outcome: outcome.into(),
                    version: Some(version),
                    error: None,
                }
            }
            Err(e) => {
                crate::console::err(&format!("push-secret: error: {e}"));
                exit = exit.worst(e.exit());
                if e.exit() == Exit::Precondition {
                    cx.kube
                        .event(&s.identity(), true, "PushRefused", &e.to_string())
                        .await;
                }
                PushResult {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    path: path_str,
                    outcome: e.outcome().into(),
                    version: None,
                    error: Some(e.to_string()),
                }
            }
        };
        let target = VaultPath::parse(&result.path).ok().map(|path| Target {
            mount: cfg.vault.mount.to_string(),
            path,
            version: result.version,
        });
        cx.audit.emit(&cx.audit.event(
            "push",
            result.outcome.clone(),
            Some(s.identity()),
            target,
            result.error.clone(),
        ));
        results.push(result);
    }
    cx.outputs.write_json("result.json", &results)?;
    cx.outputs.write(
        "pushed",
        &results
            .iter()
            .filter(|r| r.outcome == "pushed")
            .count()
            .to_string(),
    )?;
    if cfg.selection.single.is_some() {
        if let Some(e) = results.first().and_then(|r| r.error.clone()) {
            return Err(match exit {
                Exit::Transient => Error::Transient(e),
                Exit::Unavailable => Error::Unavailable(e),
                Exit::Usage => Error::Usage(e),
                Exit::Internal => Error::Internal(e),
                _ => Error::Refused(e),
            });
        }
    }
    Ok(exit)
}

fn would_push(cfg: &Config, s: &BootstrapSecret, path: &VaultPath, v: u64, why: &str) -> PlanItem {
    PlanItem::new(Action::WouldPush, s.object())
        .at(&cfg.vault.mount, path)
        .version(Some(v))
        .because(why)
}

fn data_path(cfg: &Config, path: &VaultPath) -> String {
    format!("{}/data/{path}", cfg.vault.mount)
}

fn metadata_path(cfg: &Config, path: &VaultPath) -> String {
    format!("{}/metadata/{path}", cfg.vault.mount)
}

/// Returns the outcome and the version Vault holds for this source afterwards.
async fn push_one(
    cfg: &Config,
    vault: &Vault,
    s: &BootstrapSecret,
    path: &VaultPath,
) -> Result<(&'static str, u64)> {
    let mount = &cfg.vault.mount;
    let object = format!("Vault path {mount}/{path}");
    if s.data.is_empty() {
        return Err(Error::precondition(
            s.object(),
            "has no data to publish",
            "check the operator that creates it",
        ));
    }
    let data = s.data.to_vault();
    let prov = Provenance::of(s, Some(OWNER_PUSH), &cfg.workflow, &cfg.cluster, &data);
    let mut patch = prov.to_metadata_patch()?;
    let (cas, first) = match vault.kv2_read(mount, path, None).await? {
        Kv2Read::Missing => (0, true),
        Kv2Read::Deleted { version, .. } => {
            return Err(Error::precondition(
                object,
                format!("its latest version {version} is deleted"),
                "undelete it or remove the path's metadata in Vault if it is no longer wanted",
            ))
        }
        Kv2Read::Present {
            version,
            data: current,
            foreign_shape,
            custom_metadata,
        } => {
            let same = !foreign_shape && current.same_values(&data);
            match ownership(cfg, s, &prov, &custom_metadata, same) {
                Ownership::Mine if same => return Ok(("unchanged", version)),
                Ownership::Mine => (version, false),
                Ownership::TakeOver => {
                    // The same cluster's namespace/name re-created (a rebuild): the new uid
                    // takes over, the previous one is recorded, its value is published.
                    patch.extend(take_over_patch(cfg, s, &custom_metadata));
                    if same {
                        let needs = [Need::new("patch", metadata_path(cfg, path))];
                        vault.require(&object, &needs).await?;
                        let plan = || would_push(cfg, s, path, version, "the Secret was re-created in this cluster with the value Vault holds: move the provenance to its uid");
                        let provenance = vault.kv2_patch_metadata(mount, path, &patch);
                        cfg.dry_run.gate(plan, (), provenance).await?;
                        return Ok(("unchanged", version));
                    }
                    (version, false)
                }
                // Our first write landed but the step stopped before recording provenance.
                Ownership::Unrecorded => {
                    let needs = [Need::new("patch", metadata_path(cfg, path))];
                    vault.require(&object, &needs).await?;
                    let plan = || would_push(cfg, s, path, version, "record the missing provenance of this identical version");
                    let provenance = vault.kv2_patch_metadata(mount, path, &patch);
                    cfg.dry_run.gate(plan, (), provenance).await?;
                    return Ok(("unchanged", version));
                }
                Ownership::Foreign(why) => {
                    return Err(Error::precondition(
                        object,
                        format!("version {version} {why}"),
                        "push-secret never overwrites another owner's secret: pick another path with the \
                         secops.io/vault-path annotation (or a --path-prefix with {cluster} per \
                         cluster) or remove the stale Vault secret",
                    ))
                }
            }
        }
    };
    let why = if first {
        "create-only write (cas=0)".to_owned()
    } else {
        format!("the Secret changed: write over version {cas} (cas={cas})")
    };
    // A new path is created, a changed one updated; provenance is patched either way.
    let needs = [
        Need::new(
            if first { "create" } else { "update" },
            data_path(cfg, path),
        ),
        Need::new("patch", metadata_path(cfg, path)),
    ];
    vault.require(&object, &needs).await?;
    let planned = CasWrite::Written { version: cas + 1 };
    let write = vault.kv2_write_cas(mount, path, &data, cas);
    let plan = || would_push(cfg, s, path, cas + 1, &why);
    match cfg.dry_run.gate(plan, planned, write).await? {
        CasWrite::Written { version } => {
            let plan = || would_push(cfg, s, path, version, "then record provenance");
            let provenance = vault.kv2_patch_metadata(mount, path, &patch);
            cfg.dry_run.gate(plan, (), provenance).await?;
            Ok(("pushed", version))
        }
        CasWrite::Mismatch => {
            // Either a concurrent writer, or our own retried write whose first answer was
            // lost: if Vault now holds exactly this content with no other owner, it is done.
            if let Kv2Read::Present {
                version,
                data: current,
                foreign_shape: false,
                custom_metadata,
            } = vault.kv2_read(mount, path, None).await?
            {
                let ours = matches!(
                    ownership(cfg, s, &prov, &custom_metadata, true),
                    Ownership::Mine | Ownership::TakeOver | Ownership::Unrecorded
                );
                if ours && version == cas + 1 && current.same_values(&data) {
                    vault.kv2_patch_metadata(mount, path, &patch).await?;
                    return Ok(("unchanged", version));
                }
            }
            Err(Error::Transient(format!(
                "{object} changed while publishing; nothing was written"
            )))
        }
        CasWrite::Denied { reason } => Err(Error::precondition(
            object,
            format!("Vault denied the write (HTTP 403: {reason})"),
            if first {
                "grant the push-secret policy `create` on <mount>/data/<path>"
            } else {
                "grant the push-secret policy `update` on <mount>/data/<path>"
            },
        )),
    }
}

/// Who owns a Vault secret push-secret meets, seen from this Secret in this cluster.
enum Ownership {
    /// Published from this Secret (this uid) in this cluster.
    Mine,
    /// Published from this cluster's `namespace/name` under an earlier uid (a rebuild), or
    /// before cluster names with the value this Secret holds.
    TakeOver,
    /// No provenance and this Secret's value: our write whose provenance PATCH never ran.
    Unrecorded,
    /// Anything else, and why: never overwritten.
    Foreign(String),
}

fn ownership(
    cfg: &Config,
    s: &BootstrapSecret,
    prov: &Provenance,
    custom_metadata: &std::collections::BTreeMap<String, String>,
    same_data: bool,
) -> Ownership {
    let Some(p) = Provenance::from_metadata(custom_metadata) else {
        return match same_data {
            true => Ownership::Unrecorded,
            false => Ownership::Foreign("has no provenance: push-secret did not publish it".into()),
        };
    };
    if p.owner.as_deref() != Some(OWNER_PUSH) || p.source != prov.source {
        return Ownership::Foreign(format!(
            "was not published by push-secret from {} (uid {})",
            prov.source, s.uid
        ));
    }
    let same_uid = p.source_uid == prov.source_uid;
    match Relation::of(custom_metadata, &cfg.cluster) {
        Relation::Same if same_uid => Ownership::Mine,
        Relation::Same => Ownership::TakeOver,
        // Published before cluster names: this uid is ours (the cluster gets recorded); an
        // earlier uid only with the value Vault holds (nothing is lost by adopting it).
        Relation::Legacy if same_uid => Ownership::Mine,
        Relation::Legacy if same_data => Ownership::TakeOver,
        Relation::Legacy => Ownership::Foreign(format!(
            "was published by push-secret from {} uid {} before cluster names were recorded, \
             with other data than this Secret (uid {})",
            p.source, p.source_uid, s.uid
        )),
        Relation::Shared { source } | Relation::Other { source } => Ownership::Foreign(format!(
            "was published by push-secret from {} in cluster {source:?}; this is cluster {:?}, \
             and another cluster never overwrites it",
            p.source,
            cfg.cluster.as_str()
        )),
    }
}

/// The provenance keys a take-over adds: the previous uid recorded, when and by whom.
fn take_over_patch(
    cfg: &Config,
    s: &BootstrapSecret,
    custom_metadata: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, Option<String>> {
    relink_patch(
        custom_metadata,
        &s.uid,
        &s.resource_version,
        &cfg.cluster,
        &cfg.workflow.label(),
    )
}
