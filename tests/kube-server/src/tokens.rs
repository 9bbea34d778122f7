//! Service account tokens and the TokenReview API, so a Vault/OpenBao Kubernetes auth
//! method can log a step in against this server as it would against a cluster.
//!
//! Tokens are shaped like the projected tokens the apiserver issues (a JWS with an RS256
//! header and the `kubernetes.io` private claims). Nothing signs them: the signature is
//! random bytes, and the server knows its tokens by keeping them. The review follows
//! kube-apiserver's service account authenticator (`pkg/serviceaccount`): issuer and
//! signature first, then audiences, then whether the token was invalidated; the errors
//! are worded as its authenticator chain words them.

use crate::status::{self, Reply};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The issuer of the tokens, and the audience the API server itself accepts
/// (`--service-account-issuer` / `--api-audiences` of a default cluster).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The group-version TokenReview is served in.
pub const GROUP_VERSION: &str = "authentication.k8s.io/v1";

/// Lifetime written into `exp` (a year, like the extended projected tokens pods get).
/// Expiry is not enforced: a test run never lasts that long.
const LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// The authenticator chain's default error when no authenticator recognised the token.
const INVALID: &str = "invalid bearer token";

pub struct Tokens {
    inner: Mutex<State>,
}

struct State {
    /// The `kid` every token carries, as the apiserver names its signing key.
    kid: String,
    /// One uid per service account, `(namespace, name)`.
    uids: BTreeMap<(String, String), String>,
    issued: HashMap<String, Issued>,
    /// Bearer tokens of kubeconfig users (not service accounts).
    callers: BTreeSet<String>,
}

struct Issued {
    namespace: String,
    name: String,
    uid: String,
    jti: String,
    audiences: Vec<String>,
    revoked: bool,
}

impl Issued {
    fn username(&self) -> String {
        username(&self.namespace, &self.name)
    }
}

fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Who a bearer token authenticates as, for a request to the API itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A kubeconfig user or an issued service account token.
    Authenticated,
    /// No bearer token: `system:anonymous`.
    Anonymous,
    /// A bearer token no authenticator accepts (401).
    Rejected,
}

impl Tokens {
    /// Knows `callers` as kubeconfig users from the start.
    pub fn new(callers: &[&str]) -> Self {
        let mut kid = [0u8; 32];
        rand::fill(&mut kid[..]);
        Self {
            inner: Mutex::new(State {
                kid: URL_SAFE_NO_PAD.encode(kid),
                uids: BTreeMap::new(),
                issued: HashMap::new(),
                callers: callers.iter().map(|c| c.to_string()).collect(),
            }),
        }
    }

    pub fn register_caller(&self, token: &str) {
        self.lock().callers.insert(token.to_string());
    }

