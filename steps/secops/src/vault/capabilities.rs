//! `sys/capabilities-self`: what this token may do on the paths a step is about to write.
//!
//! Asked before a step's first write, so that a policy narrower than the step needs is a
//! refusal with nothing written instead of a half-done write (a data version without its
//! provenance, a recorded rotation intent without its version). Vault's default policy
//! allows it for every token. Answers are kept for the process: a batch asks for all its
//! paths in a few requests up front, and each item's check is then answered from memory.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;

use super::Vault;
use crate::error::{Error, Result};

/// Paths per request: about one check per 500 handovers (data and metadata path each), like
/// the LIST pages; a body of some 50 KB. OpenBao refuses a request body of more than 1,000
/// JSON strings by default (400 "exceeded maximum number of strings"; object keys count), so
/// 999 paths and the `paths` key is the most one request may carry: with 1,000 the up-front
/// check of a 1,000-Secret batch failed and each item asked for its own paths.
const CHUNK: usize = 999;

/// One capability a write needs on one Vault API path (`secret/metadata/apps/db`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub capability: &'static str,
    pub path: String,
}

impl Need {
    pub fn new(capability: &'static str, path: impl Into<String>) -> Self {
        Need {
            capability,
            path: path.into(),
        }
    }
}

impl Vault {
    /// The capabilities this token has on each path (Vault's words: `create`, `patch`,
    /// `deny`, `root`, ...). Paths asked before in this process are answered from memory.
    pub async fn capabilities(&self, paths: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out = BTreeMap::new();
        let mut ask = BTreeSet::new();
        {
            let known = self.capabilities.lock().unwrap_or_else(|e| e.into_inner());
            for p in paths {
                match known.get(p) {
                    Some(caps) => {
                        out.insert(p.clone(), caps.clone());
                    }
                    None => {
                        ask.insert(p.clone());
                    }
                }
            }
        }
        let ask: Vec<String> = ask.into_iter().collect();
        for chunk in ask.chunks(CHUNK) {
            let answer = self.ask_capabilities(chunk).await?;
            let mut known = self.capabilities.lock().unwrap_or_else(|e| e.into_inner());
            for p in chunk {
                // A path Vault leaves out of its answer is granted nothing.
                let caps = answer.get(p).cloned().unwrap_or_default();
                known.insert(p.clone(), caps.clone());
                out.insert(p.clone(), caps);
            }
        }
        Ok(out)
    }

    /// Asks for a batch's paths up front. Best effort: on failure each item asks again
    /// for its own paths and reports its own error.
    pub async fn prefetch_capabilities(&self, paths: impl IntoIterator<Item = String>) {
        let paths: Vec<String> = paths.into_iter().collect();
        if let Err(e) = self.capabilities(&paths).await {
            tracing::warn!(error = %e, "could not check the batch's Vault capabilities up front; each item checks its own");
        }
    }

    /// Refuses (exit 3, nothing written) unless the token has every capability in `needs`.
    /// `object` is what the refusal is about, e.g. `Vault path secret/apps/db`.
    pub async fn require(&self, object: &str, needs: &[Need]) -> Result<()> {
        let paths: Vec<String> = needs.iter().map(|n| n.path.clone()).collect();
        let have = self.capabilities(&paths).await?;
        let missing: Vec<&Need> = needs
            .iter()
            .filter(|n| !grants(have.get(&n.path), n.capability))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let list = missing
            .iter()
            .map(|n| format!("`{}` on {}", n.capability, n.path))
            .collect::<Vec<_>>()
            .join(" and ");
        Err(Error::precondition(
            object,
            format!(
                "this step's Vault token ({}) lacks {list}, which this write needs (checked \
                 with sys/capabilities-self before writing: nothing was written)",
                self.policies_label()
            ),
            format!(
                "grant {list} in {}, then re-run the step",
                self.policy_to_fix()
            ),
        ))
    }

    /// The refusal for a request Vault denied by policy: names the capability and the path.
    pub(crate) fn denied(
        &self,
        object: &str,
        capability: &str,
        path: &str,
        r: &super::Response,
    ) -> Error {
        // Vault's ACL denial text ("1 error occurred: permission denied") adds nothing.
        let text = r.error_text();
        let detail = if text.is_empty() || text.contains("permission denied") {
            String::new()
        } else {
            format!(": {}", text.trim())
        };
        Error::precondition(
            object,
            format!(
                "Vault denied `{capability}` on {path} to this step's token ({}, HTTP {}{detail})",
                self.policies_label(),
                r.status,
            ),
            format!(
                "grant `{capability}` on {path} in {}, then re-run the step",
                self.policy_to_fix()
            ),
        )
    }

    async fn ask_capabilities(&self, paths: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Option<BTreeMap<String, serde_json::Value>>,
        }
        let body = serde_json::to_vec(&serde_json::json!({ "paths": paths }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let what = "capability check (sys/capabilities-self)";
        // Changes nothing: safe to repeat, so it is retried like a read.
        let r = self
            .call(
                Method::POST,
                "sys/capabilities-self",
                Some(("application/json", body)),
            )
            .await?;
        if r.status == 403 {
            return Err(Error::precondition(
                "Vault path sys/capabilities-self",
                format!(
                    "Vault denied the step's token ({}) the capability check it makes before \
                     writing (HTTP 403: {})",
                    self.policies_label(),
                    r.error_text().trim()
                ),
                "grant `update` on sys/capabilities-self (Vault's default policy does: do not \
                 set token_no_default_policy on the step's role), then re-run the step",
            ));
        }
        if r.status != 200 {
            return Err(self.unexpected(what, "Vault path sys/capabilities-self", &r));
        }
        let answer: Answer = r.parse(what)?;
        let data = answer
            .data
            .ok_or_else(|| Error::Internal(format!("Vault's answer to the {what} has no data")))?;
        Ok(data
            .into_iter()
            .filter_map(|(path, caps)| {
                let caps: Vec<String> = serde_json::from_value(caps).ok()?;
                Some((path, caps))
            })
            .collect())
    }

    /// The token's policies as a refusal names them.
    fn policies_label(&self) -> String {
        match self.policies.as_slice() {
            [] if !self.owns_token => "the supplied VAULT_TOKEN".to_owned(),
            [] => "no policy but default".to_owned(),
            [one] => format!("policy {one}"),
            many => format!("policies {}", many.join(", ")),
        }
    }

    /// Where the operator grants what is missing.
    fn policy_to_fix(&self) -> String {
        match self.policies.as_slice() {
            [] if !self.owns_token => "a Vault policy of the supplied VAULT_TOKEN".to_owned(),
            [] => "a Vault policy of the step's login role".to_owned(),
            [one] => format!("Vault policy {one}"),
            many => format!("one of the Vault policies {}", many.join(", ")),
        }
    }
}

/// Whether Vault's answer for a path grants `capability` (`root` grants everything).
fn grants(caps: Option<&Vec<String>>, capability: &str) -> bool {
    caps.is_some_and(|c| c.iter().any(|x| x == capability || x == "root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_grants_everything_and_deny_or_absence_nothing() {
        let caps = |c: &[&str]| Some(c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(grants(caps(&["create", "read"]).as_ref(), "create"));
        assert!(!grants(caps(&["create", "read"]).as_ref(), "update"));
        assert!(grants(caps(&["root"]).as_ref(), "patch"));
        assert!(!grants(caps(&["deny"]).as_ref(), "read"));
        assert!(!grants(None, "read"));
    }
}
