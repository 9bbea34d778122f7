//! Start-up time of each step binary: spawn to the first request bytes at a loopback
//! listener.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Ctx, STEPS};

/// Median time from spawn to the first request bytes arriving at a loopback listener that
/// stands in for both the Kubernetes API and Vault.
pub(crate) fn startup_times(
    ctx: &Ctx,
    bins: &BTreeMap<&str, PathBuf>,
    runs: usize,
) -> anyhow::Result<BTreeMap<&'static str, Duration>> {
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
    // With a cluster CA, as every in-cluster configuration has (the ServiceAccount's
    // ca.crt). Without one, kube-rs would load the host's whole trust store (rustls platform
    // verifier) at start-up: a cost a pod never pays, and a scratch image has no store. Any
    // CA will do: the listener speaks plain HTTP, so nothing is verified.
    let server_line = format!("server: \"{url}\"");
    let with_ca = real.replace(&ctx.servers.str("kube"), &url).replace(
        &server_line,
        &format!(
            "{server_line}\n    certificate-authority: \"{}\"",
            ctx.vault_ca()
        ),
    );
    anyhow::ensure!(
        with_ca.contains("certificate-authority"),
        "no server line in the kubeconfig"
    );
    std::fs::write(&kubeconfig, with_ca)?;
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
