//! Who did what, as RBAC sees it, so tests can hold each identity to its grants. How often
//! and in what order requests came is the proxy's record (`fault-injection`).

use std::sync::{Mutex, MutexGuard};

/// `(method, resource, namespace)`; namespace is `""` for cluster-scoped requests.
pub type RequestKey = (String, String, String);

/// The key of a request for counting, `None` for non-resource paths (discovery).
pub fn request_key(method: &str, path_and_query: &str) -> Option<RequestKey> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let p = crate::path::ResourcePath::parse(path)?;
    Some((
        method.to_string(),
        p.resource,
        p.namespace.unwrap_or_default(),
    ))
}

#[derive(Default)]
pub struct Accounting {
    inner: Mutex<Inner>,
}

/// An authorization-relevant view of one request, as RBAC would see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiAccess {
    /// The bearer token (a test names its identities by token); for a service account
    /// token the server issued, the username `system:serviceaccount:NS:NAME` instead.
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
    accesses: Vec<ApiAccess>,
}

impl Accounting {
    pub fn access(&self, a: ApiAccess) {
        self.lock().accesses.push(a);
    }

    pub fn accesses(&self) -> Vec<ApiAccess> {
        self.lock().accesses.clone()
    }

    pub fn reset(&self) {
        self.lock().accesses.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the log half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
