//! `make bench`: the batch handover measured, not tested. Starts the test servers in a child
//! process (`bench serve`: kube-server and a dev OpenBao, each behind the recording proxy, so
//! their CPU is counted apart from ours), seeds bootstrap Secrets, and runs read-bootstrap ->
//! write-vault -> mark-consumed as processes, as Argo would, with the shipped Vault role and
//! policy, for batches of 10 to 10,000; then rotate over 1,000 paths, and, side by side
//! against the same servers, the per-Secret sh/curl/jq script most users write today
//! (tests/e2e/bench/argo-script-handover.sh). Each process runs under GNU time (wait4 rusage:
//! user+sys CPU, peak RSS). Requests are counted by the proxies; the Vault count is checked
//! against OpenBao's audit log and a disagreement fails the bench. Prints markdown tables and
//! each target as met or not.
//!
//! `bench --help` lists the options (`--quick` for a small run, `--sizes` and friends); each
//! option also reads an environment variable (BENCH_SIZES, ...), and SECOPS_CONCURRENCY
//! passes through to the steps.

#[path = "bench/startup.rs"]
mod startup;
#[path = "bench/throttled.rs"]
mod throttled;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Env, SeedSecret};
use futures::StreamExt as _;
use serde_json::{json, Value};

const STEPS: [&str; 5] = [
    "read-bootstrap",
    "write-vault",
    "mark-consumed",
    "rotate",
    "push-secret",
];
const MIB: f64 = 1024.0 * 1024.0;

/// The batch handover chain, rotate and the sh/curl/jq baseline against loopback test
/// servers; prints markdown tables and each target of issue 7 as met or not. A size list is
/// comma-separated; `none` (or empty) runs none.
#[derive(clap::Parser, Debug)]
#[command(name = "bench")]
struct Opts {
    /// A small run (a minute or two): chains of 10, 100 and 1,000 (100 also without Events),
    /// the baseline at 10 and 100 (1,000 extrapolated from it), rotate over 100 paths, 5
    /// start-up samples. Explicit options still win.
    #[arg(long)]
    quick: bool,
    /// Handover chain sizes [full: 10,100,1000,10000]
    #[arg(long, env = "BENCH_SIZES")]
    sizes: Option<String>,
    /// Chain sizes also run with `--kube-events=false` [full: 1000]
    #[arg(long, env = "BENCH_QUIET_SIZES")]
    quiet_sizes: Option<String>,
    /// sh/curl/jq baseline sizes [full: 10,100,1000]; a chain size it skips is extrapolated
    /// from its largest run, and said so
    #[arg(long, env = "BENCH_BASELINE_SIZES")]
    baseline_sizes: Option<String>,
    /// Rotate runs, in paths [full: 1000]
    #[arg(long, env = "BENCH_ROTATE_PATHS")]
    rotate_paths: Option<String>,
    /// Start-up samples per binary (the median is reported) [full: 21]
    #[arg(long, env = "BENCH_STARTUP_RUNS")]
    startup_runs: Option<usize>,
    /// Chains under a Vault rate-limit quota, in Secrets [full: 1000, quick: 300]
    #[arg(long, env = "BENCH_THROTTLED_SIZES")]
    throttled_sizes: Option<String>,
    /// That quota, in requests per second
    #[arg(long, env = "BENCH_QUOTA", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    quota: u64,
}

struct Plan {
    sizes: Vec<usize>,
    quiet: Vec<usize>,
    baseline: Vec<usize>,
    rotate: Vec<usize>,
    startup_runs: usize,
    throttled: Vec<usize>,
    quota: u64,
}

impl Opts {
    fn plan(&self) -> anyhow::Result<Plan> {
        let q = self.quick;
        let pick = |v: &Option<String>, full: &str, quick: &str| {
            parse_sizes(v.as_deref().unwrap_or(if q { quick } else { full }))
        };
        Ok(Plan {
            sizes: pick(&self.sizes, "10,100,1000,10000", "10,100,1000")?,
            quiet: pick(&self.quiet_sizes, "1000", "100")?,
            baseline: pick(&self.baseline_sizes, "10,100,1000", "10,100")?,
            rotate: pick(&self.rotate_paths, "1000", "100")?,
            startup_runs: self.startup_runs.unwrap_or(if q { 5 } else { 21 }).max(1),
            throttled: pick(&self.throttled_sizes, "1000", "300")?,
            quota: self.quota,
        })
    }
}

