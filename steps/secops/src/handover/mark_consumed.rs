//! mark-consumed: acknowledge the handover by reading Vault back, then mark the bootstrap
//! Secret consumed (delete, inert or ignore).

use std::collections::BTreeMap;

use base64::Engine as _;
use clap::ValueEnum;
use serde::Serialize;

use super::{check_matches_reference, is_bootstrap, is_consumed, report_failure, target};
use crate::audit::{Auditor, Workflow};
use crate::batch::Fetch;
use crate::cli::{KvVersion, VaultTarget};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::fleet::{self, ClusterName, Relation};
use crate::gitops::{GitOrigin, OwnerKinds, FLUX_RECONCILE, FLUX_RECONCILE_DISABLED};
use crate::kube::{BootstrapSecret, Kube};
use crate::paths::PathPolicy;
use crate::plan::{Action, DryRun, PlanItem};
use crate::provenance::Provenance;
use crate::reference::SecretRef;
use crate::variant_name::variant_name as outcome_name;
use crate::vault::{Kv2Read, Vault};
use crate::vocab::*;

use super::resurrection::{self, git_still_holds};

/// RFC 5.4: the bootstrap Secret is deleted, rendered inert, or ignored by all consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Delete it (uid and resourceVersion preconditions).
    Delete,
    /// Blank its values, keep the object and its annotations as a tombstone.
    Inert,
    /// Label and annotate only.
    Ignore,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Delete => "delete",
            Mode::Inert => "inert",
            Mode::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub reference: SecretRef,
    /// The version write-vault reported; latest when absent. Ignored on KV v1.
    pub vault_version: Option<u64>,
    pub mode: Mode,
    pub vault: VaultTarget,
    pub paths: PathPolicy,
    /// Owner kinds that deliver from Git (`--gitops-owner-kinds`).
    pub owner_kinds: OwnerKinds,
    pub workflow: Workflow,
    /// The cluster this runs in (`--cluster-name`), judged by the conflict rule.
    pub cluster: ClusterName,
    /// `--fleet-vault-authoritative`: another cluster's other data is Vault's to keep.
    pub fleet_vault_authoritative: bool,
    /// `--dry-run`: every write below goes through its gate.
    pub dry_run: DryRun,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Marked now.
    Consumed,
    /// Marked now although Vault holds other data for this Secret's handover (rotated since; the
    /// Secret was re-created from Git): Vault is authoritative and was not written.
    ConsumedVaultDiffers,
    /// Was already marked (or already deleted).
    Unchanged,
    /// `--dry-run`: a real run would mark it now; nothing was changed.
    WouldConsume,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkResult {
    pub outcome: Outcome,
    pub mode: Mode,
    pub path: String,
    pub version: u64,
    /// Where in Git the Secret comes from (references only), when its controller says: the
    /// manifest a pull request removes once the handover is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_origin: Option<GitOrigin>,
    /// GitOps put it back after its handover; it was consumed again without any Vault
    /// write, and Git still holds its manifest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resurrected: bool,
}

/// One reference: acknowledge, mark, report, and write the output parameters.
pub async fn run(cfg: &Config, cx: &Ctx<'_>) -> Result<Exit> {
    let outputs = cx.outputs;
    let res = handle(cfg, cx, Fetch::Get).await?;
    outputs.write("outcome", outcome_name(&res.outcome))?;
    outputs.write_json("result.json", &res)?;
    Ok(Exit::Done)
}

