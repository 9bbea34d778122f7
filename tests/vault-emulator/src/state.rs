//! Everything the emulator knows, behind one lock. Vault serialises per key; one
//! mutex around the whole state gives clients the same observable atomicity (a CAS
//! write can never interleave with another) with far less code.

use crate::acl::PolicyStore;
use crate::fault::{self, Action, Fault};
use crate::ids;
use crate::kubernetes::Kubernetes;
use crate::kv2::Kv2;
use crate::password::PasswordPolicies;
use crate::token::TokenStore;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Reported by sys/health and sys/seal-status.
pub const VERSION: &str = "1.17.0-emulator";

#[derive(Debug)]
pub struct State {
    pub sealed: bool,
    pub unseal_key: String,
    /// False until `sys/init` (only when started with `Options::initialized = false`).
    pub initialized: bool,
    /// Key shares from `sys/init`; `None` means the single configured `unseal_key`.
    pub shamir: Option<crate::sys::Shamir>,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub passwords: PasswordPolicies,
    pub kv: BTreeMap<String, Kv2>,
    pub kubernetes: Kubernetes,
    pub cluster_name: String,
    pub cluster_id: String,
    /// Test-only; see `fault`.
    pub fault: Option<Fault>,
    log: Vec<(String, String)>,
    /// When each `log` entry arrived, to merge with another server's log.
    log_at: Vec<std::time::Instant>,
    accesses: Vec<crate::api::Access>,
}

impl State {
    pub fn new(
        root_token: &str,
        kv2_mounts: &[String],
        kubernetes_mount: &str,
        unseal_key: &str,
        now: Timestamp,
    ) -> Self {
        Self {
            sealed: false,
            unseal_key: unseal_key.to_string(),
            initialized: true,
            shamir: None,
            tokens: TokenStore::new(root_token, now),
            policies: PolicyStore::new(),
            passwords: PasswordPolicies::default(),
            kv: kv2_mounts
                .iter()
                .map(|m| (m.clone(), Kv2::default()))
                .collect(),
            kubernetes: Kubernetes::new(kubernetes_mount),
            cluster_name: format!("vault-cluster-{}", &ids::uuid()[..8]),
            cluster_id: ids::uuid(),
            fault: None,
            log: Vec::new(),
            log_at: Vec::new(),
            accesses: Vec::new(),
        }
    }

    /// Logs a request as `(method, path?query)`, never its body.
    pub fn record(&mut self, method: &str, path: &str, query: Option<&str>) {
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        self.log.push((method.to_string(), target));
        self.log_at.push(std::time::Instant::now());
    }

    /// The injected fault a request meets, if any. A request failed by it is logged
    /// here, since it never reaches `api::handle`.
    pub fn fault_action(
        &mut self,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Option<Action> {
        let action = fault::apply(&mut self.fault, path);
        match action {
            Some(Action::Fail(_) | Action::Throttle(_) | Action::Reset | Action::Raw(..)) => {
                self.record(method, path, query)
            }
            Some(Action::Seal) => self.sealed = true,
            Some(Action::RevokeTokens) => self.tokens.revoke_all_but_root(),
            _ => {}
        }
        action
    }

    pub fn record_access(&mut self, access: crate::api::Access) {
        self.accesses.push(access);
    }

    pub fn accesses(&self) -> Vec<crate::api::Access> {
        self.accesses.clone()
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.log.clone()
    }

    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.log_at
            .iter()
            .zip(&self.log)
            .map(|(t, (m, p))| (*t, m.clone(), p.clone()))
            .collect()
    }

    pub fn request_count(&self) -> u64 {
        self.log.len() as u64
    }

    /// The KV mount a logical path falls under, longest mount first.
    pub fn kv_mount(&self, path: &str) -> Option<String> {
        self.kv
            .keys()
            .filter(|m| {
                path.strip_prefix(m.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|m| m.len())
            .cloned()
    }
}
