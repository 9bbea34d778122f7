//! Shared setup: every test talks to the server the way a step binary does, through a
//! kube::Client built from a kubeconfig file written by the server.

#![allow(dead_code)]

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_server::{Handle, Options};

pub struct Env {
    pub server: Handle,
    /// Client from the written kubeconfig; its default namespace is the context's.
    pub client: kube::Client,
    _dir: tempfile::TempDir,
}

pub async fn env(namespace: &str, forbidden: &[&str]) -> Env {
    let server = kube_server::start(Options {
        forbidden_namespaces: forbidden.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    })
    .await
    .expect("server starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&path, namespace)
        .expect("kubeconfig written");
    let client = client_from(&path).await;
    Env {
        server,
        client,
        _dir: dir,
    }
}

pub async fn client_from(path: &std::path::Path) -> kube::Client {
    // Both rustls providers are compiled in (kube-fake-client brings aws-lc-rs): pick ring, as
    // the server does, or a test run in a process of its own (nextest) cannot build a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// `(code, reason, message)` of the API error a client sees.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => {
            (status.code, status.reason.clone(), status.message.clone())
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}
