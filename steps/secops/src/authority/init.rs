//! init-authority: store before you forget.
//!
//! Vault answers `sys/init` with the keys exactly once. So everything that can fail is done
//! before asking: the Secret is created (create-only) as a `pending` placeholder and updated
//! once (proving this step may write it, and fixing the resourceVersion); the recipients
//! are parsed. After the answer the only work is encrypting and one resourceVersion-guarded
//! update, retried in-process until `store_timeout` because the keys exist nowhere else.
//! What stays impossible: if the process dies after Vault answered and before that update,
//! the keys are gone. A later run sees Vault initialised with a `pending` placeholder and
//! says so loudly (exit 3) instead of pretending.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::establish::Grants;
use super::{has_material, KeyType, Material, Protection, Store};
use crate::audit::Auditor;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kube::{BootstrapSecret, Kube};
use crate::outputs::Outputs;
use crate::plan::{Action, DryRun, PlanItem};
use crate::vault::sys::InitRequest;
use crate::vault::Vault;
use crate::vocab::*;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: Store,
    pub request: InitRequest,
    pub key_type: KeyType,
    pub protection: Protection,
    pub grants: Grants,
    /// How this step logs in as the authority role (its own ServiceAccount's token).
    pub authority_login: Option<crate::vault::VaultAuth>,
    /// How long to keep retrying the store after Vault answered.
    pub store_timeout: Duration,
    /// How long to wait for an auto-unseal Vault to unseal itself.
    pub unseal_timeout: Duration,
    /// `--dry-run`: every read and refusal as in a real run; the plan instead of
    /// placeholder, `sys/init`, store, unseal, grants and root-token revocation.
    pub dry_run: DryRun,
}

pub async fn run(cfg: &Config, cx: &Ctx<'_>, operator_token: Option<SecretString>) -> Result<Exit> {
    let object = cfg.store.object();
    let stored = cx
        .kube
        .get_secret(&cfg.store.namespace, &cfg.store.name)
        .await?;
    if cx.vault.initialized().await? {
        return already_initialized(cfg, cx, stored, operator_token).await;
    }
    // Never overwrite material: it belongs to some earlier Vault, and may be the only copy.
    if let Some(s) = stored.as_ref().filter(|s| has_material(s)) {
        return Err(Error::precondition(
            s.object(),
            "holds unseal material, but this Vault is uninitialised (its storage was wiped, \
             or it is another Vault)",
            "confirm the material is obsolete, move the Secret away (it is never overwritten), then run again",
        ));
    }
    cfg.protection.required()?;
    if cfg.dry_run.active() {
        return plan_init(cfg, stored.as_ref(), cx.audit, cx.outputs);
    }
    let rv = prepare_placeholder(cfg, cx.kube, cx.audit).await?;
    tracing::info!(%object, "placeholder ready; initialising Vault");
    let Some(answer) = cx.vault.init(&cfg.request).await? else {
        return Err(Error::precondition(
            "Vault",
            "was initialised by someone else while this step prepared",
            "run init-authority again: it reports whether unseal material was stored",
        ));
    };
    // From here until stored, the keys exist only in this process.
    let pick = |b64: &[SecretString], hex: &[SecretString]| {
        if b64.is_empty() {
            hex.to_vec()
        } else {
            b64.to_vec()
        }
    };
    let keys = match cfg.key_type {
        KeyType::Shamir => pick(&answer.keys_base64, &answer.keys),
        KeyType::Recovery => pick(&answer.recovery_keys_base64, &answer.recovery_keys),
    };
    let root = answer.root_token.clone();
    drop(answer);
    let material = Material {
        key_type: cfg.key_type,
        threshold: match cfg.key_type {
            KeyType::Shamir => cfg.request.secret_threshold.unwrap_or(1),
            KeyType::Recovery => cfg.request.recovery_threshold.unwrap_or(1),
        },
        keys,
    };
    if material.keys.is_empty() {
        return Err(Error::Internal(
            "Vault answered sys/init without keys of the requested kind".into(),
        ));
    }
    let rv = store(cfg, cx.kube, &material, rv, cx.audit).await?;
    // Stored. Now unseal (Shamir) or wait (auto-unseal), establish, revoke.
    match cfg.key_type {
        KeyType::Shamir => super::unseal::submit(cx.vault, &material, &object).await?,
        KeyType::Recovery => wait_unsealed(cx.vault, cfg.unseal_timeout).await?,
    }
    drop(material);
    wait_active(cx.vault, cfg.unseal_timeout).await?;
    let root_vault = cx.vault.with_token(root);
    let established = match cfg.grants.establish(&root_vault).await {
        Ok(report) => verify(cfg, cx.vault).await.map(|()| report),
        Err(e) => Err(e),
    };
    let revoked = root_vault.revoke_self().await.unwrap_or(false);
    drop(root_vault);
    if !revoked {
        tracing::warn!(
            "Vault did not revoke the root token; it was never stored or printed and is \
             forgotten when this process exits"
        );
    }
    let report = established?;
    let state = if cfg.grants.is_empty() {
        AUTHORITY_STORED
    } else {
        AUTHORITY_ESTABLISHED
    };
    if state == AUTHORITY_ESTABLISHED {
        mark(cx.kube, &cfg.store, &rv, AUTHORITY_ESTABLISHED).await?;
    }
    let result = serde_json::json!({
        "outcome": "initialized",
        "secret": { "namespace": cfg.store.namespace, "name": cfg.store.name },
        "keyType": cfg.key_type.as_str(),
        "encrypted": matches!(cfg.protection, Protection::Age(_)),
        "state": state,
        "established": cfg.grants.names(),
        "report": report,
        "rootTokenRevoked": revoked,
    });
    let mut ev = cx.audit.event("init", "initialized", None, None, None);
    ev.details = Some(result.clone());
    cx.audit.emit(&ev);
    cx.outputs.write("outcome", "initialized")?;
    cx.outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}

