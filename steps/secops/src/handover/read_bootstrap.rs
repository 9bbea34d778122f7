//! read-bootstrap: find the bootstrap Secrets to hand over and emit references. Read-only.

use std::collections::BTreeMap;

use serde::Serialize;

use super::check_mode_holds;
use super::resurrection::{git_still_holds, inert_restored};
use super::{check_eligible, is_bootstrap, is_consumed, target_path};
use crate::audit::Auditor;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::gitops::{GitOrigin, OwnerKinds};
use crate::handover::mark_consumed::Mode;
use crate::kube::{BootstrapSecret, Kube};
use crate::outputs::Outputs;
use crate::paths::PathPolicy;
use crate::reference::SecretRef;
use crate::selection::Selection;
use crate::vocab::*;

#[derive(Debug, Clone)]
pub struct Config {
    pub selection: Selection,
    pub paths: PathPolicy,
    /// References per item of `batches.json` (the batch template's fan-out).
    pub batch_size: usize,
    /// Exit 3 on a refusal in discovery (a single Secret's refusal is its error either way).
    pub fail_on_refused: bool,
    /// Reads only either way; a dry run adds the plan (select, skip, refuse).
    pub dry_run: crate::plan::DryRun,
    /// Owner kinds that deliver from Git (`--gitops-owner-kinds`).
    pub owner_kinds: OwnerKinds,
    /// The chain's consume mode (`--consume-mode`): a Secret it cannot hold for (a
    /// controller-owned one in delete or inert mode) is refused here, before any write.
    pub consume_mode: Option<Mode>,
}

/// A selected Secret's Git origin (`origins.json`): which manifest a pull request removes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub namespace: String,
    pub name: String,
    pub git_origin: GitOrigin,
    /// Consumed inert before and its data is back: Git still holds the manifest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resurrected: bool,
}

/// A Secret that was not turned into a reference, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

enum Verdict {
    Selected(Box<(SecretRef, Origin)>),
    Skipped(String),
    Refused(Error),
}

fn judge(s: &BootstrapSecret, cfg: &Config) -> Verdict {
    if !is_bootstrap(s) {
        return Verdict::Refused(Error::precondition(
            s.object(),
            format!("is not labeled {}", bootstrap_selector()),
            "only explicitly labeled bootstrap Secrets are handed over; label it if it is one",
        ));
    }
    // A delete-mode handover stopped between marking and deleting is selected again, so
    // the chain finishes the delete (write-vault reports it unchanged).
    // An inert Secret whose data GitOps wrote back is selected too, to be blanked again.
    let resurrected = inert_restored(s);
    if is_consumed(s) && s.annotation(ANN_CONSUMED_MODE) != Some("delete") && !resurrected {
        return Verdict::Skipped("already consumed".into());
    }
    let owner = match check_eligible(s, &cfg.owner_kinds) {
        Ok(owner) => owner,
        Err(e) => return Verdict::Refused(e),
    };
    if let (Some(o), Some(mode)) = (&owner, cfg.consume_mode) {
        if let Err(e) = check_mode_holds(s, o, mode) {
            return Verdict::Refused(e);
        }
    }
    if s.data.is_empty() {
        return Verdict::Refused(Error::precondition(
            s.object(),
            "has no data to hand over",
            "add its data in its GitOps source, then re-run the handover workflow",
        ));
    }
    let origin = Origin {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        git_origin: GitOrigin::of(s, owner.as_ref()),
        resurrected,
    };
    match target_path(s, &cfg.paths) {
        Ok(path) => Verdict::Selected(Box::new((
            SecretRef {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                uid: s.uid.clone(),
                resource_version: s.resource_version.clone(),
                path,
                keys: s.data.keys().map(str::to_owned).collect(),
            },
            origin,
        ))),
        Err(e) => Verdict::Refused(e),
    }
}

/// Discovery's running tally: references (no values) kept, refusals reported as they come.
#[derive(Default)]
struct Tally {
    selected: Vec<SecretRef>,
    origins: Vec<Origin>,
    refused: Vec<Refusal>,
    skipped: Vec<Refusal>,
    single_error: Option<Error>,
}