fn parse_sizes(s: &str) -> anyhow::Result<Vec<usize>> {
    if s.trim() == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow::anyhow!("{x:?} is not a size (a positive count)"))
        })
        .collect()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        serve();
        return;
    }
    let opts = <Opts as clap::Parser>::parse();
    if let Err(e) = opts.plan().and_then(bench) {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// The server process: both test servers, driven by one-line commands on stdin.

fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = rt.block_on(Env::start());
    let info = json!({
        "kubeconfig": env.kubeconfig,
        "kube": env.kube.url(),
        "kubeToken": kube_server::TOKEN,
        "vault": env.vault.url(),
        "dir": env.dir.path(),
        "baoPid": env.vault.bao.pid(),
    });
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{info}").expect("stdout");
    out.flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["seed", ns, n] => rt.block_on(seed(&env, ns, n.parse().expect("count"))),
            ["vault-seed", prefix, n] => {
                rt.block_on(vault_seed(&env, prefix, n.parse().expect("count")))
            }
            ["stats"] => tally.update(&env),
            ["quota", rate] => rt.block_on(throttled::quota(&env, rate)),
            ["versions", ns, n] => {
                rt.block_on(throttled::versions(&env, ns, n.parse().expect("n")))
            }
            ["verify", ns, n] => rt.block_on(verify(&env, ns, n.parse().expect("count"))),
            ["quit"] => break,
            _ => json!({"error": format!("unknown command {line:?}")}),
        };
        writeln!(out, "{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn secret_name(i: usize) -> String {
    format!("s{i:05}")
}

async fn seed(env: &Env, ns: &str, n: usize) -> Value {
    futures::stream::iter(0..n)
        .map(|i| {
            let s = SeedSecret::bootstrap(ns, &secret_name(i))
                .kv("username", format!("app-{i}"))
                .kv(
                    "password",
                    format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15),
                );
            env.seed(s)
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    json!({"ok": n})
}

async fn vault_seed(env: &Env, prefix: &str, n: usize) -> Value {
    let written = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"data": {"username": format!("app-{i}"), "password": "initial"}});
            let path = format!("secret/data/{prefix}/p{i:05}");
            env.vault_root("POST", &path, Some(body)).await.0 < 300
        })
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    json!({"ok": written})
}

/// What the proxies and OpenBao's audit device saw since the start. Each `stats` takes the
/// proxies' records since the last one and reads the audit log on from where it stopped, so
/// the servers' cost of counting does not grow with the run.
#[derive(Default)]
struct Tally {
    kube: u64,
    events: u64,
    vault: u64,
    /// Of those, the 429s of a rate-limit quota (OpenBao does not audit them).
    vault_throttled: u64,
    /// Requests in OpenBao's audit log by any token but root (the steps' and the baseline's,
    /// logins included); root is the bench's own seeding and checking, which bypasses the
    /// proxy.
    audit: u64,
    audit_offset: u64,
}

impl Tally {
    fn update(&mut self, env: &Env) -> Value {
        for r in env.kube.proxy.take_records() {
            match kube_server::request_key(&r.method, &r.path) {
                Some((_, resource, _)) if resource == "events" => self.events += 1,
                _ => self.kube += 1,
            }
        }
        let vault = env.vault.proxy.take_records();
        self.vault += vault.len() as u64;
        self.vault_throttled += vault.iter().filter(|r| r.status == Some(429)).count() as u64;
        let (requests, offset) = env.vault.bao.audit_requests_from(self.audit_offset);
        self.audit_offset = offset;
        self.audit += requests.iter().filter(|r| !r.is_root()).count() as u64;
        json!({
            "kube": self.kube,
            "kubeEvents": self.events,
            "vault": self.vault,
            "vaultThrottled": self.vault_throttled,
            "vaultAudit": self.audit,
        })
    }
}

async fn verify(env: &Env, ns: &str, n: usize) -> Value {
    let left = env
        .secrets(ns)
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX);
    // One LIST as root: every handed-over name has a KV v2 entry under the namespace.
    let (_, listed) = env
        .vault_root("LIST", &format!("secret/metadata/{ns}/"), None)
        .await;
    let keys: std::collections::BTreeSet<String> =
        serde_json::from_value(listed["data"]["keys"].clone()).unwrap_or_default();
    let in_vault = (0..n).filter(|i| keys.contains(&secret_name(*i))).count();
    json!({"left": left, "inVault": in_vault})
}

struct Servers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: Value,
}

impl Servers {
    fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let info = serde_json::from_str(&line)?;
        Ok(Servers {
            child,
            stdin,
            stdout,
            info,
        })
    }

    fn call(&mut self, cmd: &str) -> anyhow::Result<Value> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }

    fn stats(&mut self) -> anyhow::Result<Counts> {
        let v = self.call("stats")?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(Counts {
            kube: n("kube"),
            events: n("kubeEvents"),
            vault: n("vault"),
            vault_throttled: n("vaultThrottled"),
            vault_audit: n("vaultAudit"),
            cpu: proc_cpu(self.child.id())?,
            bao_cpu: match self.info["baoPid"].as_u64() {
                Some(pid) => proc_cpu(pid as u32)?,
                None => Duration::ZERO,
            },
        })
    }

    fn str(&self, k: &str) -> String {
        self.info[k].as_str().unwrap_or_default().to_owned()
    }
}

