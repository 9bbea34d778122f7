//! `make bench`: the batch handover measured, not tested. Starts the loopback Kubernetes and
//! Vault servers in a child process (`bench serve`, so their CPU is counted apart from ours),
//! seeds bootstrap Secrets, and runs read-bootstrap -> write-vault -> mark-consumed as
//! processes, as Argo would, for batches of 10 to 10,000; then rotate over 1,000 paths, and,
//! side by side, the per-Secret sh/curl/jq script most users write today
//! (tests/e2e/bench/argo-script-handover.sh). Each process runs under GNU time (wait4 rusage:
//! user+sys CPU, peak RSS). Prints markdown tables and each target as met or not.
//!
//! Knobs (environment): BENCH_SIZES (default 10,100,1000,10000), BENCH_BASELINE_SIZES
//! (10,100,1000), BENCH_QUIET_SIZES (1000: without Kubernetes Events), BENCH_ROTATE_PATHS
//! (1000), BENCH_STARTUP_RUNS (21), SECOPS_CONCURRENCY.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
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

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        serve();
        return;
    }
    if let Err(e) = bench() {
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
    });
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
            ["stats"] => stats(&env),
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
    let http = reqwest::Client::new();
    let base = env.vault.url();
    let token = env.vault.root_token().to_owned();
    futures::stream::iter(0..n)
        .map(|i| {
            let req = http
                .post(format!("{base}/v1/secret/data/{prefix}/p{i:05}"))
                .header("X-Vault-Token", &token)
                .json(&json!({"data": {"username": format!("app-{i}"), "password": "initial"}}));
            async move { req.send().await.map(|r| r.status().is_success()) }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    json!({"ok": n})
}

fn stats(env: &Env) -> Value {
    let events = env
        .kube
        .requests()
        .iter()
        .filter(|(_, p)| p.contains("/events"))
        .count();
    json!({
        "kube": env.kube.request_count(),
        "kubeEvents": events,
        "vault": env.vault.request_count(),
    })
}

async fn verify(env: &Env, ns: &str, n: usize) -> Value {
    let left = env
        .secrets(ns)
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX);
    let in_vault = (0..n)
        .filter(|i| {
            env.vault
                .kv2_current_version("secret", &format!("{ns}/{}", secret_name(*i)))
                .is_some_and(|v| v >= 1)
        })
        .count();
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
            kube: n("kube") - n("kubeEvents"),
            events: n("kubeEvents"),
            vault: n("vault"),
            cpu: proc_cpu(self.child.id())?,
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

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    kube: u64,
    events: u64,
    vault: u64,
    cpu: Duration,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            kube: self.kube - o.kube,
            events: self.events - o.events,
            vault: self.vault - o.vault,
            cpu: self.cpu.saturating_sub(o.cpu),
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
            (
                "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE",
                self.sa_dir
                    .join(format!("{role}.token"))
                    .display()
                    .to_string(),
            ),
        ];
        if let Ok(c) = std::env::var("SECOPS_CONCURRENCY") {
            v.push(("SECOPS_CONCURRENCY", c));
        }
        v
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

/// One row: a handover chain (or rotate) of `n` items.
struct Row {
    what: String,
    n: usize,
    usage: Usage,
    steps: Vec<(&'static str, Usage)>,
    counts: Counts,
    ok: String,
}

fn sizes(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect()
}

fn bench() -> anyhow::Result<()> {
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
    println!("# secops bench\n");
    println!(
        "machine: {} cores ({}), load average at start: {}; step binaries: {}; test servers: {} build\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        bins["write-vault"].parent().unwrap().display(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );

    let mut rows = Vec::new();
    for n in sizes("BENCH_SIZES", "10,100,1000,10000") {
        let row = handover_chain(&mut ctx, &bins, n, true)?;
        eprintln!("{}", row_line(&row));
        rows.push(row);
    }
    for n in sizes("BENCH_QUIET_SIZES", "1000") {
        let row = handover_chain(&mut ctx, &bins, n, false)?;
        eprintln!("{}", row_line(&row));
        rows.push(row);
    }
    let rotate_n = sizes("BENCH_ROTATE_PATHS", "1000");
    for n in rotate_n {
        let row = rotate(&mut ctx, &bins, n)?;
        eprintln!("{}", row_line(&row));
        rows.push(row);
    }
    let mut baseline = Vec::new();
    for n in sizes("BENCH_BASELINE_SIZES", "10,100,1000") {
        let row = baseline_chain(&mut ctx, n)?;
        eprintln!("{}", row_line(&row));
        baseline.push(row);
    }
    let startup = startup_times(&ctx, &bins)?;
    let _ = ctx.servers.call("quit");
    let _ = ctx.servers.child.wait();

    report(&rows, &baseline, &startup, &bins);
    Ok(())
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
    let before = ctx.servers.stats()?;
    let mut usage = Usage::default();
    let mut steps = Vec::new();
    let t = Instant::now();
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
            ctx.step_env("secops-handover")
        };
        envs.push(("SECOPS_KUBE_EVENTS", events.to_string()));
        let u = measure(
            &bins[step],
            &args,
            &envs,
            &out.join("audit.jsonl"),
            &ctx.work,
        )?;
        steps.push((step, u));
        usage.add(u);
        if u.code != 0 {
            break;
        }
    }
    usage.wall = t.elapsed();
    let counts = ctx.servers.stats()? - before;
    let v = ctx.servers.call(&format!("verify {ns} {n}"))?;
    let ok = if v["left"] == 0 && v["inVault"] == n {
        "all handed over".to_owned()
    } else {
        format!("INCOMPLETE: {v}")
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
        ok,
    })
}

