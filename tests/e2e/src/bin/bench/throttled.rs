//! Issue 22's figure: a batch under a real OpenBao rate-limit quota slows down and finishes.
//! The run of `tests/e2e/tests/it/throttle.rs`, measured: n bootstrap Secrets, read-bootstrap
//! without a quota (it asks Kubernetes only), then a global quota (`sys/quotas/rate-limit/
//! global`, no headers: the steps' limiters find the rate themselves) for write-vault,
//! mark-consumed `--mode delete` and rotate over the n paths. Each step's wall time is set
//! against the shortest the quota allows (the requests it admitted divided by the quota),
//! with the limiter's own log lines (first cut, lowest rate, throttled for), the failed
//! items of `result.json` and the KV versions (1 after the handover, 2 after one rotation:
//! nothing written twice).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::Env;
use futures::StreamExt as _;
use serde_json::{json, Value};

use super::{measure, secret_name, Counts, Ctx, Usage, HANDOVER_ROLE, ROTATE_ROLE};

/// How far above requests/quota a step's wall time may be (issue 22).
const TARGET: f64 = 1.5;

// ---------------------------------------------------------------------------------------
// The server process's side.

/// Sets (a rate) or deletes (`none`) OpenBao's global rate-limit quota, as root. Root's own
/// calls count against it too: a throttled call is repeated.
pub(crate) async fn quota(env: &Env, rate: &str) -> Value {
    let rate = rate.parse::<u64>().ok();
    for _ in 0..50 {
        let (st, body) = match rate {
            Some(r) => {
                let body = json!({"rate": r, "interval": "1s"});
                env.vault_root("POST", "sys/quotas/rate-limit/global", Some(body))
                    .await
            }
            None => {
                env.vault_root("DELETE", "sys/quotas/rate-limit/global", None)
                    .await
            }
        };
        match st {
            429 => tokio::time::sleep(Duration::from_millis(200)).await,
            200 | 204 => return json!({"ok": rate}),
            _ => return json!({"error": format!("quota: {st} {body}")}),
        }
    }
    json!({"error": "quota: throttled 50 times"})
}