impl Tally {
    /// Judges one Secret and drops it: its values never outlive this call.
    fn judge(&mut self, s: BootstrapSecret, cfg: &Config, audit: &Auditor) {
        match judge(&s, cfg) {
            Verdict::Selected(selected) => {
                let (r, origin) = *selected;
                if origin.resurrected {
                    tracing::warn!(object = %s.object(), "{}", git_still_holds(&origin.git_origin));
                }
                if !origin.git_origin.is_empty() || origin.resurrected {
                    self.origins.push(origin);
                }
                self.selected.push(r)
            }
            Verdict::Skipped(reason) => {
                audit.emit(&audit.event(
                    "discover",
                    "skipped",
                    Some(s.identity()),
                    None,
                    Some(reason.clone()),
                ));
                self.skipped.push(Refusal {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    reason,
                });
            }
            Verdict::Refused(e) => {
                audit.emit(&audit.event(
                    "discover",
                    e.outcome(),
                    Some(s.identity()),
                    None,
                    Some(e.to_string()),
                ));
                self.refused.push(Refusal {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    reason: e.to_string(),
                });
                self.single_error = Some(e);
            }
        }
    }
}

pub async fn run(cfg: &Config, kube: &Kube, audit: &Auditor, outputs: &Outputs) -> Result<Exit> {
    cfg.selection.validate()?;
    let mut tally = Tally::default();
    // One LIST page (at most `batch::PAGE` Secrets with their values) is held at a time;
    // each Secret is judged and dropped before the next page is fetched, so 10,000
    // candidates cost 10,000 references, not 10,000 Secrets' values.
    cfg.selection
        .for_each_page(kube, &bootstrap_selector(), |page| {
            for s in page {
                tally.judge(s, cfg, audit);
            }
        })
        .await?;
    let Tally {
        selected,
        origins,
        mut refused,
        skipped,
        mut single_error,
    } = tally;

    // Two Secrets must never race for one Vault path: refuse all of them.
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    for r in &selected {
        *by_path.entry(r.path.to_string()).or_default() += 1;
    }
    let (ok, clashing): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|r| by_path.get(r.path.as_str()) == Some(&1));
    for r in clashing {
        let e = Error::precondition(
            r.object(),
            format!(
                "another bootstrap Secret maps to the same Vault path {}",
                r.path
            ),
            "give each Secret its own path with the secops.io/vault-path annotation",
        );
        audit.emit(&audit.event(
            "discover",
            e.outcome(),
            Some(r.identity()),
            None,
            Some(e.to_string()),
        ));
        refused.push(Refusal {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            reason: e.to_string(),
        });
        single_error = Some(e);
    }
    for r in &ok {
        audit.emit(&audit.event("discover", "selected", Some(r.identity()), None, None));
    }

    outputs.write_json("references.json", &ok)?;
    let batches: Vec<&[SecretRef]> = ok.chunks(cfg.batch_size.max(1)).collect();
    outputs.write_json("batches.json", &batches)?;
    // The namespaces with something to hand over, for the batch template's fan-out: the
    // Workflow object then holds namespace names, not references (etcd's 1.5 MiB limit).
    let namespaces: std::collections::BTreeSet<&str> =
        ok.iter().map(|r| r.namespace.as_str()).collect();
    outputs.write_json("namespaces.json", &namespaces)?;
    outputs.write("count", &ok.len().to_string())?;
    outputs.write_json("refused.json", &refused)?;
    // Origins of the selected Secrets only (a clashing one was refused above).
    let origins: Vec<&Origin> = origins
        .iter()
        .filter(|o| {
            refused
                .iter()
                .all(|r| r.namespace != o.namespace || r.name != o.name)
        })
        .collect();
    outputs.write_json("origins.json", &origins)?;
    outputs.write_json("skipped.json", &skipped)?;
    tracing::info!(
        selected = ok.len(),
        skipped = skipped.len(),
        refused = refused.len(),
        "discovery done"
    );

    match (cfg.selection.single.is_some(), single_error) {
        (true, Some(e)) => Err(e),
        (false, Some(_)) if cfg.fail_on_refused => Ok(Exit::Precondition),
        (false, Some(_)) => Ok(Exit::Done),
        (_, None) => Ok(Exit::Done),
    }
}
