//! OpenBao, the tests' Vault: the real server (Vault's open fork, same HTTP API), started as a
//! process per test from the pinned binary `tests/fetch-openbao.sh` caches under `target/`.
//!
//! - [`OpenBao::dev`]: an in-memory dev server (KV v2 at `secret/`, root token `root`, one
//!   unseal key), up in a fraction of a second: the Vault of every KV test.
//! - [`OpenBao::raft`]: a real, uninitialised server on raft storage, for `sys/init`,
//!   seal/unseal and restarts (a restarted raft server comes back sealed).
//!
//! Both declare a file audit device (OpenBao only takes audit devices from its config): one
//! JSON line per request and response, which tests read back to check who did what
//! ([`OpenBao::audit_requests`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::vault_call;

/// The OpenBao binary: `SECOPS_BAO`, else the pinned one fetched (at most once) into `target/`.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SECOPS_BAO") {
            return PathBuf::from(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fetch-openbao.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: OpenBao is needed for the tests (make openbao)",
            script.display()
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One OpenBao server process and what a test needs to drive it.
pub struct OpenBao {
    /// Behind a lock so a test holding `&OpenBao` can restart it.
    child: std::sync::Mutex<Option<Child>>,
    /// `http://127.0.0.1:PORT` (plain HTTP: TLS, where a test wants it, is the proxy's).
    pub url: String,
    port: u16,
    /// `root` on a dev server; the generated one after [`OpenBao::init`] on a raft server.
    pub root_token: String,
    pub unseal_keys: Vec<String>,
    pub dir: tempfile::TempDir,
    dev: bool,
    /// The file audit device's log: in `dir`, unless a test gives two servers one path (a
    /// restored snapshot carries the audit table, which must match the server's config).
    audit_log: Option<PathBuf>,
}

impl OpenBao {
    /// A dev server: in memory, unsealed, KV v2 at `secret/`, root token `root`.
    pub async fn dev() -> OpenBao {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("audit.hcl"),
            audit_stanza(&dir.path().join("audit.log")),
        )
        .unwrap();
        let mut bao = OpenBao {
            child: Default::default(),
            url: String::new(),
            port: 0,
            root_token: "root".into(),
            unseal_keys: Vec::new(),
            dir,
            dev: true,
            audit_log: None,
        };
        bao.start().await;
        // The banner with the key may follow the first answers by a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(bao.dir.path().join("bao.log")).unwrap_or_default();
            bao.unseal_keys = log
                .lines()
                .filter_map(|l| l.strip_prefix("Unseal Key: "))
                .map(|k| k.trim().to_owned())
                .collect();
            if !bao.unseal_keys.is_empty() {
                return bao;
            }
            assert!(
                Instant::now() < deadline,
                "dev server printed no unseal key"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh raft server: uninitialised and sealed, as a new Vault is before anyone runs
    /// `init-authority`. `root_token` and `unseal_keys` stay empty until [`OpenBao::init`].
    pub async fn raft() -> OpenBao {
        Self::raft_with_audit_log(None).await
    }

    /// [`OpenBao::raft`] whose audit device writes to `audit_log` (the same server
    /// configuration in two clusters, as a restore from one into the other needs).
    pub async fn raft_with_audit_log(audit_log: Option<PathBuf>) -> OpenBao {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bao = OpenBao {
            child: Default::default(),
            url: String::new(),
            port: 0,
            root_token: String::new(),
            unseal_keys: Vec::new(),
            dir,
            dev: false,
            audit_log,
        };
        bao.start().await;
        bao
    }

    /// A raft server initialised with one key share and unsealed.
    pub async fn raft_unsealed() -> OpenBao {
        let mut bao = Self::raft().await;
        bao.init(1, 1).await;
        bao.unseal().await;
        bao
    }

    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// `sys/init` with throwaway shares the test keeps.
    pub async fn init(&mut self, shares: u32, threshold: u32) {
        let (st, init) = vault_call(
            &self.url,
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": shares, "secret_threshold": threshold})),
        )
        .await;
        assert_eq!(st, 200, "init: {init}");
        self.root_token = init["root_token"].as_str().expect("root_token").into();
        self.unseal_keys = init["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k.as_str().expect("key").to_owned())
            .collect();
    }

    async fn start(&mut self) {
        for attempt in 0.. {
            self.port = if self.port == 0 || attempt > 0 {
                free_port()
            } else {
                self.port
            };
            self.url = format!("http://127.0.0.1:{}", self.port);
            // A raft config names its ports: a retry on other ports writes a new one.
            let _ = std::fs::remove_file(self.dir.path().join("bao.hcl"));
            if self.spawn().await {
                return;
            }
            assert!(attempt < 4, "OpenBao did not start: {}", self.log_tail());
        }
    }

    /// Stops the process and starts it again on the same storage and port: a raft server
    /// comes back sealed, as after a pod restart (a dev server comes back empty).
    pub async fn restart(&self) {
        self.stop();
        assert!(
            self.spawn().await,
            "OpenBao did not restart: {}",
            self.log_tail()
        );
    }

    /// Kills the server: its port then refuses connections.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process on `self.port`; false when it exited (e.g. the port was taken).
    async fn spawn(&self) -> bool {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("bao.log"))
            .unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("server").arg("-log-level=warn");
        if self.dev {
            cmd.arg("-dev")
                .arg("-dev-root-token-id=root")
                .arg(format!("-dev-listen-address=127.0.0.1:{}", self.port))
                .arg(format!("-config={}", d.join("audit.hcl").display()));
        } else {
            let config = d.join("bao.hcl");
            if !config.exists() {
                std::fs::create_dir_all(d.join("raft")).unwrap();
                let audit = self.audit_path();
                std::fs::write(&config, raft_config(d, &audit, self.port, free_port())).unwrap();
            }
            cmd.arg(format!("-config={}", config.display()));
        }
        // Nothing of the test's environment (no VAULT_* or BAO_* variables), but a PATH: dev
        // mode runs `sh` to expand its config paths.
        let mut child = cmd
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.answers().await {
                *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not answer: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether `sys/seal-status` answers (any state: sealed and uninitialised servers too).
    async fn answers(&self) -> bool {
        let Ok(resp) = reqwest::get(format!("{}/v1/sys/seal-status", self.url)).await else {
            return false;
        };
        let ready = resp.status().is_success();
        // A dev server answers before it has unsealed itself and mounted `secret/`.
        ready && (!self.dev || !self.is_sealed().await)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub async fn seal_status(&self) -> Value {
        let (st, body) = vault_call(&self.url, "", "GET", "sys/seal-status", None).await;
        assert_eq!(st, 200, "seal-status: {body}");
        body
    }

    pub async fn is_sealed(&self) -> bool {
        self.seal_status().await["sealed"] != json!(false)
    }

    pub async fn is_initialized(&self) -> bool {
        self.seal_status().await["initialized"] == json!(true)
    }

    /// Seals it through the API, as an operator would (`bao operator seal`).
    pub async fn seal(&self) {
        let (st, body) = self.root("PUT", "sys/seal", None).await;
        assert!(st < 300, "seal: {st} {body}");
    }

    /// Submits the test's key shares until it is unsealed.
    pub async fn unseal(&self) {
        for key in &self.unseal_keys {
            let (st, body) = vault_call(
                &self.url,
                "",
                "PUT",
                "sys/unseal",
                Some(json!({"key": key})),
            )
            .await;
            assert_eq!(st, 200, "unseal: {body}");
            if body["sealed"] == json!(false) {
                return;
            }
        }
        panic!("the test's unseal keys did not unseal OpenBao");
    }

    /// Waits until the node is unsealed and active (`sys/health` 200): right after an unseal a
    /// raft node still elects itself leader and answers reads with 500 "local node not active".
    pub async fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (st, body) = vault_call(&self.url, "", "GET", "sys/health", None).await;
            if st == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not become active within 120 s: {st} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new root token from key shares, as an operator recovers a Vault whose root token is
    /// revoked (the legacy unauthenticated `sys/generate-root`, enabled in the raft config;
    /// the token comes back XORed with a one-time password).
    pub async fn generate_root(&self, keys: &[String]) -> String {
        use base64::Engine as _;
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempt = loop {
            // Right after an unseal the raft node may not be active yet.
            let (st, body) = vault_call(
                &self.url,
                "",
                "PUT",
                "sys/generate-root/attempt",
                Some(json!({})),
            )
            .await;
            if st == 200 {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "generate-root attempt: {st} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (nonce, otp) = (
            attempt["nonce"].clone(),
            attempt["otp"].as_str().unwrap().to_owned(),
        );
        for key in keys {
            let (st, body) = vault_call(
                &self.url,
                "",
                "PUT",
                "sys/generate-root/update",
                Some(json!({"key": key, "nonce": nonce})),
            )
            .await;
            assert_eq!(st, 200, "generate-root update: {body}");
            if body["complete"] == json!(true) {
                let encoded = body["encoded_token"].as_str().unwrap();
                let xored = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .expect("encoded token");
                let token: Vec<u8> = xored.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
                return String::from_utf8(token).expect("token");
            }
        }
        panic!("the keys did not complete the root generation");
    }

    /// A call as root, for set-up and assertions beside the steps (not through any proxy).
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        vault_call(&self.url, &self.root_token, method, path, body).await
    }

    /// A root call that must succeed (set-up).
    pub async fn must(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!matches!(method, "GET" | "LIST")).then_some(body);
        let (st, resp) = self.root(method, path, body).await;
        assert!(st < 300, "{method} {path}: {st} {resp}");
        resp
    }

    /// Every audit entry so far (requests and responses, values HMAC'd by OpenBao).
    fn audit_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.dir.path().join("audit.log"))
    }

    pub fn audit_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The requests the audit device saw, in order.
    pub fn audit_requests(&self) -> Vec<AuditRequest> {
        self.audit_log()
            .iter()
            .filter_map(AuditRequest::of)
            .collect()
    }

    /// The requests the audit device recorded after byte `offset` of its log (whole lines
    /// only), and the offset to pass next time: follows a long run (the bench) without
    /// reading the log again from the start.
    pub fn audit_requests_from(&self, offset: u64) -> (Vec<AuditRequest>, u64) {
        use std::io::{Read as _, Seek as _};
        let Ok(mut f) = std::fs::File::open(self.audit_path()) else {
            return (Vec::new(), offset);
        };
        let mut bytes = Vec::new();
        if f.seek(std::io::SeekFrom::Start(offset)).is_err() || f.read_to_end(&mut bytes).is_err() {
            return (Vec::new(), offset);
        }
        // A line still being written is left for the next call.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let requests = bytes[..whole]
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter_map(|e| AuditRequest::of(&e))
            .collect();
        (requests, offset + whole as u64)
    }

    /// The server process's id while it runs (e.g. to read its CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Child::id)
    }
}

/// One request as OpenBao's audit device recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRequest {
    /// `read`, `list`, `create`, `update`, `patch`, `delete`.
    pub operation: String,
    pub path: String,
    /// The token's policies (`root` for root, empty before a login).
    pub policies: Vec<String>,
    pub display_name: String,
    pub user_agent: Option<String>,
    /// The ACL's decision (`auth.policy_results.allowed`).
    pub allowed: bool,
    /// Who sent it; `None` for the entry the audit device writes itself when it starts
    /// (`sys/audit/test`), which no client made.
    pub remote_address: Option<String>,
}

