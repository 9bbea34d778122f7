//! unseal: reads the stored material and submits key shares until Vault reports unsealed.

use std::path::PathBuf;

use super::{has_material, open, KeyType, Material, Store};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::plan::{Action, PlanItem};
use crate::vault::sys::UnsealStep;
use crate::vault::Vault;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: Store,
    pub identity_file: Option<PathBuf>,
    /// A copy of the material (age ciphertext) to read instead of the Secret.
    pub material_file: Option<PathBuf>,
    /// `--dry-run`: the material is read and opened, no share is submitted.
    pub dry_run: crate::plan::DryRun,
}

pub async fn run(cfg: &Config, cx: &Ctx<'_>) -> Result<Exit> {
    let object = cfg.store.object();
    if !cx.vault.initialized().await? {
        return Err(Error::Unavailable(
            "Vault is not initialised yet (run init-authority)".into(),
        ));
    }
    let outcome = if !cx.vault.seal_status().await?.sealed {
        "already-unsealed"
    } else {
        let (m, object) = match &cfg.material_file {
            Some(f) => (
                super::copy::read_copy(f, cfg.identity_file.as_ref())?,
                format!("file {}", f.display()),
            ),
            None => {
                let s = cx
                    .kube
                    .get_secret(&cfg.store.namespace, &cfg.store.name)
                    .await?
                    .filter(has_material)
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "{object} holds no unseal material yet (init-authority stores it)"
                        ))
                    })?;
                (open(&s, cfg.identity_file.as_ref())?, object.clone())
            }
        };
        if m.key_type == KeyType::Recovery {
            return Err(Error::Unavailable(
                "Vault uses auto-unseal: it unseals itself; the stored recovery keys cannot unseal it"
                    .into(),
            ));
        }
        let plan = || {
            PlanItem::new(Action::WouldUnseal, "Vault").because(format!(
                "submit the stored key shares from {object} until unsealed (threshold {} of {})",
                m.threshold,
                m.keys.len()
            ))
        };
        cfg.dry_run
            .gate(plan, (), submit(cx.vault, &m, &object))
            .await?;
        if cfg.dry_run.active() {
            "would-unseal"
        } else {
            "unsealed"
        }
    };
    let mut ev = cx.audit.event("unseal", outcome, None, None, None);
    ev.details = Some(serde_json::json!({
        "secret": { "namespace": cfg.store.namespace, "name": cfg.store.name },
    }));
    cx.audit.emit(&ev);
    cx.outputs.write("outcome", outcome)?;
    Ok(Exit::Done)
}

/// Submits shares one at a time until Vault is unsealed. A share Vault refuses, or all
/// shares without unsealing, means the stored keys are not this Vault's.
pub(crate) async fn submit(vault: &Vault, m: &Material, object: &str) -> Result<()> {
    if vault.seal_status().await?.progress > 0 {
        // Someone's partial attempt would mix with our shares.
        vault.unseal_reset().await;
    }
    for (i, key) in m.keys.iter().enumerate() {
        match vault.unseal_with(key).await? {
            UnsealStep::AlreadyUnsealed => return Ok(()),
            UnsealStep::Status(s) if !s.sealed => {
                tracing::info!(shares = i + 1, "Vault is unsealed");
                return Ok(());
            }
            UnsealStep::Status(_) => {}
            UnsealStep::Refused(why) => {
                return Err(Error::precondition(
                    object,
                    format!("Vault refused stored key share {} ({why})", i + 1),
                    "the stored keys do not belong to this Vault: check --secret-namespace/--secret-name and VAULT_ADDR",
                ))
            }
        }
    }
    Err(Error::precondition(
        object,
        format!(
            "Vault is still sealed after all {} stored key shares",
            m.keys.len()
        ),
        "the stored keys do not belong to this Vault: check the Secret and VAULT_ADDR",
    ))
}