/// How many of the n handed-over paths (`<ns>/<name>`) hold which KV v2 version, as root
/// (`{"1": 1000}`; version 0 is a missing path).
pub(crate) async fn versions(env: &Env, ns: &str, n: usize) -> Value {
    let versions: Vec<u64> = futures::stream::iter(0..n)
        .map(|i| async move {
            let (st, body) = env
                .vault_root(
                    "GET",
                    &format!("secret/metadata/{ns}/{}", secret_name(i)),
                    None,
                )
                .await;
            if st == 200 {
                body["data"]["current_version"].as_u64().unwrap_or(0)
            } else {
                0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for v in versions {
        *by.entry(v.to_string()).or_default() += 1;
    }
    json!(by)
}

// ---------------------------------------------------------------------------------------
// The bench's side.

/// One step of the throttled run.
pub(crate) struct StepFigure {
    step: &'static str,
    usage: Usage,
    counts: Counts,
    /// Items of `result.json` and those with an error.
    items: usize,
    failed: usize,
    /// The Vault limiter's fields from its two log lines: `start` (the first cut) and
    /// `summary` (throttled for, lowest rate, ...); empty when it never throttled.
    start: BTreeMap<String, String>,
    summary: BTreeMap<String, String>,
    /// KV versions after the step, where it writes (`{"1": 1000}`).
    versions: Option<Value>,
    /// Whether the quota was on.
    quota: bool,
}

impl StepFigure {
    /// Vault requests the quota let through: the proxy's count less the 429s.
    fn admitted(&self) -> u64 {
        self.counts.vault - self.counts.vault_throttled
    }

    /// The shortest wall time the quota allows for the requests the step made.
    fn ideal(&self, quota: u64) -> f64 {
        self.admitted() as f64 / quota as f64
    }

    fn ratio(&self, quota: u64) -> f64 {
        self.usage.wall.as_secs_f64() / self.ideal(quota)
    }
}

pub(crate) struct Figure {
    pub(crate) n: usize,
    quota: u64,
    steps: Vec<StepFigure>,
    /// "all handed over and rotated", or what is missing.
    ok: String,
}

impl Figure {
    /// Whether the proxy's admitted Vault requests and OpenBao's audit log disagree, said.
    pub(crate) fn mismatch(&self) -> Option<String> {
        self.steps
            .iter()
            .find_map(|s| super::mismatch(&s.counts).map(|m| format!("{}: {m}", s.step)))
    }
}

/// Runs the throttled chain over `n` fresh Secrets under a quota of `quota` requests/s.
pub(crate) fn run(
    ctx: &mut Ctx,
    bins: &BTreeMap<&str, PathBuf>,
    n: usize,
    quota: u64,
) -> anyhow::Result<Figure> {
    let ns = format!("throttled-{n}");
    ctx.servers.call(&format!("seed {ns} {n}"))?;
    let dir = ctx.work.join(&ns);
    let out = |s: &str| -> anyhow::Result<PathBuf> {
        let d = dir.join(s);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    let (rb, wv, mc, rot) = (out("rb")?, out("wv")?, out("mc")?, out("rot")?);
    let refs = rb.join("references.json").display().to_string();
    let paths_file = dir.join("paths.json");
    let paths: Vec<String> = (0..n).map(|i| format!("{ns}/{}", secret_name(i))).collect();
    std::fs::write(&paths_file, serde_json::to_string(&paths)?)?;
    let set_quota = |ctx: &mut Ctx, q: &str| -> anyhow::Result<()> {
        let r = ctx.servers.call(&format!("quota {q}"))?;
        anyhow::ensure!(r.get("error").is_none(), "{r}");
        Ok(())
    };
    let versions = |ctx: &mut Ctx| ctx.servers.call(&format!("versions {ns} {n}"));

    let mut steps = Vec::new();
    let plan: [(&'static str, Vec<String>, &Path, &str); 4] = [
        (
            "read-bootstrap",
            vec!["--namespaces".into(), ns.clone()],
            &rb,
            "",
        ),
        (
            "write-vault",
            vec!["--reference-file".into(), refs.clone()],
            &wv,
            HANDOVER_ROLE,
        ),
        (
            "mark-consumed",
            ["--reference-file", &refs, "--mode", "delete"]
                .map(String::from)
                .to_vec(),
            &mc,
            HANDOVER_ROLE,
        ),
        (
            "rotate",
            [
                "--paths-file",
                &paths_file.display().to_string(),
                "--key",
                "password=password",
            ]
            .into_iter()
            .map(String::from)
            .chain(["--rotation-id".into(), "bench-throttled".into()])
            .collect(),
            &rot,
            ROTATE_ROLE,
        ),
    ];
    for (step, extra, out, role) in plan {
        let throttled = step != "read-bootstrap";
        if step == "write-vault" || step == "mark-consumed" {
            set_quota(ctx, &quota.to_string())?;
        }
        let mut f = measured_step(ctx, bins, step, extra, out, role)?;
        f.quota = throttled;
        // The versions are read as root, which the quota would throttle too.
        if step == "write-vault" || step == "rotate" {
            set_quota(ctx, "none")?;
            f.versions = Some(versions(ctx)?);
        }
        let failed = f.usage.code != 0;
        steps.push(f);
        if failed {
            break;
        }
    }
    set_quota(ctx, "none")?;
    let v = ctx.servers.call(&format!("verify {ns} {n}"))?;
    let expect = |step: &str, version: &str| {
        steps
            .iter()
            .find(|s| s.step == step)
            .and_then(|s| s.versions.as_ref())
            .is_some_and(|v| *v == json!({ version: n }))
    };
    let ok = if v["left"] == 0
        && v["inVault"] == n
        && expect("write-vault", "1")
        && expect("rotate", "2")
        && steps.iter().all(|s| s.failed == 0 && s.usage.code == 0)
    {
        "all handed over, each written once and rotated once".to_owned()
    } else {
        format!(
            "INCOMPLETE: {} of {n} in Vault, {} Secrets left; exit codes {}",
            v["inVault"],
            v["left"],
            steps
                .iter()
                .map(|s| format!("{} {}", s.step, s.usage.code))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Figure {
        n,
        quota,
        steps,
        ok,
    })
}

fn measured_step(
    ctx: &mut Ctx,
    bins: &BTreeMap<&str, PathBuf>,
    step: &'static str,
    extra: Vec<String>,
    out: &Path,
    role: &str,
) -> anyhow::Result<StepFigure> {
    let mut args = ctx.common(out);
    args.extend(extra);
    let mut envs = if role.is_empty() {
        Vec::new()
    } else {
        ctx.step_env(role)
    };
    // The limiter's start and summary lines are info.
    envs.push(("SECOPS_LOG", "info".into()));
    let stderr = ctx.work.join("stderr");
    let from = std::fs::metadata(&stderr).map_or(0, |m| m.len() as usize);
    let before = ctx.servers.stats()?;
    let usage = measure(
        &bins[step],
        &args,
        &envs,
        &out.join("audit.jsonl"),
        &ctx.work,
    )?;
    let counts = ctx.servers.stats()? - before;
    let log = std::fs::read(&stderr)?;
    let log = String::from_utf8_lossy(log.get(from..).unwrap_or_default());
    // Warnings other than the limiter's own line say why a step did more than it should.
    for l in log
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("is throttling"))
    {
        eprintln!("bench: {step}: {l}");
    }
    let items: Vec<Value> = std::fs::read_to_string(out.join("result.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(StepFigure {
        step,
        usage,
        counts,
        items: items.len(),
        failed: items.iter().filter(|i| i.get("error").is_some()).count(),
        start: fields(&log, "Vault is throttling this step"),
        summary: fields(&log, "Vault throttled this step for"),
        versions: None,
        quota: false,
    })
}

/// The `key=value` fields of the first log line containing `message`.
fn fields(log: &str, message: &str) -> BTreeMap<String, String> {
    log.lines()
        .find(|l| l.contains(message))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The figure's table and its target rows.
pub(crate) fn report(figures: &[Figure]) {
    for f in figures {
        println!(
            "\n## Under a Vault rate-limit quota of {}/s ({} Secrets; issue 22)\n",
            f.quota, f.n
        );
        println!("| step | n | quota | wall | Vault requests admitted (audit log) | throttled (429) | requests / quota | wall / (requests / quota) | first cut to | lowest rate | throttled for | failed items | KV versions after | exit |");
        println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        for s in &f.steps {
            let field = |m: &BTreeMap<String, String>, k: &str, unit: &str| {
                m.get(k).map_or("-".to_owned(), |v| format!("{v}{unit}"))
            };
            let (ideal, ratio) = if s.quota {
                (
                    format!("{:.3} s", s.ideal(f.quota)),
                    format!("{:.2}x", s.ratio(f.quota)),
                )
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "| {} | {} | {} | {:.3} s | {} ({}) | {} | {ideal} | {ratio} | {} | {} | {} | {} of {} | {} | {} |",
                s.step,
                f.n,
                if s.quota { format!("{}/s", f.quota) } else { "none".into() },
                s.usage.wall.as_secs_f64(),
                s.admitted(),
                s.counts.vault_audit,
                s.counts.vault_throttled,
                match (s.start.get("rate_per_s"), s.start.get("paused_ms")) {
                    (Some(r), _) => format!("{r}/s"),
                    (None, Some(p)) => format!("paused {p} ms (cold)"),
                    _ => "-".into(),
                },
                field(&s.summary, "lowest_rate_per_s", "/s"),
                field(&s.summary, "throttled_for_s", " s"),
                s.failed,
                s.items,
                s.versions
                    .as_ref()
                    .map_or("-".into(), |v| v.to_string().replace('"', "")),
                s.usage.code,
            );
        }
        println!("\nresult: {}", f.ok);
    }
    if let Some(f) = figures.first() {
        println!(
            "\nThe quota is OpenBao's `sys/quotas/rate-limit/global` (`rate`, `interval` 1s), \
             set as root for the steps that talk to Vault and removed to check (root counts \
             against it too); it sends no headers, so each step's limiter finds the rate \
             itself. requests / quota: the Vault requests the quota admitted (the proxy's count \
             less its 429s, logins and revokes included; the audit log's count in brackets, \
             which must agree) divided by the quota, the shortest wall time it allows. first \
             cut, lowest rate, throttled for: the step's Vault limiter's start and summary log \
             lines. KV versions: how many of the {} paths hold which version (1 after the \
             handover, 2 after one rotation: nothing written twice).",
            f.n
        );
    }
}

/// The target rows for the Targets table.
pub(crate) fn targets(figures: &[Figure]) {
    for f in figures {
        for s in f.steps.iter().filter(|s| s.quota) {
            let r = s.ratio(f.quota);
            let ok = r <= TARGET && s.failed == 0 && s.usage.code == 0;
            // Unthrottled, the ratio measures the machine (the steps never reached the
            // quota), not the limiter.
            let status = match (s.counts.vault_throttled, ok) {
                (0, _) => "not judged: the quota never throttled",
                (_, true) => "met",
                (_, false) => "NOT met",
            };
            println!(
                "| {} of {} Secrets under a {}/s Vault quota within {TARGET}x of requests/quota, 0 failed items (issue 22) | {} | {r:.2}x: {:.3} s wall, {} requests / {}/s = {:.3} s; {} failed |",
                s.step,
                f.n,
                f.quota,
                status,
                s.usage.wall.as_secs_f64(),
                s.admitted(),
                f.quota,
                s.ideal(f.quota),
                s.failed,
            );
        }
    }
}
