//! rotate: new values for chosen keys of KV v2 secrets, inside Vault (RFC 5.6).
//!
//! Exactly one new version per rotation id, even if killed between any two requests:
//! 1. read the latest version (V) and its custom_metadata;
//! 2. `secops.io/rotation-id` == id: already done, go on to revocation and refresh;
//! 3. record the intent, `secops.io/rotation-pending = V:salt:fingerprint:id`, where the
//!    fingerprint is a salted SHA-256 of the new values (never the values);
//! 4. write with `cas=V` (a concurrent writer makes this fail: exit 4, nothing half-done);
//! 5. record completion (rotation-id, versions, generators) and clear the intent.
//!
//! A re-run that finds the intent with V+1 present checks the fingerprint: a match means our
//! write landed (finish step 5); otherwise someone else wrote (exit 4).

pub mod generate;
pub mod retention;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{Auditor, Workflow};
use crate::cli::VaultTarget;
use crate::error::{Error, Result};
use crate::eso::{self, RefreshReport};
use crate::exit::Exit;
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::paths::VaultPath;
use crate::plan::{Action, DryRun, PlanItem};
use crate::secret::VaultData;
use crate::vault::kv::CasWrite;
use crate::vault::{Kv2Read, Need, Vault};
use generate::Generator;
use retention::Retention;

pub const META_ROTATION_ID: &str = "secops.io/rotation-id";
pub const META_ROTATION_PENDING: &str = "secops.io/rotation-pending";
pub const META_ROTATED_AT: &str = "secops.io/rotated-at";
pub const META_ROTATION_VERSIONS: &str = "secops.io/rotation-versions";
pub const META_ROTATION_GENERATORS: &str = "secops.io/rotation-generators";
pub const META_ROTATION_WORKFLOW: &str = "secops.io/rotation-workflow";