/// user+sys CPU of a running process (all threads), from /proc.
fn proc_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 1000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Requests seen and the test servers' CPU (kube-server and both proxies, which run in the
/// `bench serve` process; OpenBao, its own process).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Kubernetes requests through the proxy, Events apart.
    kube: u64,
    events: u64,
    /// Vault requests through the proxy, and those a quota answered 429.
    vault: u64,
    vault_throttled: u64,
    /// The same, as OpenBao's audit log has them: requests by non-root tokens and logins.
    vault_audit: u64,
    cpu: Duration,
    bao_cpu: Duration,
}

impl Counts {
    /// Whether the proxy's Vault count (less a quota's 429s) and OpenBao's audit log agree.
    fn audit_agrees(&self) -> bool {
        self.vault - self.vault_throttled == self.vault_audit
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            kube: self.kube + o.kube,
            events: self.events + o.events,
            vault: self.vault + o.vault,
            vault_throttled: self.vault_throttled + o.vault_throttled,
            vault_audit: self.vault_audit + o.vault_audit,
            cpu: self.cpu + o.cpu,
            bao_cpu: self.bao_cpu + o.bao_cpu,
        }
    }
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            kube: self.kube - o.kube,
            events: self.events - o.events,
            vault: self.vault - o.vault,
            vault_throttled: self.vault_throttled - o.vault_throttled,
            vault_audit: self.vault_audit - o.vault_audit,
            cpu: self.cpu.saturating_sub(o.cpu),
            bao_cpu: self.bao_cpu.saturating_sub(o.bao_cpu),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measuring processes.

/// One process (or a sum of several): wall, CPU, peak RSS (max), worst exit code.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    code: i32,
    processes: u64,
}

impl Usage {
    fn add(&mut self, o: Usage) {
        self.wall += o.wall;
        self.cpu += o.cpu;
        self.max_rss_kib = self.max_rss_kib.max(o.max_rss_kib);
        self.code = self.code.max(o.code);
        self.processes += o.processes;
    }
}

/// Runs `prog args` under GNU time (wait4 rusage of it and its waited-for descendants).
fn measure(
    prog: &Path,
    args: &[String],
    envs: &[(&str, String)],
    stdout: &Path,
    work: &Path,
) -> anyhow::Result<Usage> {
    let rusage = work.join("rusage");
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&rusage)
        .arg(prog)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SECOPS_LOG", "warn")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout)?)
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(work.join("stderr"))?,
        )
        .status()?;
    let wall = t.elapsed();
    if !status.success() {
        // The step's own error lines say why (they name objects, never values).
        let err = std::fs::read_to_string(work.join("stderr")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        eprintln!(
            "bench: {} exited {:?}: {}",
            prog.display(),
            status.code(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    let text = std::fs::read_to_string(&rusage)?;
    let last = text.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() == 3, "GNU time output {text:?}");
    Ok(Usage {
        wall,
        cpu: Duration::from_secs_f64(f[0] + f[1]),
        max_rss_kib: f[2] as u64,
        code: status.code().unwrap_or(-1),
        processes: 1,
    })
}

// ---------------------------------------------------------------------------------------
// The benchmark.

struct Ctx {
    servers: Servers,
    work: PathBuf,
    kubeconfig: String,
    vault: String,
    sa_dir: PathBuf,
}

impl Ctx {
    fn step_env(&self, role: &str) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("VAULT_ADDR", self.vault.clone()),
            ("SECOPS_VAULT_AUTH", "kubernetes".into()),
            ("SECOPS_VAULT_ROLE", role.into()),
            ("SECOPS_CLUSTER_NAME", "bench".into()),
            (
                "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE",
                self.sa_dir
                    .join(format!("{role}.token"))
                    .display()
                    .to_string(),
            ),
            // The test Vault speaks TLS with a test CA, as a pod would get it from a mount.
            ("VAULT_CACERT", self.vault_ca()),
        ];
        if let Ok(c) = std::env::var("SECOPS_CONCURRENCY") {
            v.push(("SECOPS_CONCURRENCY", c));
        }
        v
    }

    fn vault_ca(&self) -> String {
        self.sa_dir.join("vault-ca.pem").display().to_string()
    }

    fn common(&self, out: &Path) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            self.kubeconfig.clone(),
            "--outputs-dir".into(),
            out.display().to_string(),
            "--workflow-name".into(),
            "bench".into(),
            "--workflow-uid".into(),
            "bench-uid".into(),
        ]
    }
}

