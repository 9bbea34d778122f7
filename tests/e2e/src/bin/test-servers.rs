//! `test-servers`: the loopback test servers as one process, for `make image-test`, which runs
//! the step images' binaries in a chroot as a pod would run them. It starts the Kubernetes
//! API (kube-server behind a TLS front, as a pod reaches it in-cluster) and OpenBao behind
//! a TLS proxy, with the shipped Vault policies and roles (`Env` installs them), seeds one Secret per
//! scenario and writes into `--dir`:
//!
//! - `servers.env`: `KUBE_PORT` (TLS) and `VAULT_PORT` (TLS), for `kube.test` / `vault.test`;
//! - `cluster-ca.pem`, `vault-ca.pem`: the two test CAs (service-account mount, VAULT_CACERT);
//! - `<service-account>.token`: a ServiceAccount JWT per step role (the kubelet's mount);
//! - `ready` once all of that is in place.
//!
//! On SIGTERM it writes `final.env` (what Kubernetes and Vault hold afterwards) and exits.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{ensure, Context as _};
use e2e::{label, Env, SeedSecret};
use fault_injection::TestPki;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// Where the step pods' ServiceAccounts live (the roles in templates/vault bind to it).
const SA_NAMESPACE: &str = "secops";
const SERVICE_ACCOUNTS: [&str; 4] = [
    "secops-write-vault",
    "secops-mark-consumed",
    "secops-rotate",
    "secops-push-secret",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir: PathBuf = match std::env::args().skip_while(|a| a != "--dir").nth(1) {
        Some(d) => d.into(),
        None => anyhow::bail!("usage: test-servers --dir DIR"),
    };
    let env = Env::start().await;
    seed(&env).await?;

    // The cluster's own CA, distinct from Vault's, so each trust path is proven separately.
    let cluster = TestPki::generate(
        "secops test cluster CA",
        &["kube.test", "kubernetes.default.svc", "127.0.0.1"],
    )?;
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let kube_port = front.local_addr()?.port();
    tokio::spawn(tls_front(
        front,
        cluster.server.server_config()?,
        env.kube.addr(),
    ));

    write(&dir.join("cluster-ca.pem"), &cluster.ca_pem)?;
    write(&dir.join("vault-ca.pem"), &e2e::vault_pki().ca_pem)?;
    for sa in SERVICE_ACCOUNTS {
        let token = env
            .kube
            .issue_token_for(SA_NAMESPACE, sa, e2e::VAULT_AUDIENCE);
        write(&dir.join(format!("{sa}.token")), &token)?;
    }
    write(
        &dir.join("servers.env"),
        &format!(
            "KUBE_PORT={kube_port}\nVAULT_PORT={}\n",
            env.vault.addr().port()
        ),
    )?;
    write(&dir.join("ready"), "")?;
    println!(
        "ready: kube.test:{kube_port} vault.test:{}",
        env.vault.addr().port()
    );
    std::io::stdout().flush()?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {},
    }
    write(&dir.join("final.env"), &final_state(&env).await)?;
    Ok(())
}

/// One Secret per scenario: a bootstrap Secret to hand over, an internal one to push, and
/// a Vault secret to rotate.
async fn seed(env: &Env) -> anyhow::Result<()> {
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "image-test-pw"))
        .await;
    env.seed(
        SeedSecret::bootstrap("apps", "api")
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("token", "image-test-token"),
    )
    .await;
    let (st, body) = env
        .vault_root(
            "POST",
            "secret/data/apps/rotating",
            Some(json!({"data": {"password": "before-rotation", "user": "app"}})),
        )
        .await;
    ensure!(st < 300, "seeding secret/apps/rotating: {st} {body}");
    Ok(())
}

/// What the scenarios left behind, as `name=value` lines for the shell.
async fn final_state(env: &Env) -> String {
    let db = env.secret("apps", "db").await;
    let state = db
        .as_ref()
        .and_then(|s| label(s, "secops.io/state"))
        .unwrap_or("none");
    format!(
        "vault_apps_db_versions={}\nvault_internal_apps_api_versions={}\nvault_apps_rotating_versions={}\nkube_apps_db_state={state}\n",
        env.vault_versions("apps/db").await,
        env.vault_versions("internal/apps/api").await,
        env.vault_versions("apps/rotating").await,
    )
}

/// TLS in front of the plain-HTTP kube-server: the API server as pods reach it.
async fn tls_front(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    to: std::net::SocketAddr,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            if let Ok(mut plain) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            }
        });
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
