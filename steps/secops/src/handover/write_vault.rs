//! write-vault: copy one bootstrap Secret into Vault, create-only.
//!
//! The write is `cas=0`, so Vault itself guarantees at most one version per path no matter
//! how often or concurrently this runs. Only when that write is refused do we read what is
//! there and judge: our own earlier write (no-op); a re-created bootstrap Secret (the cluster
//! was rebuilt from Git) for a path Vault already holds, whose data Vault holds too (only the
//! provenance moves to the new uid, the old one kept) or no longer holds (rotated since: not
//! written, reported, Vault is authoritative); or anything else (exit 3, nothing written).

use serde::Serialize;

use super::{
    check_eligible, check_matches_reference, is_bootstrap, is_consumed, report_failure, target,
};
use crate::audit::Workflow;
use crate::batch::Fetch;
use crate::cli::{KvVersion, VaultTarget};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::fleet::{self, ClusterName, Record, Relation};
use crate::gitops::{GitOrigin, OwnerKinds};
use crate::kube::{BootstrapSecret, Kube};
use crate::paths::PathPolicy;
use crate::plan::{Action, DryRun, PlanItem};
use crate::provenance::{relink_patch, Provenance};
use crate::reference::SecretRef;
use crate::secret::VaultData;
use crate::variant_name::variant_name as outcome_name;
use crate::vault::kv::CasWrite;
use crate::vault::{Kv2Read, Need, Vault};
use crate::vocab::*;

use super::resurrection::{self, git_still_holds};

#[derive(Debug, Clone)]
pub struct Config {
    pub reference: SecretRef,
    pub vault: VaultTarget,
    pub paths: PathPolicy,
    /// Owner kinds that deliver from Git (`--gitops-owner-kinds`).
    pub owner_kinds: OwnerKinds,
    pub workflow: Workflow,
    /// The cluster this runs in (`--cluster-name`): recorded, and judged by the conflict rule.
    pub cluster: ClusterName,
    /// `--fleet-vault-authoritative`: another cluster's other data is Vault's to keep.
    pub fleet_vault_authoritative: bool,
    /// `--dry-run`: every write below goes through its gate.
    pub dry_run: DryRun,
}

/// What write-vault did, as written to `result.json` and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new version was created.
    Written,
    /// Vault already held exactly this handover; nothing written.
    Unchanged,
    /// `--dry-run`: a real run would write this version; nothing was written.
    WouldWrite,
    /// The Secret was re-created (new uid) with the data Vault holds: only the provenance was
    /// moved to the new uid (a metadata PATCH), the earlier uid kept in the record.
    ProvenanceUpdated,
    /// Put back by GitOps after its handover (same name, the data Vault holds; or an inert
    /// Secret whose data came back): nothing written to Vault, not even metadata; Git still
    /// holds the manifest ([`resurrection`]).
    Resurrected,
    /// Vault holds a handover of this Secret with other data (rotated since it was written to
    /// Git): nothing written, Vault is authoritative; mark-consumed consumes the Secret.
    VaultDiffers,
    /// Another cluster handed over the same data to this path: the path is shared, this
    /// cluster recorded in `secops.io/clusters`; nothing else written.
    Shared,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteResult {
    pub outcome: Outcome,
    pub mount: String,
    pub path: String,
    /// 0 on KV v1, which has no versions.
    pub version: u64,
    /// Where in Git the Secret comes from (references only), when its controller says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_origin: Option<GitOrigin>,
}

/// One reference: write, audit, record an Event, and write the output parameters.
pub async fn run(cfg: &Config, cx: &Ctx<'_>) -> Result<Exit> {
    let outputs = cx.outputs;
    let result = handle(cfg, cx, Fetch::Get).await?;
    outputs.write("vault-mount", &result.mount)?;
    outputs.write("vault-path", &result.path)?;
    outputs.write("vault-version", &result.version.to_string())?;
    outputs.write("outcome", outcome_name(&result.outcome))?;
    outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}