/// One row: a handover chain (or rotate, or the baseline) of `n` items.
struct Row {
    what: String,
    n: usize,
    usage: Usage,
    /// Each step's process with the requests it made.
    steps: Vec<(&'static str, Usage, Counts)>,
    counts: Counts,
    /// The fewest K8s + Vault requests this run could make (handover chains only).
    floor: Option<u64>,
    ok: String,
}

/// The Vault role (and ServiceAccount) write-vault and mark-consumed log in with: the shipped
/// `secret-handover-batch` template runs both in one pod as `secops-handover-batch`. The
/// baseline script uses it too (it writes, patches and reads back).
const HANDOVER_ROLE: &str = "secops-handover-batch";
const ROTATE_ROLE: &str = "secops-rotate";

/// A shipped role's `token_ttl` (templates/vault/roles/<role>.json), as loaded into OpenBao:
/// a step that outlives its token gets a 403 and logs in again (counted as Vault requests).
fn token_ttl(role: &str) -> String {
    let file = e2e::vault::templates_vault_dir().join(format!("roles/{role}.json"));
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["token_ttl"].as_u64())
        .map_or_else(|| "?".into(), |s| format!("{s} s"))
}

fn bench(plan: Plan) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("secops-bench").tempdir()?;
    let work = tmp.path().to_owned();
    let servers = Servers::start()?;
    let mut ctx = Ctx {
        kubeconfig: servers.str("kubeconfig"),
        vault: servers.str("vault"),
        sa_dir: PathBuf::from(servers.str("dir")),
        work,
        servers,
    };

    let bins: BTreeMap<&str, PathBuf> = STEPS.iter().map(|s| (*s, e2e::bin(s))).collect();
    let release = bins["write-vault"]
        .parent()
        .is_some_and(|d| d.ends_with("release"));
    println!("# secops bench\n");
    println!(
        "machine: {} cores ({}), load average at start: {}; step binaries: {} ({}); test servers: {} build, a separate process\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model(),
        loadavg(),
        bins["write-vault"].parent().unwrap().display(),
        if release { "release" } else { "NOT release: sizes, start-up and wall times are not judged" },
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );

    let mut rows = Vec::new();
    for n in &plan.sizes {
        let row = handover_chain(&mut ctx, &bins, *n, true)?;
        progress(&row);
        rows.push(row);
    }
    for n in &plan.quiet {
        let row = handover_chain(&mut ctx, &bins, *n, false)?;
        progress(&row);
        rows.push(row);
    }
    for n in &plan.rotate {
        let row = rotate(&mut ctx, &bins, *n)?;
        progress(&row);
        rows.push(row);
    }
    let mut baseline = Vec::new();
    for n in &plan.baseline {
        let row = baseline_chain(&mut ctx, *n)?;
        progress(&row);
        baseline.push(row);
    }
    let mut limited = Vec::new();
    for n in &plan.throttled {
        let f = throttled::run(&mut ctx, &bins, *n, plan.quota)?;
        eprintln!(
            "throttled chain of {n}: {}",
            f.mismatch().unwrap_or_default()
        );
        limited.push(f);
    }
    let startup = startup::startup_times(&ctx, &bins, plan.startup_runs)?;
    let load_end = loadavg();
    let _ = ctx.servers.call("quit");
    let _ = ctx.servers.child.wait();

    report(&rows, &baseline, &startup, &bins, release, &limited);
    println!("\nload average at the end: {load_end}");
    let mismatches: Vec<String> = rows
        .iter()
        .chain(&baseline)
        .filter_map(|r| mismatch(&r.counts).map(|m| format!("{} of {}: {m}", r.what, r.n)))
        .chain(limited.iter().filter_map(|f| f.mismatch()))
        .collect();
    if !mismatches.is_empty() {
        println!("\n**{}**", mismatches.join("; "));
        anyhow::bail!(
            "the proxy's Vault request counts disagree with OpenBao's audit log: {}",
            mismatches.join("; ")
        );
    }
    Ok(())
}