#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<VaultPath>,
    pub keys: Vec<(String, Generator)>,
    pub rotation_id: String,
    pub retention: Retention,
    /// Namespaces whose ExternalSecrets are refreshed; `None`: no refresh.
    pub refresh_namespaces: Option<Vec<String>>,
    pub vault: VaultTarget,
    pub workflow: Workflow,
    /// Paths rotated at once (each path's protocol stays sequential).
    pub concurrency: usize,
    /// `--dry-run`: every write below goes through its gate.
    pub dry_run: DryRun,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.paths.is_empty() {
            return Err(Error::Usage(
                "give at least one --path or a --paths-file".into(),
            ));
        }
        if self.keys.is_empty() {
            return Err(Error::Usage(
                "give at least one --key KEY=GENERATOR to rotate".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &self.keys {
            if !seen.insert(k) {
                return Err(Error::Usage(format!("--key {k} is given twice")));
            }
        }
        let id = &self.rotation_id;
        if id.contains("{{") {
            return Err(Error::Usage(format!(
                "the rotation id {id:?} is an unresolved Argo expression; pass the template's \
                 input parameter, not a workflow global"
            )));
        }
        if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_control()) {
            return Err(Error::Usage(
                "the rotation id (--rotation-id, else --workflow-uid) must be 1-200 printable characters"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathResult {
    pub path: String,
    /// `rotated`, `already-rotated`, or the failure class.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<u64>,
    pub revoked: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn run(
    cfg: &Config,
    vault: &Vault,
    kube: Option<&Kube>,
    audit: &Auditor,
    outputs: &Outputs,
) -> Result<Exit> {
    cfg.validate()?;
    let mut exit = Exit::Done;
    let mut results = Vec::new();
    // Distinct paths run concurrently; a path listed again runs after, on its own.
    let mut seen = BTreeSet::new();
    let firsts: Vec<usize> = (0..cfg.paths.len())
        .filter(|&i| seen.insert(cfg.paths[i].to_string()))
        .collect();
    let all = cfg.paths.iter().flat_map(|p| needs(cfg, p, true, true));
    vault.prefetch_capabilities(all.map(|n| n.path)).await;
    let mut done: Vec<Option<Result<PathResult>>> = cfg.paths.iter().map(|_| None).collect();
    let concurrent: Vec<(usize, Result<PathResult>)> = futures::stream::iter(firsts)
        .map(|i| async move { (i, rotate_one(cfg, vault, kube, &cfg.paths[i]).await) })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    for (i, r) in concurrent {
        done[i] = Some(r);
    }
    for (path, slot) in cfg.paths.iter().zip(done) {
        let res = match slot {
            Some(r) => r,
            None => rotate_one(cfg, vault, kube, path).await,
        };
        let (result, e) = match res {
            Ok(mut r) => {
                if cfg.dry_run.active() && r.outcome == "rotated" {
                    r.outcome = "would-rotate".into();
                }
                (r, None)
            }
            Err(e) => (
                PathResult {
                    path: path.to_string(),
                    outcome: e.outcome().to_owned(),
                    old_version: None,
                    new_version: None,
                    revoked: Vec::new(),
                    refresh: None,
                    error: Some(e.to_string()),
                },
                Some(e),
            ),
        };
        let mut ev = audit.event(
            "rotate",
            result.outcome.clone(),
            None,
            Some(crate::audit::Target {
                mount: cfg.vault.mount.to_string(),
                path: path.clone(),
                version: result.new_version,
            }),
            result.error.clone(),
        );
        ev.details = Some(serde_json::json!({
            "rotationId": cfg.rotation_id,
            "oldVersion": result.old_version,
            "newVersion": result.new_version,
            "generators": generators_label(&cfg.keys),
            "revoked": result.revoked,
            "revoke": cfg.retention.revoke,
            "refresh": result.refresh,
        }));
        audit.emit(&ev);
        if let Some(e) = e {
            crate::console::err(&format!("rotate: error: {e}"));
            exit = exit.worst(e.exit());
        }
        results.push(result);
    }
    outputs.write_json("result.json", &results)?;
    outputs.write(
        "rotated",
        &results
            .iter()
            .filter(|r| r.outcome == "rotated")
            .count()
            .to_string(),
    )?;
    Ok(exit)
}

fn generators_label(keys: &[(String, Generator)]) -> String {
    keys.iter()
        .map(|(k, g)| format!("{k}={}", g.kind()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The recorded intent of a rotation in progress.
#[derive(Clone)]
struct Pending {
    base: u64,
    salt: String,
    fingerprint: String,
    id: String,
}

impl Pending {
    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.base, self.salt, self.fingerprint, self.id
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut it = s.splitn(4, ':');
        Some(Pending {
            base: it.next()?.parse().ok()?,
            salt: it.next()?.to_owned(),
            fingerprint: it.next()?.to_owned(),
            id: it.next()?.to_owned(),
        })
    }
}

/// Salted SHA-256 over the rotated keys' new values: proves which write is ours without
/// recording anything a value could be recovered from.
fn fingerprint(salt: &str, keys: &[(String, Generator)], data: &VaultData) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    for (k, _) in keys {
        h.update(k.as_bytes());
        h.update([0u8]);
        if let Some(v) = data.values.get(k) {
            h.update(v.expose_secret().as_bytes());
        }
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn rotate_one(
    cfg: &Config,
    vault: &Vault,
    kube: Option<&Kube>,
    path: &VaultPath,
) -> Result<PathResult> {
    let mount = &cfg.vault.mount;
    let object = format!("Vault path {mount}/{path}");
    let (version, data, custom) = match vault.kv2_read(mount, path, None).await? {
        Kv2Read::Present {
            version,
            data,
            foreign_shape,
            custom_metadata,
        } => {
            if foreign_shape {
                return Err(Error::precondition(
                    object,
                    "holds values that are not strings; rotating would drop them",
                    "rotate only secrets written as key/value strings",
                ));
            }
            (version, data, custom_metadata)
        }
        Kv2Read::Missing => {
            return Err(Error::precondition(
                object,
                "does not exist",
                "hand the secret over (or create it) before rotating it",
            ))
        }
        Kv2Read::Deleted { version, .. } => {
            return Err(Error::precondition(
                object,
                format!("its latest version {version} is deleted"),
                "undelete it or write a new version before rotating",
            ))
        }
    };
    let mut result = PathResult {
        path: path.to_string(),
        outcome: "rotated".into(),
        old_version: None,
        new_version: None,
        revoked: Vec::new(),
        refresh: None,
        error: None,
    };
    let pending = custom
        .get(META_ROTATION_PENDING)
        .and_then(|p| Pending::decode(p));
    let done_id =
        custom.get(META_ROTATION_ID).map(String::as_str) == Some(cfg.rotation_id.as_str());

    // Another rotation's intent whose write may have landed (it was interrupted, or runs right
    // now): rotating over it would clobber the intent its re-run needs to finish without a
    // second version. Refuse; that rotation finishes first.
    let foreign = pending
        .as_ref()
        .filter(|p| !done_id && p.id != cfg.rotation_id && version > p.base);
    if let Some(p) = foreign {
        return Err(Error::precondition(
            object,
            format!(
                "holds the pending intent of rotation {:?} (base version {}), which may have \
                 written version {} without recording it",
                p.id,
                p.base,
                p.base + 1
            ),
            format!(
                "re-run that rotation (--rotation-id {:?}, the template's rotation-id): it \
                 finishes without a second version; then run this one",
                p.id
            ),
        ));
    }
    let new_version = if done_id {
        vault
            .require(&object, &needs(cfg, path, false, false))
            .await?;
        result.outcome = "already-rotated".into();
        result.old_version = version.checked_sub(1);
        version
    } else if let Some((p, landed)) = interrupted(cfg, vault, path, pending, version, &data).await?
    {
        // A previous run of this rotation wrote its version but stopped before recording it.
        vault
            .require(&object, &needs(cfg, path, false, true))
            .await?;
        finish(cfg, vault, path, &custom, p.base, landed).await?;
        result.old_version = Some(p.base);
        landed
    } else {
        for (k, _) in &cfg.keys {
            if !data.values.contains_key(k) {
                return Err(Error::precondition(
                    object,
                    format!("has no key {k:?} to rotate"),
                    "check --key names against the secret's keys",
                ));
            }
        }
        // Before the intent is recorded: a refusal after it would leave the protocol half done.
        vault
            .require(&object, &needs(cfg, path, true, true))
            .await?;
        let mut new_data = VaultData {
            values: data
                .values
                .iter()
                .map(|(k, v)| (k.clone(), SecretString::from(v.expose_secret().to_owned())))
                .collect(),
            base64_keys: data.base64_keys.clone(),
        };
        for (k, g) in &cfg.keys {
            new_data.values.insert(k.clone(), g.generate(vault).await?);
            new_data.base64_keys.remove(k);
        }
        let salt = random_hex(16);
        let p = Pending {
            base: version,
            fingerprint: fingerprint(&salt, &cfg.keys, &new_data),
            salt,
            id: cfg.rotation_id.clone(),
        };
        let intent = BTreeMap::from([(META_ROTATION_PENDING.to_owned(), Some(p.encode()))]);
        let keys = generators_label(&cfg.keys);
        let plan = || {
            would(cfg, path, Action::WouldRotate, version + 1)
                .because(format!("record the intent, then write version {} (cas={version}) with new values for {keys}", version + 1))
        };
        let record_intent = vault.kv2_patch_metadata(mount, path, &intent);
        cfg.dry_run.gate(plan, (), record_intent).await?;
        let planned = CasWrite::Written {
            version: version + 1,
        };
        let write = vault.kv2_write_cas(mount, path, &new_data, version);
        match cfg
            .dry_run
            .gate(
                || would(cfg, path, Action::WouldRotate, version + 1),
                planned,
                write,
            )
            .await?
        {
            CasWrite::Written { version: v } => {
                finish(cfg, vault, path, &custom, version, v).await?;
                result.old_version = Some(version);
                v
            }
            CasWrite::Mismatch => {
                // A retried write whose first answer was lost meets its own version here:
                // the fingerprint tells ours from a concurrent writer's.
                if let Kv2Read::Present {
                    version: latest,
                    data: latest_data,
                    ..
                } = vault.kv2_read(mount, path, None).await?
                {
                    if let Some((_, landed)) =
                        interrupted(cfg, vault, path, Some(p.clone()), latest, &latest_data).await?
                    {
                        finish(cfg, vault, path, &custom, version, landed).await?;
                        result.old_version = Some(version);
                        return finish_path(cfg, vault, kube, path, result, landed).await;
                    }
                }
                // Clear the intent only while it is still ours: another rotation's must stay.
                let ours = vault
                    .kv2_metadata(mount, path)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|m| {
                        m.custom_metadata.get(META_ROTATION_PENDING) == Some(&p.encode())
                    });
                if ours {
                    let clear = BTreeMap::from([(META_ROTATION_PENDING.to_owned(), None)]);
                    let _ = vault.kv2_patch_metadata(mount, path, &clear).await;
                }
                return Err(Error::Transient(format!(
                    "{object}: a concurrent writer changed it after version {version} was read; \
                     nothing was written"
                )));
            }
            CasWrite::Denied { reason } => {
                return Err(Error::precondition(
                    object,
                    format!("Vault denied the write (HTTP 403: {reason})"),
                    "grant the rotate policy `update` on <mount>/data/<path>",
                ))
            }
        }
    };
    finish_path(cfg, vault, kube, path, result, new_version).await
}

/// What rotating `path` may write: the new version (`update`: the path exists), the
/// intent and completion records (`patch` on its metadata), and, whenever retention is set,
/// the revocation of old versions. Revocation is checked even when this run revokes nothing
/// yet, since it is only known after the new version is written.
fn needs(cfg: &Config, path: &VaultPath, data: bool, metadata: bool) -> Vec<Need> {
    let mount = &cfg.vault.mount;
    let mut out = Vec::new();
    if data {
        out.push(Need::new("update", format!("{mount}/data/{path}")));
    }
    if metadata {
        out.push(Need::new("patch", format!("{mount}/metadata/{path}")));
    }
    let r = &cfg.retention;
    if r.keep_versions.is_some() || r.keep_for.is_some() {
        let verb = match r.revoke {
            retention::Revoke::Delete => "delete",
            retention::Revoke::Destroy => "destroy",
        };
        out.push(Need::new("update", format!("{mount}/{verb}/{path}")));
    }
    out
}

/// After the new version exists: revocation and consumer refresh.
async fn finish_path(
    cfg: &Config,
    vault: &Vault,
    kube: Option<&Kube>,
    path: &VaultPath,
    mut result: PathResult,
    new_version: u64,
) -> Result<PathResult> {
    let mount = &cfg.vault.mount;
    result.new_version = Some(new_version);

    if let Some(mut meta) = vault.kv2_metadata(mount, path).await? {
        if cfg.dry_run.active() && meta.current_version < new_version {
            // The planned version does not exist: judge retention as if it did, created now.
            meta.current_version = new_version;
            meta.versions.push(crate::vault::kv::VersionInfo {
                version: new_version,
                created: jiff::Timestamp::now(),
                deleted: false,
                destroyed: false,
            });
        }
        let revoke = cfg.retention.to_revoke(&meta, jiff::Timestamp::now());
        if !revoke.is_empty() {
            let destroy = cfg.retention.revoke == retention::Revoke::Destroy;
            let plan = || {
                PlanItem::new(Action::WouldRevoke, format!("Vault path {mount}/{path}"))
                    .at(mount, path)
                    .because(format!(
                        "{} versions {revoke:?} (retention)",
                        if destroy { "destroy" } else { "soft-delete" },
                    ))
            };
            let revoking = vault.kv2_revoke_versions(mount, path, &revoke, destroy);
            cfg.dry_run.gate(plan, (), revoking).await?;
        }
        result.revoked = revoke;
    }
    if let (Some(kube), Some(namespaces)) = (kube, &cfg.refresh_namespaces) {
        let stamp = format!("{}-v{new_version}", cfg.rotation_id);
        result.refresh =
            Some(eso::refresh(kube, namespaces, mount, path, &stamp, &cfg.dry_run).await?);
    }
    Ok(result)
}

/// Did an interrupted run of this rotation land its write? Returns the version it wrote.
/// Checked by fingerprint, so a concurrent writer's version is never mistaken for ours.
async fn interrupted(
    cfg: &Config,
    vault: &Vault,
    path: &VaultPath,
    pending: Option<Pending>,
    latest: u64,
    latest_data: &VaultData,
) -> Result<Option<(Pending, u64)>> {
    let Some(p) = pending.filter(|p| p.id == cfg.rotation_id && latest > p.base) else {
        return Ok(None);
    };
    let candidate = p.base + 1;
    let matches = if candidate == latest {
        fingerprint(&p.salt, &cfg.keys, latest_data) == p.fingerprint
    } else {
        match vault
            .kv2_read(&cfg.vault.mount, path, Some(candidate))
            .await?
        {
            Kv2Read::Present { data, .. } => {
                fingerprint(&p.salt, &cfg.keys, &data) == p.fingerprint
            }
            _ => false,
        }
    };
    Ok(matches.then_some((p, candidate)))
}

/// Step 5: completion recorded, intent cleared, base64 marks of rotated (now text) keys removed.
async fn finish(
    cfg: &Config,
    vault: &Vault,
    path: &VaultPath,
    custom: &BTreeMap<String, String>,
    old: u64,
    new: u64,
) -> Result<()> {
    let mut patch: BTreeMap<String, Option<String>> = BTreeMap::from([
        (META_ROTATION_ID.to_owned(), Some(cfg.rotation_id.clone())),
        (
            META_ROTATED_AT.to_owned(),
            Some(jiff::Timestamp::now().to_string()),
        ),
        (
            META_ROTATION_VERSIONS.to_owned(),
            Some(format!("{old}->{new}")),
        ),
        (
            META_ROTATION_GENERATORS.to_owned(),
            Some(generators_label(&cfg.keys).chars().take(512).collect()),
        ),
        (META_ROTATION_PENDING.to_owned(), None),
    ]);
    let wf = cfg.workflow.label();
    patch.insert(META_ROTATION_WORKFLOW.to_owned(), Some(wf));
    let rotated: BTreeSet<&str> = cfg.keys.iter().map(|(k, _)| k.as_str()).collect();
    let remaining: BTreeSet<String> = crate::vault::kv::base64_keys(custom)
        .into_iter()
        .filter(|k| !rotated.contains(k.as_str()))
        .collect();
    if remaining != crate::vault::kv::base64_keys(custom) {
        // A subset of what is recorded: always within the limits.
        patch.extend(crate::vault::kv::base64_keys_patch(&remaining).unwrap_or_default());
    }
    let plan = || {
        would(cfg, path, Action::WouldRotate, new).because(format!(
            "record completion of the rotation {old}->{new} in custom_metadata"
        ))
    };
    let record = vault.kv2_patch_metadata(&cfg.vault.mount, path, &patch);
    cfg.dry_run.gate(plan, (), record).await
}

fn would(cfg: &Config, path: &VaultPath, action: Action, version: u64) -> PlanItem {
    PlanItem::new(action, format!("Vault path {}/{path}", cfg.vault.mount))
        .at(&cfg.vault.mount, path)
        .version(Some(version))
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_round_trips_even_with_colons_in_the_id() {
        let p = Pending {
            base: 7,
            salt: "ab".into(),
            fingerprint: "cd".into(),
            id: "2026-11-29T00:00:00Z".into(),
        };
        let d = Pending::decode(&p.encode()).unwrap();
        assert_eq!(
            (
                d.base,
                d.salt.as_str(),
                d.fingerprint.as_str(),
                d.id.as_str()
            ),
            (7, "ab", "cd", "2026-11-29T00:00:00Z")
        );
        assert!(p.encode().len() <= 512);
    }

    #[test]
    fn fingerprint_depends_on_salt_and_rotated_values_only() {
        let keys = vec![("password".to_string(), Generator::Uuid)];
        let data = |pw: &str, other: &str| VaultData {
            values: BTreeMap::from([
                ("password".to_string(), SecretString::from(pw.to_owned())),
                ("user".to_string(), SecretString::from(other.to_owned())),
            ]),
            base64_keys: Default::default(),
        };
        let a = fingerprint("s1", &keys, &data("x", "u"));
        assert_eq!(a, fingerprint("s1", &keys, &data("x", "other")));
        assert_ne!(a, fingerprint("s2", &keys, &data("x", "u")));
        assert_ne!(a, fingerprint("s1", &keys, &data("y", "u")));
        assert!(!a.contains('x'));
    }
}