fn rotate(ctx: &mut Ctx, bins: &BTreeMap<&str, PathBuf>, n: usize) -> anyhow::Result<Row> {
    ctx.servers.call(&format!("vault-seed rot {n}"))?;
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
        &ctx.step_env("secops-rotate"),
        &dir.join("audit.jsonl"),
        &ctx.work,
    )?;
    let counts = ctx.servers.stats()? - before;
    let rotated = std::fs::read_to_string(dir.join("rotated")).unwrap_or_default();
    Ok(Row {
        what: "rotate".into(),
        n,
        usage: u,
        steps: vec![("rotate", u)],
        counts,
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
        ("VAULT_ROLE", "secops-handover".into()),
        (
            "SA_TOKEN_FILE",
            ctx.sa_dir
                .join("secops-handover.token")
                .display()
                .to_string(),
        ),
    ];
    let script = baseline_script();
    let sh = PathBuf::from("/bin/sh");
    let names_file = ctx.work.join(format!("{ns}.names"));
    let before = ctx.servers.stats()?;
    let t = Instant::now();
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
    usage.wall = t.elapsed();
    let counts = ctx.servers.stats()? - before;
    let v = ctx.servers.call(&format!("verify {ns} {n}"))?;
    Ok(Row {
        what: "baseline sh/curl/jq".into(),
        n,
        usage,
        steps: Vec::new(),
        counts,
        ok: if v["left"] == 0 && v["inVault"] == n {
            "all handed over".into()
        } else {
            format!("INCOMPLETE: {v}")
        },
    })
}