/// Shows a finished run on stderr while the bench goes on, and shouts a count mismatch.
fn progress(row: &Row) {
    eprintln!("{}", row_line(row));
    if let Some(m) = mismatch(&row.counts) {
        eprintln!("bench: !!! {} of {}: {m} !!!", row.what, row.n);
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// read-bootstrap -> write-vault -> mark-consumed --mode delete over `n` fresh Secrets. The
/// wall time is the sum of the three processes' (what Argo's pods would run; the bench's
/// bookkeeping between them is not counted), and each step's requests are counted apart.
fn handover_chain(
    ctx: &mut Ctx,
    bins: &BTreeMap<&str, PathBuf>,
    n: usize,
    events: bool,
) -> anyhow::Result<Row> {
    let ns = format!("bench-{n}{}", if events { "" } else { "-quiet" });
    ctx.servers.call(&format!("seed {ns} {n}"))?;
    let dir = ctx.work.join(&ns);
    std::fs::create_dir_all(&dir)?;
    let outs: Vec<PathBuf> = ["rb", "wv", "mc"].iter().map(|s| dir.join(s)).collect();
    for o in &outs {
        std::fs::create_dir_all(o)?;
    }
    let refs = outs[0].join("references.json");
    let mut usage = Usage::default();
    let mut counts = Counts::default();
    let mut steps = Vec::new();
    let plan: [(&'static str, Vec<String>, &PathBuf); 3] = [
        (
            "read-bootstrap",
            vec!["--namespaces".into(), ns.clone()],
            &outs[0],
        ),
        (
            "write-vault",
            vec!["--reference-file".into(), refs.display().to_string()],
            &outs[1],
        ),
        (
            "mark-consumed",
            vec![
                "--reference-file".into(),
                refs.display().to_string(),
                "--mode".into(),
                "delete".into(),
            ],
            &outs[2],
        ),
    ];
    for (step, extra, out) in plan {
        let mut args = ctx.common(out);
        args.extend(extra);
        let mut envs = if step == "read-bootstrap" {
            Vec::new()
        } else {
            ctx.step_env(HANDOVER_ROLE)
        };
        envs.push(("SECOPS_KUBE_EVENTS", events.to_string()));
        let before = ctx.servers.stats()?;
        let u = measure(
            &bins[step],
            &args,
            &envs,
            &out.join("audit.jsonl"),
            &ctx.work,
        )?;
        let c = ctx.servers.stats()? - before;
        steps.push((step, u, c));
        usage.add(u);
        counts = counts + c;
        if u.code != 0 {
            break;
        }
    }
    let v = ctx.servers.call(&format!("verify {ns} {n}"))?;
    let ok = if v["left"] == 0 && v["inVault"] == n {
        "all handed over".to_owned()
    } else {
        format!(
            "INCOMPLETE: {} of {n} in Vault, {} Secrets left; exit codes {}",
            v["inVault"],
            v["left"],
            steps
                .iter()
                .map(|(s, u, _)| format!("{s} {}", u.code))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Row {
        what: if events {
            "handover".into()
        } else {
            "handover, --kube-events=false".into()
        },
        n,
        usage,
        steps,
        counts,
        floor: Some(chain_floor(n)),
        ok,
    })
}

fn rotate(ctx: &mut Ctx, bins: &BTreeMap<&str, PathBuf>, n: usize) -> anyhow::Result<Row> {
    let seeded = ctx.servers.call(&format!("vault-seed rot {n}"))?;
    anyhow::ensure!(
        seeded["ok"] == n,
        "seeding {n} Vault paths to rotate: {seeded}"
    );
    let dir = ctx.work.join(format!("rotate-{n}"));
    std::fs::create_dir_all(&dir)?;
    let paths: Vec<String> = (0..n).map(|i| format!("rot/p{i:05}")).collect();
    let file = dir.join("paths.json");
    std::fs::write(&file, serde_json::to_string(&paths)?)?;
    let mut args = ctx.common(&dir);
    args.extend([
        "--paths-file".into(),
        file.display().to_string(),
        "--key".into(),
        "password=password".into(),
        "--rotation-id".into(),
        "bench-r1".into(),
    ]);
    let before = ctx.servers.stats()?;
    let u = measure(
        &bins["rotate"],
        &args,
        &ctx.step_env(ROTATE_ROLE),
        &dir.join("audit.jsonl"),
        &ctx.work,
    )?;
    let counts = ctx.servers.stats()? - before;
    let rotated = std::fs::read_to_string(dir.join("rotated")).unwrap_or_default();
    Ok(Row {
        what: "rotate".into(),
        n,
        usage: u,
        steps: vec![("rotate", u, counts)],
        counts,
        floor: None,
        ok: if rotated.trim() == n.to_string() {
            "all rotated".into()
        } else {
            format!("INCOMPLETE: rotated {rotated:?}")
        },
    })
}

fn baseline_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/argo-script-handover.sh")
}

fn baseline_chain(ctx: &mut Ctx, n: usize) -> anyhow::Result<Row> {
    let ns = format!("baseline-{n}");
    ctx.servers.call(&format!("seed {ns} {n}"))?;
    let envs: Vec<(&str, String)> = vec![
        ("KUBE_URL", ctx.servers.str("kube")),
        ("KUBE_TOKEN", ctx.servers.str("kubeToken")),
        ("VAULT_ADDR", ctx.vault.clone()),
        ("VAULT_ROLE", HANDOVER_ROLE.into()),
        (
            "SA_TOKEN_FILE",
            ctx.sa_dir
                .join(format!("{HANDOVER_ROLE}.token"))
                .display()
                .to_string(),
        ),
        // curl verifies the test Vault's TLS certificate against the same CA.
        ("CURL_CA_BUNDLE", ctx.vault_ca()),
    ];
    let script = baseline_script();
    let sh = PathBuf::from("/bin/sh");
    let names_file = ctx.work.join(format!("{ns}.names"));
    let before = ctx.servers.stats()?;
    let mut usage = measure(
        &sh,
        &[script.display().to_string(), "discover".into(), ns.clone()],
        &envs,
        &names_file,
        &ctx.work,
    )?;
    let names = std::fs::read_to_string(&names_file)?;
    let sink = ctx.work.join("baseline.out");
    for name in names.lines() {
        let u = measure(
            &sh,
            &[
                script.display().to_string(),
                "handover".into(),
                ns.clone(),
                name.into(),
            ],
            &envs,
            &sink,
            &ctx.work,
        )?;
        usage.add(u);
    }
    let counts = ctx.servers.stats()? - before;
    let v = ctx.servers.call(&format!("verify {ns} {n}"))?;
    Ok(Row {
        what: "baseline sh/curl/jq".into(),
        n,
        usage,
        steps: Vec::new(),
        counts,
        floor: None,
        ok: if v["left"] == 0 && v["inVault"] == n {
            "all handed over".into()
        } else {
            format!("INCOMPLETE: {v}")
        },
    })
}

// ---------------------------------------------------------------------------------------
// The report.

const ROW_HEADER: &str = "| run | n | wall | our CPU (share of wall) | peak RSS (largest step) | K8s req/secret | Vault req/secret | Vault, audit log | total req/secret | floor | Events/secret | kube-server + proxies CPU | OpenBao CPU | result |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

fn row_line(r: &Row) -> String {
    let wall = r.usage.wall.as_secs_f64();
    let share = |d: Duration| {
        if wall > 0.0 {
            format!(
                "{:.3} s ({:.0}%)",
                d.as_secs_f64(),
                100.0 * d.as_secs_f64() / wall
            )
        } else {
            format!("{:.3} s", d.as_secs_f64())
        }
    };
    format!(
        "| {} | {} | {:.3} s | {} | {:.1} MiB | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.3} | {} | {} | {}{} |",
        r.what,
        r.n,
        wall,
        share(r.usage.cpu),
        mib(r.usage.max_rss_kib),
        per(r.counts.kube, r.n),
        per(r.counts.vault, r.n),
        per(r.counts.vault_audit, r.n),
        per(r.counts.kube + r.counts.vault, r.n),
        r.floor.map_or(String::new(), |f| {
            // How many requests above it, exactly (the per-Secret figures are rounded).
            let above = (r.counts.kube + r.counts.vault) as i64 - f as i64;
            format!("{:.3} ({above:+})", per(f, r.n))
        }),
        per(r.counts.events, r.n),
        share(r.counts.cpu),
        share(r.counts.bao_cpu),
        mismatch(&r.counts).map_or(String::new(), |m| format!("**{m}**; ")),
        r.ok,
    )
}

/// Said loudly when the proxy's Vault count and OpenBao's audit log disagree: one of the two
/// counts something the other does not, and the Vault figures cannot be trusted.
fn mismatch(c: &Counts) -> Option<String> {
    (!c.audit_agrees()).then(|| {
        format!(
            "VAULT COUNT MISMATCH: the proxy saw {} requests, OpenBao's audit log {}",
            c.vault, c.vault_audit
        )
    })
}

/// The fewest requests a handover chain of `n` Secrets can make, Events apart: per Secret the
/// `cas=0` write, the provenance PATCH and the read-back in Vault and the consuming DELETE in
/// Kubernetes; per step one LIST page per 500 Secrets; per Vault process a login and a
/// revoke-self.
fn chain_floor(n: usize) -> u64 {
    let pages = n.div_ceil(500) as u64;
    let n = n as u64;
    (3 * n + 2 * 2) + (n + 3 * pages)
}

fn per(x: u64, n: usize) -> f64 {
    x as f64 / n as f64
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(
    rows: &[Row],
    baseline: &[Row],
    startup: &BTreeMap<&'static str, Duration>,
    bins: &BTreeMap<&str, PathBuf>,
    release: bool,
    limited: &[throttled::Figure],
) {
    println!("## Handover chain (read-bootstrap -> write-vault -> mark-consumed --mode delete), rotate, baseline\n");
    println!("{ROW_HEADER}");
    for r in rows.iter().chain(baseline) {
        println!("{}", row_line(r));
    }
    let largest_baseline = baseline.iter().max_by_key(|b| b.n);
    let mut extrapolated = BTreeMap::new();
    for r in rows.iter().filter(|r| r.what == "handover") {
        if baseline.iter().any(|b| b.n == r.n) {
            continue;
        }
        if let Some(b) = largest_baseline {
            let per_secret = b.usage.wall.as_secs_f64() / b.n as f64;
            let est = per_secret * r.n as f64;
            extrapolated.insert(r.n, est);
            println!(
                "| baseline sh/curl/jq, NOT RUN, extrapolated | {} | ~{est:.0} s | | | | | | | | | | | {per_secret:.3} s per Secret as measured at {} (one process chain per Secret, so linear) |",
                r.n, b.n
            );
        }
    }
    println!(
        "\nwall: the processes' own wall time, summed over a chain's steps (the baseline: over its \
         discovery and one script per Secret). our CPU: the steps' user+sys CPU (wait4, GNU \
         time), summed, with its share of the wall time; peak RSS likewise. Requests are counted \
         by the recording proxies in front of both servers; K8s excludes Events, which are shown \
         apart. The Vault count is checked against OpenBao's audit log (requests by any token \
         but root, logins included; root is the bench's own seeding and checking, which bypasses \
         the proxy); a disagreement is marked VAULT COUNT MISMATCH and fails the bench. floor: \
         the fewest requests a chain can make (per Secret: the cas=0 write, the provenance PATCH \
         and the read-back in Vault, the DELETE in Kubernetes; per step a LIST page per 500; \
         per Vault process a login and a revoke-self), and in brackets how many requests the \
         run made above it. The test servers run in their own \
         processes (kube-server and the proxies in `bench serve`, OpenBao a dev server with a \
         file audit device); their CPU is read from /proc/<pid>/stat. Vault tokens live as the \
         shipped roles say ({HANDOVER_ROLE} {}, {ROTATE_ROLE} {}); a step that outlives one \
         logs in again on the 403 (counted as Vault requests).",
        token_ttl(HANDOVER_ROLE),
        token_ttl(ROTATE_ROLE),
    );

    if !baseline.is_empty() {
        println!("\n## The same chain by the sh/curl/jq script, same servers, same run\n");
        println!("| n | wall: ours | sh/curl/jq | ratio | CPU: ours | sh/curl/jq | ratio | requests/secret: ours | sh/curl/jq |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let ratio = |b: f64, r: f64| {
            if r > 0.0 {
                format!("{:.0}x", b / r)
            } else {
                "n/a".to_owned()
            }
        };
        for r in rows.iter().filter(|r| r.what == "handover") {
            let wall = r.usage.wall.as_secs_f64();
            let cpu = r.usage.cpu.as_secs_f64();
            let ours = per(r.counts.kube + r.counts.vault, r.n);
            match baseline.iter().find(|b| b.n == r.n) {
                Some(b) => println!(
                    "| {} | {wall:.3} s | {:.3} s | {} | {cpu:.3} s | {:.3} s | {} | {ours:.3} | {:.3} |",
                    r.n,
                    b.usage.wall.as_secs_f64(),
                    ratio(b.usage.wall.as_secs_f64(), wall),
                    b.usage.cpu.as_secs_f64(),
                    ratio(b.usage.cpu.as_secs_f64(), cpu),
                    per(b.counts.kube + b.counts.vault, b.n),
                ),
                None => {
                    let Some(est) = extrapolated.get(&r.n) else {
                        continue;
                    };
                    println!(
                        "| {} | {wall:.3} s | ~{est:.0} s (extrapolated, not run) | ~{} | {cpu:.3} s | | | {ours:.3} | |",
                        r.n,
                        ratio(*est, wall),
                    );
                }
            }
        }
    }

    println!("\n### Per step\n");
    println!("| run | n | step | wall | K8s req/secret | Vault req/secret | Vault, audit log | Events/secret | peak RSS | CPU user+sys | kube-server + proxies CPU | OpenBao CPU | exit |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        for (s, u, c) in &r.steps {
            println!(
                "| {} | {} | {s} | {:.3} s | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} MiB | {:.3} s | {:.3} s | {:.3} s | {} |",
                r.what,
                r.n,
                u.wall.as_secs_f64(),
                per(c.kube, r.n),
                per(c.vault, r.n),
                per(c.vault_audit, r.n),
                per(c.events, r.n),
                mib(u.max_rss_kib),
                u.cpu.as_secs_f64(),
                c.cpu.as_secs_f64(),
                c.bao_cpu.as_secs_f64(),
                u.code
            );
        }
    }

    throttled::report(limited);
    println!("\n## Binaries\n");
    println!("| binary | size (stripped release) | start-up to first request (median) |");
    println!("|---|---:|---:|");
    let mut max_size = (0u64, "");
    for (s, p) in bins {
        let Ok(size) = std::fs::metadata(p).map(|m| m.len()) else {
            println!("| {s} | not built | |");
            continue;
        };
        if size > max_size.0 {
            max_size = (size, s);
        }
        println!(
            "| {s} | {:.2} MiB | {:.2} ms |",
            size as f64 / MIB,
            startup
                .get(s)
                .map(|d| d.as_secs_f64() * 1e3)
                .unwrap_or(f64::NAN)
        );
    }
    println!(
        "\nstart-up: from just before spawn (fork+exec included) until the first bytes of the \
         first request reach a loopback listener standing in for both the Kubernetes API and \
         Vault (plain HTTP, so no TLS handshake precedes the request); median of the samples."
    );

    println!("\n## Targets (issues 7 and 22)\n");
    let find = |what: &str, n: usize| rows.iter().find(|r| r.what == what && r.n == n);
    let judged = |ok: bool| match (release, ok) {
        (false, _) => "not judged (not a release build)",
        (true, true) => "met",
        (true, false) => "NOT met",
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let complete = |r: &Row| r.ok.starts_with("all");
    println!("| target | status | figure |");
    println!("|---|---|---|");
    match find("handover", 1000) {
        Some(r) => {
            let w = r.usage.wall.as_secs_f64();
            println!(
                "| handover chain of 1,000 Secrets under 2 s wall | {} | {w:.3} s; {} |",
                judged(w < 2.0 && complete(r)),
                r.ok
            );
        }
        None => println!("| handover chain of 1,000 Secrets under 2 s wall | not measured | run without --quick / with --sizes 1000 |"),
    }
    let req_row = find("handover", 1000).or_else(|| {
        rows.iter()
            .filter(|r| r.what == "handover")
            .max_by_key(|r| r.n)
    });
    match req_row {
        Some(r) => {
            let rq = per(r.counts.kube + r.counts.vault, r.n);
            println!(
                "| at most 3.05 K8s+Vault requests per Secret, Events apart | {} | {rq:.3} at {} (K8s {:.3}, Vault {:.3}); Events {:.3} per Secret |",
                verdict(rq <= 3.05),
                r.n,
                per(r.counts.kube, r.n),
                per(r.counts.vault, r.n),
                per(r.counts.events, r.n)
            );
        }
        None => println!("| at most 3.05 requests per Secret | not measured | |"),
    }
    match find("handover", 10_000) {
        Some(r) => {
            let (step, u, _) = r
                .steps
                .iter()
                .max_by_key(|(_, u, _)| u.max_rss_kib)
                .expect("a chain has steps");
            println!(
                "| peak RSS under 32 MiB for 10,000 Secrets in one batch | {} | {:.1} MiB ({step}); {} |",
                verdict(u.max_rss_kib < 32 * 1024 && complete(r)),
                mib(u.max_rss_kib),
                r.steps
                    .iter()
                    .map(|(s, u, _)| format!("{s} {:.1} MiB", mib(u.max_rss_kib)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        None => println!("| peak RSS under 32 MiB for 10,000 Secrets | not measured | run without --quick / with --sizes 10000 |"),
    }
    for n in [1000usize, 10_000] {
        let Some(r) = find("handover", n) else {
            if n == 1000 {
                println!("| at least 20x faster than sh/curl/jq at 1,000 | not measured | run without --quick |");
            }
            continue;
        };
        let w = r.usage.wall.as_secs_f64();
        let (base, how) = match baseline.iter().find(|b| b.n == n) {
            Some(b) => (b.usage.wall.as_secs_f64(), "measured"),
            None => match extrapolated.get(&n) {
                Some(e) => (*e, "extrapolated"),
                None => continue,
            },
        };
        let x = base / w;
        let label = if n == 1000 {
            "at least 20x faster than sh/curl/jq at 1,000"
        } else {
            "(no target) speed-up over sh/curl/jq at 10,000"
        };
        println!(
            "| {label} | {} | {x:.1}x: baseline {base:.1} s ({how}) vs {w:.3} s |",
            if n == 1000 {
                judged(x >= 20.0)
            } else {
                "reported"
            }
        );
    }
    match startup.iter().max_by_key(|(_, d)| **d) {
        Some((step, slowest)) => println!(
            "| start-up to first request under 5 ms | {} | slowest median {:.2} ms ({step}) |",
            judged(*slowest < Duration::from_millis(5)),
            slowest.as_secs_f64() * 1e3
        ),
        None => println!("| start-up to first request under 5 ms | not measured | |"),
    }
    println!(
        "| each stripped binary under 8 MiB | {} | largest {:.2} MiB ({}) |",
        judged(max_size.0 > 0 && max_size.0 < 8 * 1024 * 1024),
        max_size.0 as f64 / MIB,
        max_size.1
    );
    for r in rows.iter().filter(|r| r.what == "rotate") {
        println!(
            "| (no target) rotate over {} paths | reported | {:.3} s wall, {:.3} Vault + {:.3} K8s requests per path, {:.1} MiB, {:.3} s CPU; {} |",
            r.n,
            r.usage.wall.as_secs_f64(),
            per(r.counts.vault, r.n),
            per(r.counts.kube, r.n),
            mib(r.usage.max_rss_kib),
            r.usage.cpu.as_secs_f64(),
            r.ok
        );
    }
    throttled::targets(limited);
}
