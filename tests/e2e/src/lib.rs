//! The end-to-end test environment: the step binaries run as processes, as Argo runs them,
//! against loopback servers: the Kubernetes API (kube-server) and real OpenBao (`openbao`),
//! each behind the recording, fault-injecting proxy (`fault-injection`).

pub mod argo;
pub mod cluster;
pub mod eso;
pub mod gitops;
pub mod openbao;
pub mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::Value;

/// The namespace of the steps' ServiceAccounts, as the shipped Vault roles bind them.
pub const STEP_SA_NAMESPACE: &str = "secops";

/// The audience the shipped Vault roles accept (`audience`), and the templates' projected
/// tokens carry.
pub const VAULT_AUDIENCE: &str = "vault";

/// The shipped Vault role (and ServiceAccount) a step logs in with (`templates/vault/roles`).
pub fn role_of(step: &str) -> &'static str {
    match step {
        "write-vault" => "secops-write-vault",
        "mark-consumed" => "secops-mark-consumed",
        "rotate" => "secops-rotate",
        "push-secret" => "secops-push-secret",
        "audit-authority" => "secops-audit-authority",
        other => panic!("{other} logs in to no Vault role"),
    }
}

/// Every shipped role a step logs in with.
pub const STEP_ROLES: [&str; 6] = [
    "secops-write-vault",
    "secops-mark-consumed",
    "secops-rotate",
    "secops-push-secret",
    "secops-audit-authority",
    "secops-handover-batch",
];

/// The test CA every `Env` Vault's certificate (vault.test, localhost, 127.0.0.1) is signed
/// by: one per test process. Steps get it as VAULT_CACERT, as a pod would from a mount.
pub fn vault_pki() -> &'static fault_injection::TestPki {
    static PKI: std::sync::OnceLock<fault_injection::TestPki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let names = ["vault.test", "localhost", "127.0.0.1"];
        fault_injection::TestPki::generate("secops test Vault CA", &names).expect("test PKI")
    })
}

/// Where the step binaries are: SECOPS_BIN_DIR, else the cargo target dir of this test.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SECOPS_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    // Next to this binary (the demo), or one level up from target/debug/deps (a test).
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let p = [dir.join(name), dir.parent().expect("target dir").join(name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not built: run `cargo build --bins` first (make test does)")
        });
    p
}

/// The cluster name an [`Env`] runs its steps with.
pub const DEFAULT_CLUSTER: &str = "cluster-a";

pub struct Env {
    pub kube: cluster::TestKube,
    /// Shared by every cluster of a fleet ([`Env::join_fleet`]).
    pub vault: std::sync::Arc<vault::TestVault>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    /// `--cluster-name` of every step this Env runs (the knob an install sets).
    pub cluster_name: String,
    /// The Vault Kubernetes auth mount this cluster's steps log in with.
    pub auth_mount: String,
}

/// What one step process did.
#[derive(Debug)]
pub struct StepRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub outputs_dir: PathBuf,
}

impl StepRun {
    /// The audit events (stdout lines; a `--dry-run`'s `plan: ` lines are not events).
    pub fn audit(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.starts_with("plan: "))
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// A `--dry-run`'s human-readable plan: its `plan: ` lines on stdout.
    pub fn plan(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("plan: "))
            .collect()
    }

    pub fn output(&self, name: &str) -> &str {
        self.outputs.get(name).unwrap_or_else(|| {
            panic!(
                "no output {name}; have {:?}; stderr: {}",
                self.outputs.keys(),
                self.stderr
            )
        })
    }

    pub fn references(&self) -> Vec<Value> {
        serde_json::from_str(self.output("references.json")).expect("references.json")
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Builder for one step invocation.
pub struct Step<'a> {
    env: &'a Env,
    name: &'static str,
    args: Vec<String>,
    envs: BTreeMap<String, String>,
    vault: bool,
}