/// Writes one reference and reports it (audit event, Kubernetes Event); no output files.
pub async fn handle(cfg: &Config, cx: &Ctx<'_>, fetch: Fetch) -> Result<WriteResult> {
    let Ctx {
        kube, vault, audit, ..
    } = *cx;
    let r = &cfg.reference;
    let mount = &cfg.vault.mount;
    let result = match write(cfg, kube, vault, fetch).await {
        Ok(res)
            if cfg.dry_run.active()
                && matches!(
                    res.outcome,
                    Outcome::Written | Outcome::ProvenanceUpdated | Outcome::Shared
                ) =>
        {
            WriteResult {
                outcome: Outcome::WouldWrite,
                ..res
            }
        }
        Ok(res) => res,
        Err(e) => {
            let t = target(mount, &r.path, None);
            report_failure(audit, kube, "write", "HandoverRefused", r, t, &e).await;
            return Err(e);
        }
    };
    let version = (result.version > 0).then_some(result.version);
    let reason = match result.outcome {
        Outcome::Written => None,
        Outcome::WouldWrite => Some("dry run: nothing was written".to_owned()),
        Outcome::Unchanged => Some("Vault already holds this handover".to_owned()),
        Outcome::ProvenanceUpdated => Some(format!(
            "the bootstrap Secret was re-created with the data Vault holds; Vault data not \
             written, its provenance now names uid {} (the earlier uid kept in \
             {META_PREVIOUS_SOURCE_UIDS})",
            r.uid
        )),
        Outcome::Resurrected => Some(git_still_holds(
            result.git_origin.as_ref().unwrap_or(&GitOrigin::default()),
        )),
        Outcome::Shared => Some(format!(
            "another cluster handed over the same data to this path: the path is shared, \
             cluster {} recorded in {META_CLUSTERS}",
            cfg.cluster
        )),
        Outcome::VaultDiffers => Some(format!(
            "Vault {mount}/{} version {} holds other data than this bootstrap Secret (rotated \
             since it was written to Git); Vault is authoritative and was not written; \
             mark-consumed marks the Secret consumed without writing; if the Git value is the \
             one wanted, rotate it in Vault, and update Git to match",
            r.path, result.version
        )),
    };
    let outcome = outcome_name(&result.outcome).to_owned();
    audit.emit(&audit.event(
        "write",
        outcome.clone(),
        Some(r.identity()),
        Some(target(mount, &r.path, version)),
        reason.clone(),
    ));
    let message = format!(
        "{outcome}: Vault {mount}/{} version {} by {}{}",
        r.path,
        result.version,
        cfg.workflow.label(),
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let (warning, event_reason) = match result.outcome {
        Outcome::VaultDiffers => (true, "VaultAuthoritative"),
        _ => (false, "HandedOver"),
    };
    kube.event(&r.identity(), warning, event_reason, &message)
        .await;
    Ok(result)
}

async fn write(cfg: &Config, kube: &Kube, vault: &Vault, fetch: Fetch) -> Result<WriteResult> {
    let r = &cfg.reference;
    let done = |outcome, version| WriteResult {
        outcome,
        mount: cfg.vault.mount.to_string(),
        path: r.path.to_string(),
        version,
        git_origin: None,
    };
    let Some(s) = fetch.secret(kube, r).await? else {
        // Gone: fine only if it was us who handed it over (and mark-consumed deleted it).
        return match ours_already(cfg, vault).await? {
            Some(version) => Ok(done(Outcome::Unchanged, version)),
            None => Err(Error::precondition(
                r.object(),
                "no longer exists and Vault holds no handover from it",
                "re-run the handover workflow once GitOps has delivered the Secret",
            )),
        };
    };
    check_matches_reference(&s, r, &cfg.paths)?;
    let owner = crate::gitops::delivering_owner(&s, &cfg.owner_kinds)
        .ok()
        .flatten();
    let origin = Some(GitOrigin::of(&s, owner)).filter(|o| !o.is_empty());
    let done = |outcome, version| WriteResult {
        git_origin: origin.clone(),
        ..done(outcome, version)
    };
    if is_consumed(&s) {
        return match s.annotation(ANN_VAULT_VERSION).and_then(|v| v.parse().ok()) {
            Some(v) if s.annotation(ANN_VAULT_PATH) == Some(r.path.as_str()) => {
                let restored = resurrection::inert_restored(&s);
                Ok(done(
                    match restored {
                        true => Outcome::Resurrected,
                        false => Outcome::Unchanged,
                    },
                    v,
                ))
            }
            _ => Err(Error::precondition(
                s.object(),
                "is already consumed for another Vault path",
                "a consumed Secret is never handed over again: inspect its secops.io annotations",
            )),
        };
    }
    if s.resource_version != r.resource_version {
        return Err(Error::Transient(format!(
            "{} changed since read-bootstrap (resourceVersion {} is now {}): re-run the handover \
             workflow so the current data is read",
            s.object(),
            r.resource_version,
            s.resource_version
        )));
    }
    if !is_bootstrap(&s) {
        return Err(Error::precondition(
            s.object(),
            format!("is not labeled {}", bootstrap_selector()),
            "only explicitly labeled bootstrap Secrets are handed over: label it in Git if it is \
             one, else remove it from the references",
        ));
    }
    check_eligible(&s, &cfg.owner_kinds)?;
    if s.data.is_empty() {
        return Err(Error::precondition(
            s.object(),
            "has no data to hand over",
            "add its data in its GitOps source, then re-run the handover workflow",
        ));
    }
    let data = s.data.to_vault();
    match cfg.vault.kv_version {
        KvVersion::V2 => write_kv2(cfg, kube, vault, &s, &data, origin.is_some())
            .await
            .map(|(o, v)| done(o, v)),
        KvVersion::V1 => write_kv1(cfg, vault, &s, &data).await.map(|o| done(o, 0)),
    }
}

fn provenance(cfg: &Config, s: &BootstrapSecret, data: &VaultData) -> Provenance {
    Provenance::of(s, None, &cfg.workflow, &cfg.cluster, data)
}

async fn write_kv2(
    cfg: &Config,
    kube: &Kube,
    vault: &Vault,
    s: &BootstrapSecret,
    data: &VaultData,
    read_first: bool,
) -> Result<(Outcome, u64)> {
    let (mount, path) = (&cfg.vault.mount, &cfg.reference.path);
    let prov = provenance(cfg, s, data);
    // Validate the metadata before writing anything, so a refusal changes nothing. Whatever
    // records the provenance records the namespace's uid too (read when it is needed).
    let mut patch = prov.to_metadata_patch()?;
    let namespace_uid = || kube.namespace_uid(&s.namespace);
    let object = format!("Vault path {mount}/{path}");
    // A Secret a GitOps controller delivers may be one it put back after the handover:
    // read before writing, so that recognising it costs no write request at all.
    let found = match read_first {
        true => Some(vault.kv2_read(mount, path, None).await?),
        false => None,
    };
    let (found, denied) = match found {
        Some(found @ (Kv2Read::Present { .. } | Kv2Read::Deleted { .. })) => (found, None),
        _ => {
            // Every write below is covered: the create-only write, then (whatever it
            // meets) at most a provenance PATCH. A dry run checks too: it is a read.
            vault.require(&object, &needs(&cfg.vault, path)).await?;
            let create = match cfg.dry_run.active() {
                true => planned_create(cfg, vault).await?,
                false => vault.kv2_write_cas(mount, path, data, 0).await?,
            };
            let denied = match create {
                CasWrite::Written { version } => {
                    resurrection::record_namespace(&mut patch, namespace_uid().await?);
                    let plan =
                        || would_write(cfg, version, "then record provenance in custom_metadata");
                    let provenance = vault.kv2_patch_metadata(mount, path, &patch);
                    cfg.dry_run.gate(plan, (), provenance).await?;
                    return Ok((Outcome::Written, version));
                }
                CasWrite::Mismatch => None,
                CasWrite::Denied { reason } => Some(reason),
            };
            (vault.kv2_read(mount, path, None).await?, denied)
        }
    };
    // Something is there (or we may not write at all): judge it.
    match found {
        Kv2Read::Missing => Err(match denied {
            Some(reason) => Error::precondition(
                object,
                format!("Vault denied creating it (HTTP 403: {reason})"),
                "grant the step's Vault policy `create` on <mount>/data/<path> (and `read`, \
                 and `patch` on <mount>/metadata/<path>)",
            ),
            None => Error::Transient(format!(
                "{object} changed during the write (it was there, now it is not)"
            )),
        }),
        Kv2Read::Deleted { version, destroyed } => Err(Error::precondition(
            object,
            format!(
                "its latest version {version} is {}; a create-only write cannot proceed",
                if destroyed { "destroyed" } else { "soft-deleted" }
            ),
            "undelete it if it is still wanted, or delete the path's metadata in Vault, then re-run",
        )),
        Kv2Read::Present {
            version,
            data: existing,
            foreign_shape,
            custom_metadata,
        } => {
            let same = !foreign_shape && existing.same_values(data);
            // A secret push-secret owns is never a handover's, whatever its source says.
            match Provenance::from_metadata(&custom_metadata) {
                // A handover of this Secret (this uid, or an earlier one of the same name that
                // GitOps re-created), here or in another cluster: the conflict rule decides.
                // Vault's data is never written over.
                Some(p) if p.owner.is_none() && p.source == prov.source => {
                    let relation = Relation::of(&custom_metadata, &cfg.cluster);
                    let same_uid = p.source_uid == prov.source_uid;
                    let fleet = cfg.fleet_vault_authoritative;
                    let (record, differs) = fleet::judge(&relation, same, same_uid, fleet)
                        .map_err(|source| {
                            let shown = format!("{mount}/{path}");
                            let e = fleet::conflict(object.clone(), &shown, version, source.as_deref(), &cfg.cluster);
                            tracing::warn!(object = %s.object(), cluster = %cfg.cluster, "{e}");
                            e
                        })?;
                    let namespace = match record {
                        Record::Relink => namespace_uid().await?,
                        _ => None,
                    };
                    // Same cluster, same data, a new uid, the namespace the handover recorded:
                    // GitOps put it back; a new namespace means the cluster was rebuilt.
                    let recorded = resurrection::same_namespace(&custom_metadata, namespace.as_deref());
                    if record == Record::Relink && relation == Relation::Same && recorded {
                        return Ok((Outcome::Resurrected, version));
                    }
                    let (patch, why) = match record {
                        Record::Nothing => (Default::default(), ""),
                        Record::Relink => (
                            {
                                let mut m = relink_patch(
                                    &custom_metadata,
                                    &s.uid,
                                    &s.resource_version,
                                    &cfg.cluster,
                                    &cfg.workflow.label(),
                                );
                                resurrection::record_namespace(&mut m, namespace);
                                m
                            },
                            "the Secret was re-created (or handed over before cluster names): \
                             move the provenance in custom_metadata to its uid and cluster, \
                             keeping the old uid",
                        ),
                        Record::Share => (
                            fleet::share_patch(&custom_metadata, &cfg.cluster),
                            "record this cluster among the clusters sharing the path",
                        ),
                    };
                    if !patch.is_empty() {
                        let plan = || would_write(cfg, version, why);
                        let provenance = vault.kv2_patch_metadata(mount, path, &patch);
                        cfg.dry_run.gate(plan, (), provenance).await?;
                    }
                    if differs {
                        tracing::warn!(
                            object = %s.object(),
                            vault_uid = %p.source_uid,
                            version,
                            "Vault holds other data for this bootstrap Secret (rotated since); \
                             Vault is authoritative and is not written"
                        );
                        return Ok((Outcome::VaultDiffers, version));
                    }
                    Ok(match record {
                        Record::Nothing => Outcome::Unchanged,
                        Record::Relink => Outcome::ProvenanceUpdated,
                        Record::Share => Outcome::Shared,
                    })
                    .map(|o| (o, version))
                }
                None if same => {
                    // Our write landed but the step stopped before recording provenance.
                    resurrection::record_namespace(&mut patch, namespace_uid().await?);
                    let plan = || would_write(cfg, version, "record the missing provenance of this identical version in custom_metadata");
                    let provenance = vault.kv2_patch_metadata(mount, path, &patch);
                    cfg.dry_run.gate(plan, (), provenance).await?;
                    Ok((Outcome::Unchanged, version))
                }
                Some(p) if p.owner.is_some() => Err(Error::precondition(
                    object,
                    format!(
                        "holds version {version} published by {} from {}; a handover never \
                         takes over a path another step owns",
                        p.owner.unwrap_or_default(),
                        p.source
                    ),
                    "give this bootstrap Secret another path with the secops.io/vault-path \
                     annotation, or remove its bootstrap label if push-secret publishes it",
                )),
                _ => Err(Error::precondition(
                    object,
                    format!("already holds version {version} from another source"),
                    "the runtime authority wins: choose another path with the secops.io/vault-path \
                     annotation, or remove the Vault secret if it is stale",
                )),
            }
        }
    }
}

/// KV v1 has no check-and-set: read, then write if empty. Two concurrent runs could both see
/// it empty; the second write would then replace identical data (same Secret) or a racing
/// writer's. Documented as the weaker guarantee; prefer KV v2.
async fn write_kv1(
    cfg: &Config,
    vault: &Vault,
    s: &BootstrapSecret,
    data: &VaultData,
) -> Result<Outcome> {
    let (mount, path) = (&cfg.vault.mount, &cfg.reference.path);
    if !data.base64_keys.is_empty() {
        return Err(Error::precondition(
            s.object(),
            "has binary (non-UTF-8) values, which KV v1 cannot mark as base64 (it has no metadata)",
            "use a KV v2 mount (--kv-version 2) or store the values base64-encoded in the Secret",
        ));
    }
    match vault.kv1_read(mount, path).await? {
        None => {
            let object = format!("Vault path {mount}/{path}");
            vault.require(&object, &needs(&cfg.vault, path)).await?;
            let plan = || would_write(cfg, 0, "KV v1 write of an empty path");
            cfg.dry_run
                .gate(plan, (), vault.kv1_write(mount, path, data))
                .await?;
            Ok(Outcome::Written)
        }
        Some(existing) if existing.same_values(data) => Ok(Outcome::Unchanged),
        Some(_) => Err(Error::precondition(
            format!("Vault path {mount}/{path}"),
            format!(
                "already holds other data than {} (KV v1 keeps no provenance, so a bootstrap \
                 Secret re-created from Git cannot be told from another writer)",
                s.object()
            ),
            "the runtime authority wins: if Vault holds the current value (rotated since), \
             delete the bootstrap Secret from Git and the cluster; otherwise choose another path \
             with the secops.io/vault-path annotation",
        )),
    }
}

/// The capabilities write-vault's writes to `path` need: KV v2 a create-only data write
/// and a provenance PATCH (never `update`: Vault itself refuses an overwrite); KV v1 a write
/// of an empty path.
pub fn needs(vault: &VaultTarget, path: &crate::paths::VaultPath) -> Vec<Need> {
    let mount = &vault.mount;
    match vault.kv_version {
        KvVersion::V2 => vec![
            Need::new("create", format!("{mount}/data/{path}")),
            Need::new("patch", format!("{mount}/metadata/{path}")),
        ],
        KvVersion::V1 => vec![Need::new("create", format!("{mount}/{path}"))],
    }
}

/// A batch asks for every reference's capabilities in a few requests before its first item.
pub async fn prefetch(vault: &Vault, target: &VaultTarget, refs: &[SecretRef]) {
    let paths = refs
        .iter()
        .flat_map(|r| needs(target, &r.path))
        .map(|n| n.path);
    vault.prefetch_capabilities(paths).await;
}

/// `--dry-run` in place of the create-only write: reads what the write would meet. Nothing
/// there: the write would create version 1. Anything there: the write would be refused with a
/// check-and-set mismatch, and the caller judges what is there exactly as after a real one.
async fn planned_create(cfg: &Config, vault: &Vault) -> Result<CasWrite> {
    match vault
        .kv2_read(&cfg.vault.mount, &cfg.reference.path, None)
        .await?
    {
        Kv2Read::Missing => {
            cfg.dry_run.record(would_write(
                cfg,
                1,
                "create-only write (cas=0) of every key",
            ));
            Ok(CasWrite::Written { version: 1 })
        }
        _ => Ok(CasWrite::Mismatch),
    }
}

fn would_write(cfg: &Config, version: u64, why: &str) -> PlanItem {
    let r = &cfg.reference;
    PlanItem::new(Action::WouldWrite, r.object())
        .at(&cfg.vault.mount, &r.path)
        .version(Some(version))
        .because(why)
}

/// When the Secret is gone: did a handover from exactly this Secret already happen?
async fn ours_already(cfg: &Config, vault: &Vault) -> Result<Option<u64>> {
    let r = &cfg.reference;
    if cfg.vault.kv_version == KvVersion::V1 {
        return Ok(None);
    }
    match vault.kv2_read(&cfg.vault.mount, &r.path, None).await? {
        Kv2Read::Present {
            version,
            custom_metadata,
            ..
        } => Ok(Provenance::from_metadata(&custom_metadata)
            .filter(|p| {
                p.owner.is_none()
                    && p.source == format!("{}/{}", r.namespace, r.name)
                    && p.source_uid == r.uid
            })
            .map(|_| version)),
        _ => Ok(None),
    }
}
