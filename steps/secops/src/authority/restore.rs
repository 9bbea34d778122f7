//! init-authority `--restore-from`: re-establishes the runtime authority on an uninitialised
//! Vault from a raft snapshot (RFC 5.7, cluster loss with Vault inside the cluster).
//!
//! 1. The snapshot's checksums and the ORIGINAL material (decrypted) are checked before
//!    anything is contacted.
//! 2. Vault is initialised with throwaway keys: as many shares and the same threshold as the
//!    material, so the seal configuration it keeps in memory fits the original keys (with
//!    another shape OpenBao 2.7 refuses them until its process restarts). The throwaway
//!    keys and root token live only in this process.
//! 3. `snapshot-force` installs the snapshot; Vault then seals itself, and from now on only
//!    the original keys open it. The throwaway root token went with the old token store.
//! 4. The original material unseals it: the check that snapshot and material belong
//!    together (exit 3 when they do not).
//! 5. A root token generated from the original shares re-establishes the declared grants
//!    (the Kubernetes auth method now points at this cluster), the authority role is
//!    verified, and that root token is revoked.
//!
//! A re-run finds Vault initialised: it unseals it with the material when sealed, and is a
//! no-op when the authority role logs in and the KV mount answers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::init::{verify, wait_active, Config};
use super::unseal::submit;
use super::{has_material, open, KeyType, Material};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kube::Kube;
use crate::plan::{Action, PlanItem};
use crate::vault::raft::GenerateRoot;
use crate::vault::sys::InitRequest;
use crate::vault::Vault;

#[derive(Debug, Clone)]
pub struct Restore {
    pub snapshot: PathBuf,
    /// The original material's copy; else the unseal Secret's.
    pub material_file: Option<PathBuf>,
    pub identity_file: Option<PathBuf>,
}

