//! `vault-emulator`: the emulator as a process, for step binaries run by hand or from
//! scripts. Prints `listening on http://ADDR` once it accepts connections and runs
//! until interrupted. `/v1/sys/emulator/...` (root token) replaces the `Handle`
//! methods a process cannot call.

use clap::Parser;
use std::io::Write as _;
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(
    name = "vault-emulator",
    about = "Test-only Vault API emulator on loopback HTTP or HTTPS"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8200")]
    listen: SocketAddr,
    /// The root token.
    #[arg(long, env = "VAULT_EMULATOR_ROOT_TOKEN", default_value = "root")]
    root_token: String,
    /// Mount path of a KV version 2 engine (repeatable).
    #[arg(long = "kv2-mount", default_values_t = ["secret".to_string()])]
    kv2_mounts: Vec<String>,
    /// Mount path of the Kubernetes auth method.
    #[arg(long, default_value = "kubernetes")]
    kubernetes_auth_mount: String,
    /// The unseal key `sys/unseal` accepts (hex or base64); random when not given.
    #[arg(long, env = "VAULT_EMULATOR_UNSEAL_KEY")]
    unseal_key: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key-file), as Vault's
    /// `tls_cert_file`.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = vault_emulator::Options::default();
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(vault_emulator::TlsIdentity {
            cert_chain_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        }),
        _ => None,
    };
    let handle = vault_emulator::start(vault_emulator::Options {
        listen: args.listen,
        root_token: args.root_token,
        kv2_mounts: args.kv2_mounts,
        kubernetes_auth_mount: args.kubernetes_auth_mount,
        unseal_key: args.unseal_key.unwrap_or(defaults.unseal_key),
        tls,
        initialized: true,
    })
    .await?;
    let mut stdout = std::io::stdout();
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