/// Marks one reference and reports it (audit event, Kubernetes Event); no output files.
pub async fn handle(cfg: &Config, cx: &Ctx<'_>, fetch: Fetch) -> Result<MarkResult> {
    let Ctx {
        kube, vault, audit, ..
    } = *cx;
    let r = &cfg.reference;
    let mount = &cfg.vault.mount;
    let res = match mark(cfg, kube, vault, audit, fetch).await {
        Ok(res) if cfg.dry_run.active() && res.outcome != Outcome::Unchanged => MarkResult {
            outcome: Outcome::WouldConsume,
            ..res
        },
        Ok(res) => res,
        Err(e) => {
            let t = target(mount, &r.path, cfg.vault_version);
            report_failure(audit, kube, "consume", "ConsumeRefused", r, t, &e).await;
            return Err(e);
        }
    };
    let outcome = outcome_name(&res.outcome);
    let again = (res.resurrected && res.outcome == Outcome::Consumed)
        .then(|| git_still_holds(res.git_origin.as_ref().unwrap_or(&GitOrigin::default())));
    let reason = (res.outcome == Outcome::ConsumedVaultDiffers).then(|| {
        format!(
            "Vault {mount}/{} version {} holds other data than this bootstrap Secret (rotated \
                 since it was written to Git); Vault is authoritative and was not written; if the \
                 Git value is the one wanted, rotate it in Vault and update Git to match",
            r.path, res.version
        )
    });
    audit.emit(
        &audit.event(
            "consume",
            outcome,
            Some(r.identity()),
            Some(target(
                mount,
                &r.path,
                (res.version > 0).then_some(res.version),
            )),
            reason
                .clone()
                .or_else(|| {
                    again
                        .as_ref()
                        .map(|a| format!("mode {}; {a}", cfg.mode.as_str()))
                })
                .or_else(|| Some(format!("mode {}", cfg.mode.as_str()))),
        ),
    );
    if res.outcome != Outcome::Unchanged {
        let message = format!(
            "consumed ({}) after Vault acknowledged {mount}/{} version {}, by {}{}",
            cfg.mode.as_str(),
            r.path,
            res.version,
            cfg.workflow.label(),
            reason
                .or(again)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        kube.event(
            &r.identity(),
            res.outcome == Outcome::ConsumedVaultDiffers,
            "Consumed",
            &message,
        )
        .await;
    }
    Ok(res)
}

async fn mark(
    cfg: &Config,
    kube: &Kube,
    vault: &Vault,
    audit: &Auditor,
    fetch: Fetch,
) -> Result<MarkResult> {
    let r = &cfg.reference;
    let result = |outcome, version| MarkResult {
        outcome,
        mode: cfg.mode,
        path: r.path.to_string(),
        version,
        git_origin: None,
        resurrected: false,
    };
    let Some(s) = fetch.secret(kube, r).await? else {
        if cfg.mode == Mode::Delete {
            // Deleted by an earlier run of this step (it deletes only after the acknowledgement).
            return Ok(result(Outcome::Unchanged, cfg.vault_version.unwrap_or(0)));
        }
        return Err(Error::precondition(
            r.object(),
            "no longer exists",
            "nothing to mark; check who deleted it (its Events show the handover history)",
        ));
    };
    check_matches_reference(&s, r, &cfg.paths)?;
    // A controller that rewrites the Secret (a SealedSecret) lets only some modes hold;
    // refused before anything is written (read-bootstrap refuses it first).
    let owner = crate::gitops::delivering_owner(&s, &cfg.owner_kinds)?;
    if let Some(o) = owner {
        super::check_mode_holds(&s, o, cfg.mode)?;
    }
    let origin = Some(GitOrigin::of(&s, owner)).filter(|o| !o.is_empty());
    let result = |outcome, version| MarkResult {
        git_origin: origin.clone(),
        ..result(outcome, version)
    };
    if is_consumed(&s) && resurrection::inert_restored(&s) {
        // Consumed inert, and GitOps wrote its data back: acknowledge again and blank it
        // again (no Vault write); the Flux annotation keeps Flux from doing it once more.
        let (version, _, _) = acknowledge(cfg, vault, &s).await?;
        let patch = serde_json::json!({
            "metadata": { "annotations": { FLUX_RECONCILE: FLUX_RECONCILE_DISABLED } },
            "data": tombstone(&s),
        });
        let plan = || would_consume(cfg, &s, version, "its data came back: blank it again");
        let patch = kube.patch_secret(&s.namespace, &s.name, &s.resource_version, patch);
        cfg.dry_run.gate(plan, String::new(), patch).await?;
        return Ok(MarkResult {
            resurrected: true,
            ..result(Outcome::Consumed, version)
        });
    }
    if is_consumed(&s) {
        if s.annotation(ANN_VAULT_PATH) != Some(r.path.as_str()) {
            return Err(Error::precondition(
                s.object(),
                "is already consumed for another Vault path",
                "a consumed Secret is never handed over again: inspect its secops.io annotations",
            ));
        }
        let version = s
            .annotation(ANN_VAULT_VERSION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if cfg.mode == Mode::Delete {
            // Marked by a run that stopped before deleting (or is deleting right now):
            // finish the job. The consumption itself was that run's, so this one reports
            // `unchanged`, and a race has one winner.
            audit_deleting(cfg, audit, version);
            let plan =
                || would_consume(cfg, &s, version, "finish the delete an earlier run marked");
            let delete = kube.delete_secret(&s.namespace, &s.name, &s.uid, &s.resource_version);
            cfg.dry_run.gate(plan, true, delete).await?;
        }
        return Ok(result(Outcome::Unchanged, version));
    }
    if !is_bootstrap(&s) {
        return Err(Error::precondition(
            s.object(),
            format!("is not labeled {}", bootstrap_selector()),
            "only bootstrap Secrets are marked consumed: label it in Git if it is one, else \
             remove it from the references",
        ));
    }
    if cfg.mode == Mode::Inert && s.immutable {
        return Err(Error::precondition(
            s.object(),
            "is immutable, so its data cannot be blanked",
            "use --mode delete or --mode ignore for immutable Secrets",
        ));
    }
    let (version, vault_differs, resurrected) = acknowledge(cfg, vault, &s).await?;
    let result = |outcome, version| MarkResult {
        resurrected,
        ..result(outcome, version)
    };
    let consumed = if vault_differs {
        Outcome::ConsumedVaultDiffers
    } else {
        Outcome::Consumed
    };
    if cfg.mode == Mode::Delete {
        // Marks on an object deleted a moment later would be seen by no one: delete the
        // exact state that was compared (uid + resourceVersion). The audit line goes first,
        // so a run killed after the irreversible delete still leaves a trail that matches;
        // a delete that finds the Secret gone lost a race (or repeats ours): `unchanged`.
        audit_deleting(cfg, audit, version);
        let plan = || {
            would_consume(
                cfg,
                &s,
                version,
                "mode delete: delete it (uid and resourceVersion preconditions)",
            )
        };
        let delete = kube.delete_secret(&s.namespace, &s.name, &s.uid, &s.resource_version);
        let deleted = cfg.dry_run.gate(plan, true, delete).await?;
        return Ok(result(
            if deleted {
                consumed
            } else {
                Outcome::Unchanged
            },
            version,
        ));
    }

    let mut annotations = BTreeMap::from([
        (ANN_CONSUMED_AT, jiff::Timestamp::now().to_string()),
        (ANN_CONSUMED_BY, cfg.workflow.label()),
        (ANN_CONSUMED_MODE, cfg.mode.as_str().to_owned()),
        (ANN_VAULT_PATH, r.path.to_string()),
        (ANN_VAULT_VERSION, version.to_string()),
        // Flux neither re-applies nor prunes an object with this: what is kept stays as
        // consumed (Argo CD: see the shipped ignoreDifferences example).
        (FLUX_RECONCILE, FLUX_RECONCILE_DISABLED.to_owned()),
    ]);
    if vault_differs {
        annotations.insert(
            ANN_CONSUMED_NOTE,
            "vault-differs: Vault already held other data for this path and is authoritative"
                .into(),
        );
    }
    let mut patch = serde_json::json!({
        "metadata": {
            "labels": { LABEL_STATE: STATE_CONSUMED },
            "annotations": annotations,
        }
    });
    if cfg.mode == Mode::Inert {
        patch["data"] = tombstone(&s);
    }
    let why = match cfg.mode {
        Mode::Inert => "mode inert: label consumed, annotate, blank its data",
        _ => "mode ignore: label consumed and annotate",
    };
    let plan = || would_consume(cfg, &s, version, why);
    let patch = kube.patch_secret(&s.namespace, &s.name, &s.resource_version, patch);
    cfg.dry_run.gate(plan, String::new(), patch).await?;
    Ok(result(consumed, version))
}

fn would_consume(cfg: &Config, s: &BootstrapSecret, version: u64, why: &str) -> PlanItem {
    PlanItem::new(Action::WouldConsume, s.object())
        .at(&cfg.vault.mount, &cfg.reference.path)
        .version(Some(version))
        .because(why)
}

/// Recorded before the irreversible delete: a run that dies (or loses the answer) during it
/// still leaves an audit trail that matches the final state, which no re-run could report.
fn audit_deleting(cfg: &Config, audit: &Auditor, version: u64) {
    let r = &cfg.reference;
    audit.emit(&audit.event(
        "consume",
        if cfg.dry_run.active() {
            "would-delete"
        } else {
            "deleting"
        },
        Some(r.identity()),
        Some(target(&cfg.vault.mount, &r.path, Some(version))),
        Some(format!(
            "mode delete; marked consumed after Vault acknowledged version {version}"
        )),
    ));
}

/// RFC 5.4 "Acknowledge write": Vault holds exactly the bootstrap data. Returns the version,
/// whether Vault differs but is authoritative (the Secret was re-created), and whether the
/// Secret is one GitOps put back after its handover ([`resurrection`]).
async fn acknowledge(
    cfg: &Config,
    vault: &Vault,
    s: &BootstrapSecret,
) -> Result<(u64, bool, bool)> {
    let (mount, path) = (&cfg.vault.mount, &cfg.reference.path);
    let object = format!("Vault path {mount}/{path}");
    let mine = s.data.to_vault();
    let not_acked = |why: String| {
        Error::precondition(
            s.object(),
            format!("not marked: {why}"),
            "the handover is not acknowledged; re-run write-vault, or inspect the Vault path",
        )
    };
    if cfg.vault.kv_version == KvVersion::V1 {
        return match vault.kv1_read(mount, path).await? {
            Some(d) if d.same_values(&mine) => Ok((0, false, false)),
            Some(_) => Err(not_acked(format!("{object} holds other data"))),
            None => Err(not_acked(format!("{object} is empty"))),
        };
    }
    match vault.kv2_read(mount, path, cfg.vault_version).await? {
        Kv2Read::Present {
            version,
            data,
            foreign_shape,
            custom_metadata,
        } => {
            if !foreign_shape && data.same_values(&mine) {
                let again = Provenance::from_metadata(&custom_metadata)
                    .is_some_and(|p| resurrection::resurrected(&p, s, true, &cfg.cluster));
                return Ok((version, false, again));
            }
            // A handover of this Secret (this uid or an earlier one of the same name) whose
            // data Vault has since replaced (rotated): Vault is authoritative, the Secret is
            // consumed without any Vault write, unless the conflict rule says another
            // cluster's value is at the path (then nothing is consumed: its value survives).
            // A path push-secret owns never is.
            let handed_over = Provenance::from_metadata(&custom_metadata)
                .filter(|p| p.owner.is_none() && p.source == format!("{}/{}", s.namespace, s.name));
            let Some(p) = handed_over else {
                return Err(not_acked(format!(
                    "{object} version {version} does not hold this Secret's data"
                )));
            };
            let relation = Relation::of(&custom_metadata, &cfg.cluster);
            let same_uid = p.source_uid == s.uid;
            match fleet::judge(&relation, false, same_uid, cfg.fleet_vault_authoritative) {
                Ok(_) => Ok((version, true, false)),
                Err(source) => {
                    let shown = format!("{mount}/{path}");
                    let cluster = &cfg.cluster;
                    let e =
                        fleet::conflict(s.object(), &shown, version, source.as_deref(), cluster);
                    tracing::warn!(object = %s.object(), %cluster, "{e}");
                    Err(e)
                }
            }
        }
        Kv2Read::Deleted { version, .. } => {
            Err(not_acked(format!("{object} version {version} is deleted")))
        }
        // A dry-run chain's write-vault wrote nothing: plan the consumption that follows
        // its planned write (version 1, or the version it reported) instead of refusing.
        Kv2Read::Missing if cfg.dry_run.active() => {
            let version = cfg.vault_version.unwrap_or(1);
            let why = format!("after write-vault writes it ({object} holds no version yet; without that write the real run refuses with exit 3)");
            cfg.dry_run.record(would_consume(cfg, s, version, &why));
            Ok((version, false, false))
        }
        Kv2Read::Missing => Err(not_acked(format!("{object} has no such version"))),
    }
}

/// Inert data ([`crate::inert`], the definition audit-authority judges by): `null` removes
/// all data, else every key with its placeholder.
fn tombstone(s: &BootstrapSecret) -> serde_json::Value {
    if !crate::inert::keeps_keys(&s.type_) {
        return serde_json::Value::Null;
    }
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let data: serde_json::Map<String, serde_json::Value> = s
        .data
        .keys()
        .map(|k| {
            let v = crate::inert::placeholder(&s.type_, k).unwrap_or_default();
            (k.to_owned(), b64(v).into())
        })
        .collect();
    serde_json::Value::Object(data)
}