/// Median time from spawn to the first request bytes arriving at a loopback listener that
/// stands in for both the Kubernetes API and Vault.
fn startup_times(
    ctx: &Ctx,
    bins: &BTreeMap<&str, PathBuf>,
) -> anyhow::Result<BTreeMap<&'static str, Duration>> {
    let runs: usize = std::env::var("BENCH_STARTUP_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 1];
            if c.read(&mut buf).unwrap_or(0) > 0 {
                let _ = tx.send(Instant::now());
            }
            let _ = c.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://{addr}");
    let kubeconfig = ctx.work.join("startup-kubeconfig");
    let real = std::fs::read_to_string(&ctx.kubeconfig)?;
    std::fs::write(&kubeconfig, real.replace(&ctx.servers.str("kube"), &url))?;
    let reference = ctx.work.join("startup-ref.json");
    std::fs::write(
        &reference,
        r#"{"namespace":"apps","name":"db","uid":"u","resourceVersion":"1","path":"apps/db","keys":["k"]}"#,
    )?;
    let mut out = BTreeMap::new();
    for step in STEPS.into_iter().filter(|s| bins[s].exists()) {
        let args: Vec<String> = match step {
            "read-bootstrap" => vec!["--namespaces".into(), "apps".into()],
            "write-vault" => vec!["--reference-file".into(), reference.display().to_string()],
            "mark-consumed" => vec![
                "--reference-file".into(),
                reference.display().to_string(),
                "--mode".into(),
                "delete".into(),
            ],
            "rotate" => vec![
                "--path".into(),
                "apps/db".into(),
                "--key".into(),
                "k=uuid".into(),
                "--rotation-id".into(),
                "r".into(),
            ],
            _ => vec!["--namespaces".into(), "apps".into()],
        };
        let mut samples = Vec::new();
        for _ in 0..runs {
            while rx.try_recv().is_ok() {}
            let spawned = Instant::now();
            let mut child = Command::new(&bins[step])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .env_clear()
                .env("VAULT_ADDR", &url)
                .env("SECOPS_VAULT_AUTH", "token")
                .env("VAULT_TOKEN", "bench")
                .env("SECOPS_LOG", "off")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let first = rx.recv_timeout(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(first) = first {
                samples.push(first.duration_since(spawned));
            }
        }
        samples.sort();
        anyhow::ensure!(!samples.is_empty(), "{step} never reached the listener");
        out.insert(step, samples[samples.len() / 2]);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The report.

fn row_line(r: &Row) -> String {
    format!(
        "| {} | {} | {:.3} s | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} MiB | {:.3} s | {:.3} s | {} |",
        r.what,
        r.n,
        r.usage.wall.as_secs_f64(),
        per(r.counts.kube, r.n),
        per(r.counts.vault, r.n),
        per(r.counts.kube + r.counts.vault, r.n),
        per(r.counts.events, r.n),
        r.usage.max_rss_kib as f64 / 1024.0,
        r.usage.cpu.as_secs_f64(),
        r.counts.cpu.as_secs_f64(),
        r.ok,
    )
}

fn per(x: u64, n: usize) -> f64 {
    x as f64 / n as f64
}

fn report(
    rows: &[Row],
    baseline: &[Row],
    startup: &BTreeMap<&'static str, Duration>,
    bins: &BTreeMap<&str, PathBuf>,
) {
    println!("## Handover chain (read-bootstrap -> write-vault -> mark-consumed --mode delete) and rotate\n");
    println!("| run | n | wall | K8s req/secret | Vault req/secret | total req/secret | Events/secret | peak RSS (max step) | CPU user+sys (ours) | test servers' CPU | result |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows.iter().chain(baseline) {
        println!("{}", row_line(r));
    }
    println!("\n### Per step\n");
    println!("| run | n | step | wall | peak RSS | CPU user+sys | exit |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for r in rows {
        for (s, u) in &r.steps {
            println!(
                "| {} | {} | {s} | {:.3} s | {:.1} MiB | {:.3} s | {} |",
                r.what,
                r.n,
                u.wall.as_secs_f64(),
                u.max_rss_kib as f64 / 1024.0,
                u.cpu.as_secs_f64(),
                u.code
            );
        }
    }
    println!("\n## Binaries\n");
    println!("| binary | size (stripped release) | start-up to first request (median) |");
    println!("|---|---:|---:|");
    let mut max_size = 0u64;
    for (s, p) in bins {
        let Ok(size) = std::fs::metadata(p).map(|m| m.len()) else {
            println!("| {s} | not built | |");
            continue;
        };
        max_size = max_size.max(size);
        println!(
            "| {s} | {:.2} MiB | {:.2} ms |",
            size as f64 / MIB,
            startup
                .get(s)
                .map(|d| d.as_secs_f64() * 1e3)
                .unwrap_or(f64::NAN)
        );
    }

    println!("\n## Targets\n");
    let find = |what: &str, n: usize| {
        rows.iter()
            .chain(baseline)
            .find(|r| r.what == what && r.n == n)
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    match find("handover", 1000) {
        Some(r) => {
            let w = r.usage.wall.as_secs_f64();
            println!(
                "- handover of 1,000 secrets under 2 s wall: {} ({w:.3} s)",
                verdict(w < 2.0)
            );
            let rq = per(r.counts.kube + r.counts.vault, r.n);
            println!(
                "- at most 3.05 K8s+Vault requests per secret (Events apart): {} ({rq:.3}; Events {:.3}/secret)",
                verdict(rq <= 3.05),
                per(r.counts.events, r.n)
            );
            match find("baseline sh/curl/jq", 1000) {
                Some(b) => {
                    let x = b.usage.wall.as_secs_f64() / w;
                    println!("- at least 20x faster than sh/curl/jq at 1,000: {} ({x:.1}x: {:.1} s vs {w:.3} s)", verdict(x >= 20.0), b.usage.wall.as_secs_f64());
                }
                None => println!("- at least 20x faster than sh/curl/jq at 1,000: not measured (BENCH_BASELINE_SIZES)"),
            }
        }
        None => println!("- 1,000-secret targets: not measured (BENCH_SIZES)"),
    }
    match find("handover", 10_000) {
        Some(r) => {
            let m = r.usage.max_rss_kib as f64 / 1024.0;
            println!(
                "- peak RSS under 32 MiB at 10,000 secrets: {} ({m:.1} MiB, largest step)",
                verdict(m < 32.0)
            );
        }
        None => println!("- peak RSS at 10,000: not measured (BENCH_SIZES)"),
    }
    let slowest = startup.values().max().copied().unwrap_or_default();
    println!(
        "- start-up to first request under 5 ms: {} (slowest median {:.2} ms)",
        verdict(slowest < Duration::from_millis(5)),
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "- each stripped binary under 8 MiB: {} (largest {:.2} MiB)",
        verdict(max_size < 8 * 1024 * 1024),
        max_size as f64 / MIB
    );
}
