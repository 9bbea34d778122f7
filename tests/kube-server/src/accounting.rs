//! Request accounting so tests can assert how a step talked to the API (how often,
//! which paths). Only methods and paths are kept: bodies carry secret material.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// `(method, resource, namespace)`; namespace is `""` for cluster-scoped requests.
pub type RequestKey = (String, String, String);

#[derive(Default)]
pub struct Accounting {
    inner: Mutex<Inner>,
}

/// An authorization-relevant view of one request, as RBAC would see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiAccess {
    /// The bearer token (a test names its identities by token).
    pub user: String,
    /// RBAC verb: get, list, create, update, patch, delete, deletecollection, watch.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    pub resource: String,
    /// `""` for cluster scope.
    pub namespace: String,
}

#[derive(Default)]
struct Inner {
    log: Vec<(String, String)>,
    log_at: Vec<std::time::Instant>,
    counts: BTreeMap<RequestKey, u64>,
    accesses: Vec<ApiAccess>,
}

impl Accounting {
    /// Records one request; `resource` is `(plural, namespace)` for resource paths.
    pub fn record(&self, method: &str, path_and_query: &str, resource: Option<(&str, &str)>) {
        let mut inner = self.lock();
        inner
            .log
            .push((method.to_string(), path_and_query.to_string()));
        inner.log_at.push(std::time::Instant::now());
        if let Some((plural, ns)) = resource {
            let key = (method.to_string(), plural.to_string(), ns.to_string());
            *inner.counts.entry(key).or_default() += 1;
        }
    }

    pub fn access(&self, a: ApiAccess) {
        self.lock().accesses.push(a);
    }

    pub fn accesses(&self) -> Vec<ApiAccess> {
        self.lock().accesses.clone()
    }

    pub fn total(&self) -> u64 {
        self.lock().log.len() as u64
    }

    pub fn log(&self) -> Vec<(String, String)> {
        self.lock().log.clone()
    }

    pub fn log_at(&self) -> Vec<(std::time::Instant, String, String)> {
        let inner = self.lock();
        inner
            .log_at
            .iter()
            .zip(&inner.log)
            .map(|(t, (m, p))| (*t, m.clone(), p.clone()))
            .collect()
    }

    pub fn counts(&self) -> BTreeMap<RequestKey, u64> {
        self.lock().counts.clone()
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.log_at.clear();
        inner.counts.clear();
        inner.accesses.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the log half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