pub async fn run(cfg: &Config, r: &Restore, cx: &Ctx<'_>) -> Result<Exit> {
    let started = Instant::now();
    let snapshot = std::fs::read(&r.snapshot).map_err(|e| {
        Error::Usage(format!(
            "cannot read --restore-from {}: {e}",
            r.snapshot.display()
        ))
    })?;
    let checked = crate::snapshot::verify::verify(&snapshot).map_err(|e| {
        Error::Usage(format!(
            "--restore-from {}: the snapshot {e}; choose an intact snapshot",
            r.snapshot.display()
        ))
    })?;
    let sha256 = crate::snapshot::verify::sha256_hex(&snapshot);
    let (material, source) = material(cfg, r, cx.kube).await?;
    if material.key_type != KeyType::Shamir {
        return Err(Error::Usage(
            "--restore-from needs Shamir unseal keys; a Vault that auto-unseals restores with \
             `bao operator raft snapshot restore -force` and its own seal"
                .into(),
        ));
    }
    let what = format!("snapshot {} (sha256 {sha256})", r.snapshot.display());
    if cfg.dry_run.active() {
        return plan(cfg, r, cx, &what, &source).await;
    }
    let mut outcome = "already-restored";
    if !cx.vault.initialized().await? {
        restore_into_fresh(cfg, cx.vault, &material, snapshot).await?;
        outcome = "restored";
    }
    if cx.vault.seal_status().await?.sealed {
        submit(cx.vault, &material, &source)
            .await
            .map_err(|e| not_together(&what, &source, e))?;
        tracing::info!(%source, "the original material unseals the restored Vault");
    }
    wait_active(cx.vault, cfg.unseal_timeout).await?;
    let mut report = None;
    let mut revoked = None;
    if outcome == "restored" || verify(cfg, cx.vault).await.is_err() {
        let (rep, rev) = re_establish(cfg, cx.vault, &material, &what, &source).await?;
        report = Some(rep);
        revoked = Some(rev);
        outcome = "restored";
    }
    drop(material);
    let result = serde_json::json!({
        "outcome": outcome,
        "snapshot": { "file": r.snapshot.display().to_string(), "sha256": sha256, "checked": checked.checked },
        "material": source,
        "report": report,
        "rootTokenRevoked": revoked,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let mut ev = cx.audit.event("restore", outcome, None, None, None);
    ev.details = Some(result.clone());
    cx.audit.emit(&ev);
    cx.outputs.write("outcome", outcome)?;
    cx.outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}

/// The original material: the copy in `--material-file`, else the unseal Secret's.
async fn material(cfg: &Config, r: &Restore, kube: &Kube) -> Result<(Material, String)> {
    if let Some(f) = &r.material_file {
        let m = super::copy::read_copy(f, r.identity_file.as_ref())?;
        return Ok((m, format!("file {}", f.display())));
    }
    let object = cfg.store.object();
    let s = kube
        .get_secret(&cfg.store.namespace, &cfg.store.name)
        .await?
        .filter(has_material)
        .ok_or_else(|| {
            Error::precondition(
                &object,
                "holds no unseal material, and --material-file was not given: a restore needs \
                 the material of the Vault the snapshot was taken from",
                "recreate the Secret from the material copy in Git, or pass --material-file",
            )
        })?;
    Ok((open(&s, r.identity_file.as_ref())?, object))
}

/// Steps 2 and 3: throwaway init and unseal, then the forced restore.
async fn restore_into_fresh(
    cfg: &Config,
    vault: &Vault,
    m: &Material,
    snapshot: Vec<u8>,
) -> Result<()> {
    let shares = m.keys.len() as u8;
    let request = InitRequest {
        secret_shares: Some(shares),
        secret_threshold: Some(m.threshold),
        recovery_shares: None,
        recovery_threshold: None,
    };
    let Some(answer) = vault.init(&request).await? else {
        return Err(Error::precondition(
            "Vault",
            "was initialised by someone else while this step prepared the restore",
            "wipe Vault's storage if that was not a restore, then run again",
        ));
    };
    let keys = if answer.keys_base64.is_empty() {
        answer.keys.clone()
    } else {
        answer.keys_base64.clone()
    };
    let throwaway_root = vault.with_token(answer.root_token.clone());
    drop(answer);
    let throwaway = Material {
        key_type: KeyType::Shamir,
        threshold: m.threshold,
        keys,
    };
    submit(vault, &throwaway, "Vault (throwaway keys)").await?;
    drop(throwaway);
    wait_active(vault, cfg.unseal_timeout).await?;
    tracing::info!("initialised with throwaway keys; installing the snapshot");
    throwaway_root.raft_restore_force(snapshot).await?;
    // The restored token store does not know the throwaway root token: it is gone; and
    // the throwaway keys open nothing any more. Both are forgotten here.
    drop(throwaway_root);
    // Vault seals itself once it has loaded the snapshot's keyring (seconds; longer on a
    // loaded node).
    let deadline = Instant::now() + cfg.unseal_timeout;
    while !vault.seal_status().await?.sealed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!("snapshot installed; throwaway keys and root token forgotten");
    Ok(())
}

/// Step 5: a root token from the original shares, the declared grants, the authority role
/// verified, the root token revoked. Returns the grants' report and whether it was revoked.
async fn re_establish(
    cfg: &Config,
    vault: &Vault,
    m: &Material,
    what: &str,
    source: &str,
) -> Result<(super::establish::Report, bool)> {
    let take = (m.threshold as usize).min(m.keys.len());
    let root = match vault.generate_root(&m.keys[..take]).await? {
        GenerateRoot::Token(t) => t,
        GenerateRoot::Refused(why) => {
            return Err(not_together(
                what,
                source,
                Error::Refused(format!(
                    "Vault refused a root generation with its shares ({why})"
                )),
            ))
        }
    };
    debug_assert!(!root.expose_secret().is_empty());
    let root_vault = vault.with_token(root);
    let established = match cfg.grants.establish(&root_vault).await {
        Ok(report) => verify(cfg, vault).await.map(|()| report),
        Err(e) => Err(e),
    };
    let revoked = root_vault.revoke_self().await.unwrap_or(false);
    drop(root_vault);
    if !revoked {
        tracing::warn!(
            "Vault did not revoke the generated root token; it was never stored or printed"
        );
    }
    Ok((established?, revoked))
}

fn not_together(what: &str, source: &str, e: Error) -> Error {
    match e {
        Error::Precondition { reason, .. } => Error::precondition(
            what,
            format!(
                "{source} does not open the Vault restored from it ({reason}): the snapshot and \
                 the material do not belong together (or an earlier restore stopped between its \
                 throwaway init and the snapshot)"
            ),
            "wipe Vault's storage, then run again with a snapshot and the material of the same Vault",
        ),
        Error::Refused(reason) => Error::precondition(
            what,
            format!("{source} does not open the Vault restored from it ({reason}): the snapshot and the material do not belong together"),
            "wipe Vault's storage, then run again with a snapshot and the material of the same Vault",
        ),
        other => other,
    }
}

/// `--dry-run`: the checks above ran; what a real run would do next.
async fn plan(cfg: &Config, r: &Restore, cx: &Ctx<'_>, what: &str, source: &str) -> Result<Exit> {
    let dry = &cfg.dry_run;
    let fresh = !cx.vault.initialized().await?;
    if fresh {
        dry.record(PlanItem::new(Action::WouldInit, "Vault").because(format!(
            "throwaway keys, then install {what} with snapshot-force"
        )));
    }
    dry.record(
        PlanItem::new(Action::WouldUnseal, "Vault")
            .because(format!("with the original material from {source}")),
    );
    dry.record(
        PlanItem::new(Action::WouldEstablish, "Vault")
            .because("with a root token generated from the original shares, revoked after"),
    );
    let result = serde_json::json!({
        "outcome": "would-restore",
        "snapshot": { "file": r.snapshot.display().to_string() },
        "material": source,
        "dryRun": true,
    });
    let mut ev = cx.audit.event("restore", "would-restore", None, None, None);
    ev.details = Some(result.clone());
    cx.audit.emit(&ev);
    cx.outputs.write("outcome", "would-restore")?;
    cx.outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}