impl<'a> Step<'a> {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.envs.insert(k.into(), v.into());
        self
    }

    /// The test Vault's CA as a step gets it (`VAULT_CACERT`), for steps run without the
    /// Vault defaults against the default (TLS) Vault.
    pub fn vault_cacert(self) -> Self {
        let ca = self.env.dir.path().join("vault-ca.pem");
        self.env("VAULT_CACERT", ca.display().to_string())
    }

    /// Do not point the step at the test Vault (caller configures Vault itself).
    pub fn no_vault_defaults(mut self) -> Self {
        self.vault = false;
        self
    }

    pub async fn run(self) -> StepRun {
        self.run_inner(false, &mut 0).await
    }

    /// [`Step::run`], and the process's peak resident set in KiB (`VmHWM`, sampled every
    /// 2 ms while it runs).
    pub async fn run_measured(self) -> (StepRun, u64) {
        let mut peak = 0;
        let run = self.run_inner(true, &mut peak).await;
        (run, peak)
    }

    async fn run_inner(self, measure: bool, peak_kib: &mut u64) -> StepRun {
        let out_dir = tempfile::Builder::new()
            .prefix(self.name)
            .tempdir_in(self.env.dir.path())
            .expect("outputs dir")
            .keep();
        let mut cmd = tokio::process::Command::new(bin(self.name));
        cmd.env_clear()
            .env("SECOPS_LOG", "info")
            // Retries inside the run stay on, with short waits so faulted tests stay quick.
            .env("SECOPS_RETRY_BASE_DELAY", "5ms")
            .env("SECOPS_RETRY_MAX_DELAY", "2s")
            .env("SECOPS_CLUSTER_NAME", &self.env.cluster_name)
            .arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--outputs-dir")
            .arg(&out_dir)
            .args([
                "--workflow-name",
                "handover-test",
                "--workflow-uid",
                "wf-uid-1",
            ]);
        if self.vault && self.name != "read-bootstrap" {
            let role = role_of(self.name);
            cmd.env("VAULT_ADDR", self.env.vault.url())
                .env("VAULT_CACERT", self.env.dir.path().join("vault-ca.pem"))
                .env("SECOPS_VAULT_AUTH", "kubernetes")
                .env("SECOPS_VAULT_ROLE", role)
                .arg("--service-account-token-file")
                .arg(self.env.dir.path().join(format!("{role}.token")));
        }
        // A fleet's second cluster logs in through its own mount (else each method's default).
        if self.env.auth_mount != "kubernetes" {
            cmd.env("SECOPS_VAULT_AUTH_MOUNT", &self.env.auth_mount);
        }
        cmd.envs(&self.envs).args(&self.args);
        let out = if measure {
            let child = cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn step");
            let status = format!("/proc/{}/status", child.id().expect("pid"));
            let wait = child.wait_with_output();
            tokio::pin!(wait);
            loop {
                // VmHWM only grows: its last reading before the exit is the peak so far.
                if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                }) {
                    *peak_kib = kib;
                }
                tokio::select! {
                    out = &mut wait => break out.expect("run step"),
                    _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
                }
            }
        } else {
            cmd.output().await.expect("run step")
        };
        let mut outputs = BTreeMap::new();
        for e in std::fs::read_dir(&out_dir).expect("read outputs").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            outputs.insert(name, std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        StepRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs,
            outputs_dir: out_dir,
        }
    }
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(Vec::new()).await
    }

    pub async fn start_with(forbidden_namespaces: Vec<String>) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let kube = cluster::TestKube::start(forbidden_namespaces).await;
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "default")
            .expect("kubeconfig");
        std::fs::write(dir.path().join("vault-ca.pem"), &vault_pki().ca_pem).unwrap();
        let vault = std::sync::Arc::new(vault::TestVault::start(&kube).await);
        let env = Env {
            client: kube.client(),
            kube,
            vault,
            dir,
            kubeconfig,
            cluster_name: DEFAULT_CLUSTER.to_owned(),
            auth_mount: "kubernetes".to_owned(),
        };
        env.write_service_account_tokens();
        env
    }

    /// Another cluster of a fleet sharing this Env's Vault: its own kube-server (its own
    /// Secrets, uids and Events), kubeconfig and ServiceAccount tokens, its own Kubernetes auth
    /// mount `kubernetes-<name>` in the same OpenBao (the shipped roles, as a fleet's Vault
    /// has one mount per cluster) and `--cluster-name <name>`.
    pub async fn join_fleet(&self, name: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let kube = cluster::TestKube::start(Vec::new()).await;
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "default")
            .expect("kubeconfig");
        std::fs::write(dir.path().join("vault-ca.pem"), &vault_pki().ca_pem).unwrap();
        let auth_mount = format!("kubernetes-{name}");
        self.vault
            .add_kubernetes_auth(&auth_mount, &kube)
            .await
            .expect("kubernetes auth for the second cluster");
        let env = Env {
            client: kube.client(),
            kube,
            vault: self.vault.clone(),
            dir,
            kubeconfig,
            cluster_name: name.to_owned(),
            auth_mount,
        };
        env.write_service_account_tokens();
        env
    }

    /// A projected ServiceAccount token per shipped role, where the steps read them.
    fn write_service_account_tokens(&self) {
        for role in STEP_ROLES {
            std::fs::write(
                self.dir.path().join(format!("{role}.token")),
                self.kube
                    .issue_token_for(STEP_SA_NAMESPACE, role, VAULT_AUDIENCE),
            )
            .unwrap();
        }
    }

    /// Cluster loss: the Kubernetes API is replaced by a fresh, empty one on a new port (every
    /// Secret, Event and ExternalSecret gone; objects created again get new uids) and the
    /// kubeconfig and client point at it. Vault keeps its state.
    pub async fn rebuild_cluster(&mut self) {
        let fresh = cluster::TestKube::start(Vec::new()).await;
        fresh
            .write_kubeconfig(&self.kubeconfig, "default")
            .expect("kubeconfig");
        self.client = fresh.client();
        let lost = std::mem::replace(&mut self.kube, fresh);
        lost.shutdown().await;
        // The new cluster's API server reviews the logins, and issues the new pods' tokens.
        self.vault
            .point_kubernetes_auth_at(&self.kube)
            .await
            .expect("kubernetes auth");
        self.write_service_account_tokens();
    }

    pub fn step(&self, name: &'static str) -> Step<'_> {
        Step {
            env: self,
            name,
            args: Vec::new(),
            envs: BTreeMap::new(),
            vault: true,
        }
    }

    /// A raw call to OpenBao as root (for seeding and assertions, bypassing the steps and
    /// the proxy: neither faulted nor recorded).
    pub async fn vault_root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.vault.bao.root(method, path, body).await
    }

    /// KV v2 secret as stored: (data, metadata) of the latest or given version.
    pub async fn vault_kv2(&self, path: &str) -> Option<(Value, Value)> {
        let (st, body) = self
            .vault_root("GET", &format!("secret/data/{path}"), None)
            .await;
        (st == 200).then(|| {
            (
                body["data"]["data"].clone(),
                body["data"]["metadata"].clone(),
            )
        })
    }

    pub async fn vault_versions(&self, path: &str) -> u64 {
        let (st, body) = self
            .vault_root("GET", &format!("secret/metadata/{path}"), None)
            .await;
        if st == 404 {
            return 0;
        }
        body["data"]["current_version"]
            .as_u64()
            .unwrap_or_else(|| panic!("metadata of {path}: {st} {body}"))
    }

    pub async fn vault_custom_metadata(&self, path: &str) -> BTreeMap<String, String> {
        let (_, body) = self
            .vault_root("GET", &format!("secret/metadata/{path}"), None)
            .await;
        serde_json::from_value(body["data"]["custom_metadata"].clone()).unwrap_or_default()
    }

    /// The bytes of every key as a consumer would get them back: base64 keys decoded.
    pub async fn vault_bytes(&self, path: &str) -> BTreeMap<String, Vec<u8>> {
        let (data, _) = self.vault_kv2(path).await.expect("vault secret");
        let meta = self.vault_custom_metadata(path).await;
        let b64: Vec<String> = meta
            .iter()
            .filter(|(k, _)| k.starts_with("secops.io/base64-keys"))
            .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        data.as_object()
            .expect("data object")
            .iter()
            .map(|(k, v)| {
                let s = v.as_str().expect("string value");
                let bytes = if b64.contains(k) {
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .expect("base64")
                } else {
                    s.as_bytes().to_vec()
                };
                (k.clone(), bytes)
            })
            .collect()
    }

    pub fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn seed(&self, s: SeedSecret) -> Secret {
        let secret = s.build();
        let ns = secret.metadata.namespace.clone().unwrap();
        self.secrets(&ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("seed secret")
    }

    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.secrets(ns).get_opt(name).await.expect("get secret")
    }

    pub async fn events(&self, ns: &str) -> Vec<Event> {
        let mut events = Api::<Event>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items;
        // In the order they happened (names are generated, so listing order is not).
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
    }

    /// read-bootstrap over `namespaces`; the references it selected, as passed to later steps.
    pub async fn discover(&self, namespaces: &str) -> Vec<String> {
        let rb = self
            .step("read-bootstrap")
            .args(["--namespaces", namespaces])
            .run()
            .await;
        rb.references().iter().map(Value::to_string).collect()
    }

    /// The one reference read-bootstrap finds in `ns`.
    pub async fn only_reference(&self, ns: &str) -> String {
        let refs = self.discover(ns).await;
        assert_eq!(refs.len(), 1, "{refs:?}");
        refs[0].clone()
    }

    /// write-vault for one reference, with the test Vault.
    pub async fn write_vault(&self, reference: &str) -> StepRun {
        self.step("write-vault")
            .args(["--reference", reference])
            .run()
            .await
    }

    /// mark-consumed for one reference; `version` as write-vault reported it (or latest).
    pub async fn mark_consumed(
        &self,
        reference: &str,
        version: Option<&str>,
        mode: &str,
    ) -> StepRun {
        let mut step = self
            .step("mark-consumed")
            .args(["--reference", reference, "--mode", mode]);
        if let Some(v) = version {
            step = step.args(["--vault-version", v]);
        }
        step.run().await
    }

    /// Runs the whole chain for every reference read-bootstrap finds in `namespaces`.
    pub async fn handover(&self, namespaces: &str, mode: &str) -> Vec<(StepRun, StepRun)> {
        let rb = self
            .step("read-bootstrap")
            .args(["--namespaces", namespaces])
            .run()
            .await;
        rb.assert_code(0);
        let mut runs = Vec::new();
        for r in rb.references() {
            let r = r.to_string();
            let wv = self.write_vault(&r).await;
            wv.assert_code(0);
            let mc = self
                .mark_consumed(&r, Some(wv.output("vault-version")), mode)
                .await;
            mc.assert_code(0);
            runs.push((wv, mc));
        }
        runs
    }
}

