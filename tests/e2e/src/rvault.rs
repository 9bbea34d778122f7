//! RustyVault (`rvault`), a real and independent server of Vault's HTTP API, started as a
//! process for the tests that its API covers: KV v1, token and AppRole auth, seal/unseal.
//! Its known differences from Vault (error body `error`, 404 with an empty body, no
//! `sys/health`, no `revoke-self`, no ACL enforcement) are what the step client must handle.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::vault_call;

pub struct RustyVault {
    child: Child,
    pub url: String,
    port: u16,
    pub root_token: String,
    pub unseal_key: String,
    pub dir: tempfile::TempDir,
}

/// The `rvault` binary: RVAULT, else on PATH (`cargo install rusty_vault`, done by .ci/run).
fn binary() -> PathBuf {
    std::env::var_os("RVAULT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rvault"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl RustyVault {
    /// Starts, initialises (1 share) and unseals a fresh server with file storage.
    pub async fn start() -> RustyVault {
        let mut rv = Self::start_uninitialised().await;
        let (st, init) = vault_call(
            &rv.url,
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
        assert_eq!(st, 200, "rvault init: {init}");
        rv.root_token = init["root_token"].as_str().expect("root_token").to_owned();
        rv.unseal_key = init["keys"][0].as_str().expect("keys").to_owned();
        rv.unseal().await;
        rv
    }

    /// Starts a fresh, uninitialised server (for init-authority); `root_token` and
    /// `unseal_key` stay empty.
    pub async fn start_uninitialised() -> RustyVault {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("rvault.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{\n  path = \"{data}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\nlog_level = \"warn\"\npid_file = \"{pid}\"\n",
                data = dir.path().join("data").display(),
                pid = dir.path().join("rvault.pid").display(),
            ),
        )
        .unwrap();
        let child = spawn(&dir, port).await;
        RustyVault {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            root_token: String::new(),
            unseal_key: String::new(),
            dir,
        }
    }

    /// Stops the process and starts it again on the same storage and port: sealed, as
    /// after a pod restart.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.dir, self.port).await;
    }

    pub async fn unseal(&self) {
        let (st, body) = vault_call(
            &self.url,
            "",
            "PUT",
            "sys/unseal",
            Some(json!({"key": self.unseal_key})),
        )
        .await;
        assert_eq!(st, 200, "unseal: {body}");
        assert_eq!(body["sealed"], json!(false), "unseal: {body}");
    }

    pub async fn seal(&self) {
        let (st, body) = self.root("PUT", "sys/seal", None).await;
        assert!(st < 300, "seal: {st} {body}");
    }

    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        vault_call(&self.url, &self.root_token, method, path, body).await
    }

    /// Enables AppRole and returns (role_id file, secret_id file) for a role.
    pub async fn approle(&self, role: &str) -> (PathBuf, PathBuf) {
        let (st, b) = self
            .root("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
            .await;
        assert!(
            st < 300 || b.to_string().contains("already"),
            "enable approle: {st} {b}"
        );
        let (st, b) = self
            .root(
                "POST",
                &format!("auth/approle/role/{role}"),
                Some(json!({"token_policies": "default", "bind_secret_id": true})),
            )
            .await;
        assert!(st < 300, "approle role: {st} {b}");
        let (_, rid) = self
            .root("GET", &format!("auth/approle/role/{role}/role-id"), None)
            .await;
        let (_, sid) = self
            .root("POST", &format!("auth/approle/role/{role}/secret-id"), None)
            .await;
        let role_id = self.dir.path().join(format!("{role}.role-id"));
        let secret_id = self.dir.path().join(format!("{role}.secret-id"));
        std::fs::write(&role_id, rid["data"]["role_id"].as_str().expect("role_id")).unwrap();
        std::fs::write(
            &secret_id,
            sid["data"]["secret_id"].as_str().expect("secret_id"),
        )
        .unwrap();
        (role_id, secret_id)
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rvault` on the config in `dir` and waits until it listens.
async fn spawn(dir: &tempfile::TempDir, port: u16) -> Child {
    let config = dir.path().join("rvault.hcl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("rvault.log"))
        .unwrap();
    let child = Command::new(binary())
        .arg("server")
        .arg(format!("--config={}", config.display()))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start rvault ({e}); install it with `cargo install rusty_vault` or set RVAULT")
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "rvault did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

impl Drop for RustyVault {
    fn drop(&mut self) {
        self.stop();
    }
}
