//! The smallest honest stand-in for the External Secrets Operator's read path (RFC 5.5), so
//! drills can show Kubernetes Secrets being materialized from Vault. No ESO code runs here:
//! this follows ESO's documented `ExternalSecret` -> Secret sync for the Vault provider
//! (KV v2, as `templates/eso/cluster-secret-store.yaml` configures it) and nothing more:
//!
//! - it logs in to Vault as ESO would with the shipped store: Kubernetes auth, role
//!   `secops-eso-reader`, service account `external-secrets/external-secrets` (so every read
//!   goes through the shipped read-only policy, which `Env` installs with the rest of `templates/vault`);
//! - per ExternalSecret: `spec.data[]` (`secretKey`, `remoteRef.key`, `.property`,
//!   `.decodingStrategy` None | Base64 | Base64URL | Auto) and `spec.dataFrom[].extract.key`
//!   (every property); `remoteRef.key` as `path`, `mount/path` or `mount/data/path`;
//! - the target Secret (`spec.target.name`, default the ExternalSecret's name) is created or
//!   replaced with exactly that data, labelled `reconcile.external-secrets.io/managed=true`,
//!   owned by the ExternalSecret when `creationPolicy` is `Owner` (the default);
//! - an existing Secret ESO does not manage is left alone and reported (ESO's `Owner` policy
//!   refuses to take over a Secret it did not create);
//! - when Vault cannot be read (sealed, down, a key missing) the ExternalSecret is reported
//!   not synced and its target Secret is left as it is: ESO keeps the last synced Secret.
//!
//! Not modelled: refresh intervals, templates, generators, PushSecret, status conditions.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectMeta, PostParams};
use serde_json::{json, Value};

use crate::{vault_pki, Env};

/// A Vault request as ESO's client makes it; a connection failure is an error, not a panic.
async fn call(
    env: &Env,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let ca = reqwest::Certificate::from_pem(vault_pki().ca_pem.as_bytes())?;
    let client = reqwest::Client::builder().tls_certs_only([ca]).build()?;
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes())?,
        format!("{}/v1/{path}", env.vault.url()),
    );
    if !token.is_empty() {
        req = req.header("X-Vault-Token", token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.context("Vault unreachable")?;
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((st, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";

/// The ExternalSecret API (external-secrets.io/v1) of a namespace.
pub fn external_secrets(env: &Env, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    Api::namespaced_with(env.client.clone(), ns, &ar)
}

/// Creates an ExternalSecret `name` in `ns` reading `key` (every property, `dataFrom.extract`)
/// plus the listed properties decoded from base64, into a target Secret of the same name.
pub async fn apply_external_secret(env: &Env, ns: &str, name: &str, key: &str, base64: &[&str]) {
    let data: Vec<Value> = base64
        .iter()
        .map(|p| {
            json!({"secretKey": p, "remoteRef": {"key": key, "property": p, "decodingStrategy": "Base64"}})
        })
        .collect();
    let es: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
            "target": {"name": name, "creationPolicy": "Owner"},
            "dataFrom": [{"extract": {"key": key}}],
            "data": data,
        },
    }))
    .expect("ExternalSecret");
    external_secrets(env, ns)
        .create(&PostParams::default(), &es)
        .await
        .expect("create ExternalSecret");
}

/// What one sync pass did per ExternalSecret (`namespace/name`).
#[derive(Debug, Default)]
pub struct SyncReport {
    pub synced: Vec<String>,
    /// `namespace/name: why`, the target left as it was.
    pub not_synced: Vec<String>,
}

/// One reconcile of every ExternalSecret in `ns`, as ESO would do on a refresh.
pub async fn sync(env: &Env, ns: &str) -> SyncReport {
    let mut report = SyncReport::default();
    let list = external_secrets(env, ns)
        .list(&ListParams::default())
        .await
        .expect("list ExternalSecrets");
    let token = login(env).await;
    for es in list.items {
        let name = es.metadata.name.clone().unwrap_or_default();
        let what = format!("{ns}/{name}");
        let result = match &token {
            Ok(token) => sync_one(env, ns, &es, token).await,
            Err(e) => Err(anyhow!("Vault login failed: {e}")),
        };
        match result {
            Ok(()) => report.synced.push(what),
            Err(e) => report.not_synced.push(format!("{what}: {e:#}")),
        }
    }
    report
}