/// Creates the placeholder (create-only) and updates it once; returns its resourceVersion.
async fn prepare_placeholder(cfg: &Config, kube: &Kube, audit: &Auditor) -> Result<String> {
    let labels = BTreeMap::from([(LABEL_CLASS.to_owned(), CLASS_AUTHORITY.to_owned())]);
    let ann = BTreeMap::from([(ANN_AUTHORITY_STATE.to_owned(), AUTHORITY_PENDING.to_owned())]);
    kube.create_empty_secret(&cfg.store.namespace, &cfg.store.name, labels, ann)
        .await?;
    let s = kube
        .get_secret(&cfg.store.namespace, &cfg.store.name)
        .await?
        .ok_or_else(|| Error::Transient(format!("{} vanished after create", cfg.store.object())))?;
    if has_material(&s) {
        return Err(Error::precondition(
            s.object(),
            "gained unseal material while this step prepared",
            "another init-authority ran; run again to see its result",
        ));
    }
    check_placeholder(&s)?;
    let patch = serde_json::json!({ "metadata": { "annotations": {
        ANN_AUTHORITY_STATE: AUTHORITY_PENDING,
        ANN_INIT_ATTEMPT: jiff::Timestamp::now().to_string(),
        ANN_INITIALIZED_BY: audit.workflow.label(),
    }}});
    kube.patch_secret(
        &cfg.store.namespace,
        &cfg.store.name,
        &s.resource_version,
        patch,
    )
    .await
}

/// Writes the material, retrying anything but a changed Secret until the deadline.
fn check_placeholder(s: &BootstrapSecret) -> Result<()> {
    if s.label(LABEL_CLASS) != Some(CLASS_AUTHORITY) {
        return Err(Error::precondition(
            s.object(),
            format!("exists but is not labelled {LABEL_CLASS}={CLASS_AUTHORITY}"),
            "choose another --secret-name or remove that Secret",
        ));
    }
    Ok(())
}

