//! The batch over paths: distinct paths rotated `--concurrency` at a time (a path listed
//! again runs after, on its own), one audit event per path, `result.json` and `rotated`.

use std::collections::BTreeSet;

use futures::StreamExt as _;

use super::protocol::{needs, rotate_one};
use super::{generators_label, Config, PathResult};
use crate::audit::Auditor;
use crate::error::Result;
use crate::exit::Exit;
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::vault::Vault;

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