/// A second Vault, a fresh raft OpenBao: uninitialised and sealed, as a new Vault is before
/// init-authority runs (plain HTTP, behind a recording proxy; `Env`'s own Vault stays
/// initialised).
pub async fn uninitialized_vault() -> vault::TestVault {
    vault::TestVault::fresh().await
}

pub async fn vault_call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let ca = reqwest::Certificate::from_pem(vault_pki().ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(m, format!("{base}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("vault request");
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A bootstrap Secret to create.
#[derive(Clone)]
pub struct SeedSecret {
    pub namespace: String,
    pub name: String,
    pub type_: String,
    pub data: Vec<(String, Vec<u8>)>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub immutable: bool,
}

impl SeedSecret {
    /// A labeled bootstrap Secret of type Opaque.
    pub fn bootstrap(ns: &str, name: &str) -> Self {
        SeedSecret {
            namespace: ns.into(),
            name: name.into(),
            type_: "Opaque".into(),
            data: Vec::new(),
            labels: BTreeMap::from([("secops.io/class".into(), "bootstrap".into())]),
            annotations: BTreeMap::new(),
            immutable: false,
        }
    }

    pub fn typed(mut self, t: &str) -> Self {
        self.type_ = t.into();
        self
    }

    pub fn kv(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.data.push((k.into(), v.as_ref().to_vec()));
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn unlabeled(mut self) -> Self {
        self.labels.clear();
        self
    }

    pub fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    pub fn bytes(&self) -> BTreeMap<String, Vec<u8>> {
        self.data.iter().cloned().collect()
    }

    pub fn build(&self) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                annotations: Some(self.annotations.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(self.type_.clone()),
            immutable: self.immutable.then_some(true),
            data: Some(
                self.data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }
}

/// The data of a live Secret as bytes.
pub fn secret_bytes(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

pub fn label<'a>(s: &'a Secret, k: &str) -> Option<&'a str> {
    s.metadata.labels.as_ref()?.get(k).map(String::as_str)
}

pub fn annotation<'a>(s: &'a Secret, k: &str) -> Option<&'a str> {
    s.metadata.annotations.as_ref()?.get(k).map(String::as_str)
}