/// `--dry-run` of an uninitialised Vault: everything after this point writes (the
/// placeholder, `sys/init`, the material, unseal, grants), so the rest is the plan.
fn plan_init(
    cfg: &Config,
    stored: Option<&BootstrapSecret>,
    audit: &Auditor,
    outputs: &Outputs,
) -> Result<Exit> {
    let object = cfg.store.object();
    let dry = &cfg.dry_run;
    match stored {
        None => dry.record(PlanItem::new(Action::WouldCreate, &object).because(format!(
            "empty placeholder labelled {LABEL_CLASS}={CLASS_AUTHORITY}, state {AUTHORITY_PENDING}"
        ))),
        Some(s) => {
            check_placeholder(s)?;
            dry.record(
                PlanItem::new(Action::WouldPatch, &object)
                    .because("reuse the empty placeholder: annotate the init attempt"),
            );
        }
    }
    let (shares, threshold) = match cfg.key_type {
        KeyType::Shamir => (cfg.request.secret_shares, cfg.request.secret_threshold),
        KeyType::Recovery => (cfg.request.recovery_shares, cfg.request.recovery_threshold),
    };
    dry.record(PlanItem::new(Action::WouldInit, "Vault").because(format!(
        "sys/init with {} {} key shares, threshold {}",
        shares.unwrap_or_default(),
        cfg.key_type.as_str(),
        threshold.unwrap_or_default()
    )));
    dry.record(PlanItem::new(Action::WouldPatch, &object).because(match &cfg.protection {
        Protection::Age(r) => format!("store the unseal material encrypted to {} age recipient(s), before anything else", r.len()),
        Protection::Plaintext | Protection::Unset => "store the unseal material in plaintext (--plaintext-unseal-keys), before anything else".to_owned(),
    }));
    dry.record(
        PlanItem::new(Action::WouldUnseal, "Vault").because(match cfg.key_type {
            KeyType::Shamir => "submit the new key shares",
            KeyType::Recovery => "wait for the auto-unseal",
        }),
    );
    if !cfg.grants.is_empty() {
        dry.record(
            PlanItem::new(Action::WouldEstablish, "Vault")
                .because(format!("with the root token: {}", cfg.grants.names())),
        );
        dry.record(
            PlanItem::new(Action::WouldPatch, &object)
                .because(format!("annotate state {AUTHORITY_ESTABLISHED}")),
        );
    }
    dry.record(
        PlanItem::new(Action::WouldRevokeToken, "Vault")
            .because("revoke the root token sys/init returns"),
    );
    let result = serde_json::json!({
        "outcome": "would-initialize",
        "secret": { "namespace": cfg.store.namespace, "name": cfg.store.name },
        "keyType": cfg.key_type.as_str(),
        "dryRun": true,
    });
    let mut ev = audit.event("init", "would-initialize", None, None, None);
    ev.details = Some(result.clone());
    audit.emit(&ev);
    outputs.write("outcome", "would-initialize")?;
    outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}

