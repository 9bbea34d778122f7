//! The test environment's Kubernetes API: kube-server behind the recording, fault-injecting
//! proxy. Steps reach it through the proxy (their kubeconfig names it), so faults meet them
//! and every request they make is recorded; OpenBao's TokenReviews and the tests' own
//! set-up go to kube-server directly, neither faulted nor recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use fault_injection::{Dialect, Fault};
use kube_server::RequestKey;

pub struct TestKube {
    pub server: kube_server::Handle,
    pub proxy: fault_injection::Handle,
}

impl TestKube {
    pub async fn start(forbidden_namespaces: Vec<String>) -> TestKube {
        let server = kube_server::start(kube_server::Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            forbidden_namespaces,
        })
        .await
        .expect("kube-server");
        let proxy = fault_injection::start(fault_injection::Options::new(
            server.url(),
            Dialect::Kubernetes,
        ))
        .await
        .expect("kube proxy");
        TestKube { server, proxy }
    }

    /// Where steps reach the API: the proxy.
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// The API server itself, for OpenBao's `kubernetes_host`: its TokenReviews are Vault's
    /// business, not a step's request.
    pub fn server_url(&self) -> String {
        self.server.url()
    }

    /// A kubeconfig at the proxy, as the steps get it.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        self.server.write_kubeconfig(path, namespace)?;
        self.point_at_proxy(path)
    }

    /// A kubeconfig at the proxy whose bearer is `token`, so kube-server's RBAC view
    /// ([`kube_server::Handle::accesses`]) tells this caller apart.
    pub fn write_kubeconfig_as(
        &self,
        path: &Path,
        namespace: &str,
        token: &str,
    ) -> std::io::Result<()> {
        self.server.write_kubeconfig_as(path, namespace, token)?;
        self.point_at_proxy(path)
    }

    fn point_at_proxy(&self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        std::fs::write(path, text.replace(&self.server.url(), &self.proxy.url()))
    }

    pub fn client(&self) -> kube::Client {
        self.server.client()
    }

    pub fn issue_service_account_token(&self, namespace: &str, service_account: &str) -> String {
        self.server
            .issue_service_account_token(namespace, service_account)
    }

    /// A projected token for `audience` only (what a pod's `serviceAccountToken` volume
    /// holds): Vault's Kubernetes auth accepts it for roles with that `audience`.
    pub fn issue_token_for(
        &self,
        namespace: &str,
        service_account: &str,
        audience: &str,
    ) -> String {
        self.server.issue_service_account_token_with_audiences(
            namespace,
            service_account,
            &[audience],
        )
    }

    pub fn accesses(&self) -> Vec<kube_server::ApiAccess> {
        self.server.accesses()
    }

    pub fn forbid_namespace(&self, ns: &str) {
        self.server.forbid_namespace(ns)
    }

    pub fn allow_namespace(&self, ns: &str) {
        self.server.allow_namespace(ns)
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.proxy.set_fault(fault)
    }

    /// A fault for requests of one HTTP method only (`Some("PATCH")`); others pass.
    pub fn set_fault_for(&self, method: Option<&str>, fault: Option<Fault>) {
        self.proxy.set_fault_for(method, fault)
    }

    pub fn fault(&self) -> Option<Fault> {
        self.proxy.fault()
    }

    /// Requests the steps made since start or the last reset, discovery included.
    pub fn request_count(&self) -> u64 {
        self.proxy.request_count()
    }

    /// `(method, path+query)` of every request the steps made, in order; never bodies.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.proxy.requests()
    }

    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.proxy.requests_at()
    }

    /// Resource requests counted by `(method, resource, namespace)`; namespace is empty for
    /// cluster-scoped requests such as a LIST across all namespaces.
    pub fn request_counts(&self) -> BTreeMap<RequestKey, u64> {
        let mut counts = BTreeMap::new();
        for (method, path) in self.requests() {
            if let Some(key) = kube_server::request_key(&method, &path) {
                *counts.entry(key).or_default() += 1;
            }
        }
        counts
    }

    /// One entry of [`TestKube::request_counts`], 0 when absent.
    pub fn count(&self, method: &str, resource: &str, namespace: &str) -> u64 {
        let key = (method.into(), resource.into(), namespace.into());
        self.request_counts().get(&key).copied().unwrap_or(0)
    }

    /// Forgets the recorded requests and RBAC accesses.
    pub fn reset_requests(&self) {
        self.proxy.reset_requests();
        self.server.reset_accesses();
    }

    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
        self.server.shutdown().await;
    }
}
