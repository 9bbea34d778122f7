//! `kube-server`: the test API server as a process, for running step binaries by hand
//! or from scripts. Prints `listening on http://ADDR` once it accepts connections,
//! after a `service-account-token NS/NAME TOKEN` line per `--service-account-token`.

use clap::Parser;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "kube-server",
    about = "Test-only Kubernetes API server on loopback HTTP"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the server here once listening.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Namespace of the written kubeconfig's context.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Deny every request into this namespace with 403 (repeatable).
    #[arg(long = "forbid-namespace")]
    forbid_namespaces: Vec<String>,
    /// Issue a token for this service account, NAMESPACE/NAME, and print it (repeatable):
    /// to log in to a Vault/OpenBao whose Kubernetes auth reviews tokens here.
    #[arg(long = "service-account-token", value_parser = service_account)]
    service_accounts: Vec<(String, String)>,
}

fn service_account(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let handle = kube_server::start(kube_server::Options {
        listen: args.listen,
        forbidden_namespaces: args.forbid_namespaces,
    })
    .await?;
    if let Some(path) = &args.kubeconfig_out {
        handle.write_kubeconfig(path, &args.namespace)?;
    }
    let mut stdout = std::io::stdout();
    for (ns, name) in &args.service_accounts {
        let token = handle.issue_service_account_token(ns, name);
        writeln!(stdout, "service-account-token {ns}/{name} {token}")?;
    }
    writeln!(stdout, "listening on {}", handle.url())?;
    stdout.flush()?;
    wait_for_signal().await?;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