async fn store(
    cfg: &Config,
    kube: &Kube,
    m: &Material,
    mut rv: String,
    audit: &Auditor,
) -> Result<String> {
    let object = cfg.store.object();
    let (key, bytes, mut ann) = cfg.protection.seal(m)?;
    ann.insert(ANN_AUTHORITY_STATE.to_owned(), AUTHORITY_STORED.to_owned());
    ann.insert(
        ANN_INITIALIZED_AT.to_owned(),
        jiff::Timestamp::now().to_string(),
    );
    let deadline = Instant::now() + cfg.store_timeout;
    let mut wait = Duration::from_millis(200);
    loop {
        let encoded = SecretString::from(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            bytes.expose_secret(),
        ));
        let patch = serde_json::json!({
            "metadata": { "annotations": ann },
            "data": { key.as_str(): encoded.expose_secret() },
        });
        let res = kube
            .patch_secret(&cfg.store.namespace, &cfg.store.name, &rv, patch)
            .await;
        match res {
            Ok(new_rv) => {
                let mut ev = audit.event("store-unseal-material", "stored", None, None, None);
                ev.details = Some(serde_json::json!({
                    "secret": { "namespace": cfg.store.namespace, "name": cfg.store.name },
                    "dataKey": key,
                    "shares": m.keys.len(),
                    "threshold": m.threshold,
                }));
                audit.emit(&ev);
                return Ok(new_rv);
            }
            Err(e) => {
                // A conflict: re-read; if someone else stored material meanwhile, ours must
                // not replace it, but it is then the only copy of *these* keys: stop loudly.
                if let Ok(Some(s)) = kube.get_secret(&cfg.store.namespace, &cfg.store.name).await {
                    if has_material(&s) {
                        return Err(lost(&object, "another writer stored material first"));
                    }
                    rv = s.resource_version;
                }
                if Instant::now() >= deadline {
                    return Err(lost(&object, &e.to_string()));
                }
                tracing::error!(
                    %object,
                    error = %e,
                    "VAULT IS INITIALISED AND ITS UNSEAL KEYS EXIST ONLY IN THIS PROCESS: cannot \
                     store them yet; retrying until the deadline. Do not stop this pod; fix the \
                     cause (RBAC, API server) now"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn lost(object: &str, why: &str) -> Error {
    Error::precondition(
        object,
        format!("Vault was initialised but its unseal material could not be stored ({why}); the keys are LOST"),
        "Vault cannot be unsealed after its next restart: re-initialise its storage (wipe it) and run init-authority again",
    )
}

async fn mark(kube: &Kube, store: &Store, rv: &str, state: &str) -> Result<String> {
    let patch =
        serde_json::json!({ "metadata": { "annotations": { ANN_AUTHORITY_STATE: state } } });
    kube.patch_secret(&store.namespace, &store.name, rv, patch)
        .await
}

async fn wait_unsealed(vault: &Vault, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !vault.seal_status().await?.sealed {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(
                "Vault (auto-unseal) did not unseal itself in time; its recovery keys are stored; run init-authority again with a token to establish policies".into(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Unsealed is not yet serving: a raft node elects itself leader a moment later, and until
/// then answers 500 ("local node not active"). `sys/health` says 200 once it is active.
pub(super) async fn wait_active(vault: &Vault, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if vault.is_active().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(
                "Vault is unsealed but did not become active in time (raft leader election); \
                 its keys are stored: run init-authority again"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Who converges on a Vault initialised before.
enum Acting {
    Operator(Vault),
    Authority(Vault),
    Nobody,
}

/// A login as the authority role, when one is configured. A Vault whose grants were never
/// established has no such role: that is the precondition the way-out runbook is for.
async fn authority_session(
    cfg: &Config,
    vault: &Vault,
    object: &str,
    state: &str,
) -> Result<Option<Vault>> {
    let never = || {
        Error::precondition(
            object,
            "Vault is initialised and its keys are stored, but the policies and roles were \
             never established (the run that initialised it stopped before; its root token \
             is gone)",
            "generate a root token with `bao operator generate-root` (or `vault ...`) and the \
             stored keys, run init-authority again with it in --vault-token-file, then revoke it \
             (docs/runbook.md: Bring-up on a fresh Vault)",
        )
    };
    let Some(auth) = &cfg.authority_login else {
        return if state == AUTHORITY_ESTABLISHED {
            Ok(None)
        } else {
            Err(never())
        };
    };
    match vault.logged_in(auth).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if state != AUTHORITY_ESTABLISHED => {
            tracing::warn!(error = %e, "no login as the authority role");
            Err(never())
        }
        Err(e) => Err(e),
    }
}

/// After establishing: the authority role logs in with this pod's token and the KV mount
/// answers it, or the bring-up is not done.
pub(super) async fn verify(cfg: &Config, vault: &Vault) -> Result<()> {
    let Some(auth) = &cfg.authority_login else {
        return Ok(());
    };
    let v = vault.logged_in(auth).await?;
    let mount = format!("{}/config", cfg.grants.kv_mount);
    let answered = v.read_config(&mount).await;
    v.close().await;
    answered?.ok_or_else(|| {
        Error::precondition(
            format!("Vault mount {}/", cfg.grants.kv_mount),
            "does not answer the authority role after bring-up",
            "check the mount and the authority policy, then run init-authority again",
        )
    })?;
    tracing::info!("verified: the authority role logs in and the KV mount answers");
    Ok(())
}

/// Vault was initialised before: check the material is stored; establish with an operator
/// token when one is given (the root token of the first run is never kept).
async fn already_initialized(
    cfg: &Config,
    cx: &Ctx<'_>,
    stored: Option<BootstrapSecret>,
    operator_token: Option<SecretString>,
) -> Result<Exit> {
    let object = cfg.store.object();
    let Some(s) = stored.filter(has_material) else {
        return Err(Error::precondition(
            &object,
            "Vault is initialised but no unseal material is stored here: the keys of that \
             initialisation are LOST (an init-authority was stopped after Vault answered and \
             before the keys were stored) or Vault was initialised by hand",
            "if you hold the keys, store them in this Secret yourself (docs/steps.md: init-authority, the material format); \
             otherwise re-initialise Vault's storage (wipe it) and run init-authority again",
        ));
    };
    let state = s
        .annotation(ANN_AUTHORITY_STATE)
        .unwrap_or_default()
        .to_owned();
    let mut outcome = "already-initialized";
    let mut new_state = state.clone();
    let mut report = None;
    if !cfg.grants.is_empty() {
        // With an operator token: everything, as the first run would. Without: converge as
        // the authority role the first run established.
        let (acting, what) = match operator_token.filter(|t| !t.expose_secret().is_empty()) {
            Some(t) => (
                Acting::Operator(cx.vault.with_token(t)),
                "with the operator token",
            ),
            None => match authority_session(cfg, cx.vault, &object, &state).await? {
                Some(v) => (Acting::Authority(v), "as the authority role"),
                None => (Acting::Nobody, ""),
            },
        };
        let converging = async {
            match &acting {
                Acting::Operator(v) => cfg.grants.establish(v).await,
                Acting::Authority(v) => cfg.grants.converge(v).await,
                Acting::Nobody => Ok(Default::default()),
            }
        };
        if !matches!(acting, Acting::Nobody) {
            let plan = || {
                PlanItem::new(Action::WouldEstablish, "Vault")
                    .because(format!("{what}: {}", cfg.grants.names()))
            };
            let done = cfg.dry_run.gate(plan, Default::default(), converging).await;
            if let Acting::Authority(v) = acting {
                v.close().await;
            }
            report = Some(done?);
            if state != AUTHORITY_ESTABLISHED {
                let plan = || {
                    PlanItem::new(Action::WouldPatch, &object)
                        .because(format!("annotate state {AUTHORITY_ESTABLISHED}"))
                };
                let marking = mark(
                    cx.kube,
                    &cfg.store,
                    &s.resource_version,
                    AUTHORITY_ESTABLISHED,
                );
                cfg.dry_run.gate(plan, String::new(), marking).await?;
            }
            new_state = AUTHORITY_ESTABLISHED.to_owned();
            outcome = match (cfg.dry_run.active(), state == AUTHORITY_ESTABLISHED) {
                (true, _) => "would-establish",
                (false, false) => "established",
                (false, true) => "converged",
            };
        }
    }
    let result = serde_json::json!({
        "outcome": outcome,
        "secret": { "namespace": cfg.store.namespace, "name": cfg.store.name },
        "state": new_state,
        "established": if outcome == "established" { cfg.grants.names() } else { serde_json::Value::Null },
        "report": report,
    });
    let mut ev = cx.audit.event("init", outcome, None, None, None);
    ev.details = Some(result.clone());
    cx.audit.emit(&ev);
    cx.outputs.write("outcome", outcome)?;
    cx.outputs.write_json("result.json", &result)?;
    Ok(Exit::Done)
}