    /// Mints a token for `namespace/name` with `audiences` (`ISSUER` when empty).
    pub fn issue(&self, namespace: &str, name: &str, audiences: &[&str]) -> String {
        let audiences: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences.iter().map(|a| a.to_string()).collect()
        };
        let mut state = self.lock();
        let uid = state
            .uids
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        let jti = uuid::Uuid::new_v4().to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = json!({"alg": "RS256", "kid": state.kid});
        let claims = json!({
            "aud": audiences,
            "exp": now + LIFETIME_SECS,
            "iat": now,
            "iss": ISSUER,
            "jti": jti,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
            "nbf": now,
            "sub": username(namespace, name),
        });
        // An RSA-2048 signature is 256 bytes.
        let mut signature = [0u8; 256];
        rand::fill(&mut signature[..]);
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature),
        );
        state.issued.insert(
            token.clone(),
            Issued {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid,
                jti,
                audiences,
                revoked: false,
            },
        );
        token
    }

    /// A revoked token reviews as invalidated, like one bound to a deleted object.
    pub fn revoke(&self, token: &str) {
        if let Some(issued) = self.lock().issued.get_mut(token) {
            issued.revoked = true;
        }
    }

    pub fn uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .uids
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The name accounting records for a bearer token: a service account token is
    /// recorded by its username (never the token itself), any other token as it is.
    pub fn caller_name(&self, bearer: Option<&str>) -> String {
        let Some(bearer) = bearer else {
            return String::new();
        };
        match self.lock().issued.get(bearer) {
            Some(issued) => issued.username(),
            None => bearer.to_string(),
        }
    }

    /// Authentication of a request's own bearer token: the apiserver accepts a
    /// service account token only for its own audience and while it is valid.
    pub fn authenticate(&self, bearer: Option<&str>) -> Caller {
        let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
            return Caller::Anonymous;
        };
        let state = self.lock();
        let accepted = state.callers.contains(bearer)
            || state
                .issued
                .get(bearer)
                .is_some_and(|i| !i.revoked && i.audiences.iter().any(|a| a == ISSUER));
        if accepted {
            Caller::Authenticated
        } else {
            Caller::Rejected
        }
    }

    /// `TokenReview.status` for `token` reviewed for `requested` audiences.
    pub fn review(&self, token: &str, requested: &[String]) -> Value {
        let state = self.lock();
        let Some(issued) = state.issued.get(token) else {
            // A JWS naming our issuer that we never issued fails the signature check;
            // anything else no authenticator recognises.
            let error = if names_issuer(token) {
                format!("[{INVALID}, go-jose/go-jose: error in cryptographic primitive]")
            } else {
                INVALID.to_string()
            };
            return failure(&error);
        };
        let targets: Vec<String> = if requested.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            requested.to_vec()
        };
        let audiences: Vec<&String> = issued
            .audiences
            .iter()
            .filter(|a| targets.contains(a))
            .collect();
        if audiences.is_empty() {
            return failure(&format!(
                "[{INVALID}, token audiences {} is invalid for the target audiences {}]",
                go_quoted(&issued.audiences),
                go_quoted(&targets),
            ));
        }
        if issued.revoked {
            return failure(&format!(
                "[{INVALID}, service account token has been invalidated]"
            ));
        }
        json!({
            "authenticated": true,
            "user": {
                "username": issued.username(),
                "uid": issued.uid,
                "groups": [
                    "system:serviceaccounts",
                    format!("system:serviceaccounts:{}", issued.namespace),
                    "system:authenticated",
                ],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [format!("JTI={}", issued.jti)],
                },
            },
            "audiences": audiences,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews` from an authenticated caller:
/// decodes the TokenReview as the apiserver's create handler does and answers 201
/// with it, `status` filled in.
pub fn create_review(tokens: &Tokens, body: &[u8]) -> Reply {
    let obj: Value = match serde_json::from_slice(body) {
        Ok(obj @ Value::Object(_)) => obj,
        Ok(_) => {
            return undecodable("json: cannot unmarshal non-object into Go value of type struct")
        }
        Err(e) => return undecodable(&format!("couldn't get version/kind; json parse error: {e}")),
    };
    let api_version = obj["apiVersion"].as_str().unwrap_or(GROUP_VERSION);
    if api_version != GROUP_VERSION {
        return status::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({GROUP_VERSION})"
        ));
    }
    let kind = obj["kind"].as_str().unwrap_or("TokenReview");
    if kind != "TokenReview" {
        return cannot_handle(
            kind,
            &format!("no kind \"{kind}\" is registered for version \"{GROUP_VERSION}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""),
        );
    }
    let spec = &obj["spec"];
    if !(spec.is_object() || spec.is_null()) {
        return cannot_handle(kind, "json: cannot unmarshal into Go struct field TokenReview.spec of type v1.TokenReviewSpec");
    }
    let token = match &spec["token"] {
        Value::String(t) => t.clone(),
        Value::Null => String::new(),
        _ => return cannot_handle(
            kind,
            "json: cannot unmarshal into Go struct field TokenReviewSpec.spec.token of type string",
        ),
    };
    let audiences: Vec<String> = match &spec["audiences"] {
        Value::Null => Vec::new(),
        Value::Array(items) => match items.iter().map(|a| a.as_str().map(str::to_string)).collect() {
            Some(audiences) => audiences,
            None => return cannot_handle(kind, "json: cannot unmarshal into Go struct field TokenReviewSpec.spec.audiences of type string"),
        },
        _ => return cannot_handle(kind, "json: cannot unmarshal into Go struct field TokenReviewSpec.spec.audiences of type []string"),
    };
    if token.is_empty() {
        return status::bad_request("token is required for TokenReview in authentication");
    }
    let mut metadata = match &obj["metadata"] {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    metadata.entry("creationTimestamp").or_insert(Value::Null);
    let mut spec = json!({"token": token});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    Reply {
        code: 201,
        body: json!({
            "kind": "TokenReview",
            "apiVersion": GROUP_VERSION,
            "metadata": metadata,
            "spec": spec,
            "status": tokens.review(&token, &audiences),
        }),
    }
}

/// The create handler's answer to a body it cannot decode at all.
fn undecodable(why: &str) -> Reply {
    status::bad_request(format!(
        "the object provided is unrecognized (must be of type TokenReview): {why}"
    ))
}

/// The create handler's answer to a body of the right kind it cannot decode.
fn cannot_handle(kind: &str, why: &str) -> Reply {
    status::bad_request(format!(
        "{kind} in version \"v1\" cannot be handled as a TokenReview: {why}"
    ))
}

/// A failed review: `authenticated` is false and so omitted, `user` empty, as the
/// apiserver serialises it.
fn failure(error: &str) -> Value {
    json!({"user": {}, "error": error})
}

/// Whether `token` is a compact JWS with a JSON header and claims naming `ISSUER`
/// (the apiserver's `hasCorrectIssuer`).
fn names_issuer(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, _] = parts.as_slice() else {
        return false;
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    decode(header).is_some_and(|h| h["alg"].is_string())
        && decode(claims).is_some_and(|c| c["iss"] == ISSUER)
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| json!(i).to_string()).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting_matches_fmt_q() {
        assert_eq!(go_quoted(&[]), "[]");
        assert_eq!(
            go_quoted(&["a".into(), "b \"c\"".into()]),
            r#"["a" "b \"c\""]"#
        );
    }

    #[test]
    fn only_jws_with_our_issuer_names_it() {
        let tokens = Tokens::new(&[]);
        let token = tokens.issue("ns", "sa", &[]);
        assert!(names_issuer(&token));
        assert!(!names_issuer("garbage"));
        assert!(!names_issuer("a.b.c"));
        let other = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://elsewhere"}"#)
        );
        assert!(!names_issuer(&other));
    }

    #[test]
    fn callers_and_tokens_authenticate_requests() {
        let tokens = Tokens::new(&["kubeconfig"]);
        let vault = tokens.issue("ns", "sa", &["vault"]);
        let api = tokens.issue("ns", "sa", &[]);
        assert_eq!(
            tokens.authenticate(Some("kubeconfig")),
            Caller::Authenticated
        );
        assert_eq!(tokens.authenticate(Some(&api)), Caller::Authenticated);
        assert_eq!(tokens.authenticate(Some(&vault)), Caller::Rejected);
        assert_eq!(tokens.authenticate(Some("other")), Caller::Rejected);
        assert_eq!(tokens.authenticate(None), Caller::Anonymous);
        tokens.revoke(&api);
        assert_eq!(tokens.authenticate(Some(&api)), Caller::Rejected);
        assert_eq!(
            tokens.caller_name(Some(&api)),
            "system:serviceaccount:ns:sa"
        );
        assert_eq!(tokens.caller_name(Some("kubeconfig")), "kubeconfig");
    }
}