impl AuditRequest {
    /// The request of an audit entry; `None` for a response entry.
    fn of(e: &Value) -> Option<AuditRequest> {
        (e["type"] == "request").then(|| AuditRequest {
            operation: e["request"]["operation"]
                .as_str()
                .unwrap_or_default()
                .into(),
            path: e["request"]["path"].as_str().unwrap_or_default().into(),
            policies: e["auth"]["policies"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|p| p.as_str().map(Into::into))
                        .collect()
                })
                .unwrap_or_default(),
            remote_address: e["request"]["remote_address"].as_str().map(Into::into),
            display_name: e["auth"]["display_name"]
                .as_str()
                .unwrap_or_default()
                .into(),
            allowed: e["auth"]["policy_results"]["allowed"] == json!(true),
            user_agent: e["request"]["headers"]["user-agent"][0]
                .as_str()
                .map(Into::into),
        })
    }

    /// Made by root (set-up and assertions, not a step).
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

fn audit_stanza(log: &Path) -> String {
    format!(
        "audit \"file\" \"requests\" {{\n  options = {{\n    file_path = \"{}\"\n  }}\n}}\n",
        log.display()
    )
}

fn raft_config(dir: &Path, audit_log: &Path, port: u16, cluster_port: u16) -> String {
    format!(
        r#"storage "raft" {{
  path    = "{raft}"
  node_id = "n1"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
  # The runbook's way out for a Vault without any token (tests use it to act as an operator).
  disable_unauthed_generate_root_endpoints = false
}}
api_addr     = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
{audit}"#,
        raft = dir.join("raft").display(),
        audit = audit_stanza(audit_log),
    )
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