async fn login(env: &Env) -> Result<String> {
    let jwt = env.kube.issue_token_for(
        "external-secrets",
        "external-secrets",
        crate::VAULT_AUDIENCE,
    );
    let (st, body) = call(
        env,
        "",
        "POST",
        "auth/kubernetes/login",
        Some(json!({"role": "secops-eso-reader", "jwt": jwt})),
    )
    .await?;
    if st != 200 {
        bail!("HTTP {st}");
    }
    body["auth"]["client_token"]
        .as_str()
        .map(str::to_owned)
        .context("no client_token")
}

/// The KV v2 path under mount `secret` a remote key names.
fn kv_path(key: &str) -> String {
    let k = key.trim_start_matches('/');
    let k = k.strip_prefix("secret/").unwrap_or(k);
    k.strip_prefix("data/").unwrap_or(k).to_owned()
}

async fn read(env: &Env, token: &str, key: &str) -> Result<serde_json::Map<String, Value>> {
    let path = kv_path(key);
    let (st, body) = call(env, token, "GET", &format!("secret/data/{path}"), None).await?;
    if st != 200 {
        bail!("reading {key}: HTTP {st}");
    }
    body["data"]["data"]
        .as_object()
        .cloned()
        .with_context(|| format!("reading {key}: no data"))
}

fn decode(v: &Value, strategy: &str) -> Result<Vec<u8>> {
    let s = v.as_str().context("a non-string value")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE;
    Ok(match strategy {
        "None" => s.as_bytes().to_vec(),
        "Base64" => b64.decode(s).context("not base64")?,
        "Base64URL" => b64url.decode(s).context("not base64url")?,
        "Auto" => b64
            .decode(s)
            .or_else(|_| b64url.decode(s))
            .unwrap_or_else(|_| s.as_bytes().to_vec()),
        other => bail!("decodingStrategy {other} is not modelled"),
    })
}

async fn sync_one(env: &Env, ns: &str, es: &DynamicObject, token: &str) -> Result<()> {
    let spec = &es.data["spec"];
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    for from in spec["dataFrom"].as_array().into_iter().flatten() {
        let key = from["extract"]["key"]
            .as_str()
            .context("dataFrom.extract.key")?;
        let strategy = from["extract"]["decodingStrategy"]
            .as_str()
            .unwrap_or("None");
        for (k, v) in read(env, token, key).await? {
            data.insert(k, ByteString(decode(&v, strategy)?));
        }
    }
    for d in spec["data"].as_array().into_iter().flatten() {
        let secret_key = d["secretKey"].as_str().context("data.secretKey")?;
        let r = &d["remoteRef"];
        let key = r["key"].as_str().context("remoteRef.key")?;
        let strategy = r["decodingStrategy"].as_str().unwrap_or("None");
        let values = read(env, token, key).await?;
        let bytes = match r["property"].as_str() {
            Some(p) => decode(
                values
                    .get(p)
                    .with_context(|| format!("{key} has no property {p}"))?,
                strategy,
            )?,
            None => serde_json::to_vec(&values)?,
        };
        data.insert(secret_key.to_owned(), ByteString(bytes));
    }
    let es_name = es.metadata.name.clone().unwrap_or_default();
    let target = spec["target"]["name"].as_str().unwrap_or(&es_name);
    let owner = spec["target"]["creationPolicy"].as_str().unwrap_or("Owner") == "Owner";
    let api: Api<Secret> = Api::namespaced(env.client.clone(), ns);
    let existing = api.get_opt(target).await?;
    let managed = |s: &Secret| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_LABEL))
            .is_some_and(|v| v == "true")
    };
    if let Some(s) = &existing {
        if !managed(s) {
            bail!("target Secret {target} exists and is not managed by ESO: left alone");
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target.to_owned()),
            namespace: Some(ns.to_owned()),
            labels: Some(BTreeMap::from([(MANAGED_LABEL.into(), "true".into())])),
            owner_references: owner.then(|| {
                vec![OwnerReference {
                    api_version: "external-secrets.io/v1".into(),
                    kind: "ExternalSecret".into(),
                    name: es_name.clone(),
                    uid: es.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            resource_version: existing
                .as_ref()
                .and_then(|s| s.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    };
    match existing {
        Some(_) => api.replace(target, &PostParams::default(), &secret).await?,
        None => api.create(&PostParams::default(), &secret).await?,
    };
    Ok(())
}
