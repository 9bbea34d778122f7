//! init-authority and unseal as processes against fresh OpenBao servers on raft storage
//! (real sys/init, sys/unseal, restarts on the same storage that come back sealed), from
//! nothing configured to a Vault the steps can log in to.

use std::sync::Arc;

use e2e::openbao::OpenBao;
use e2e::{vault_call, Env, SeedSecret, StepRun};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "secops-authority";
const NAME: &str = "vault-unseal";

fn identity(env: &Env, name: &str) -> (std::path::PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = env.dir.path().join(name);
    std::fs::write(&path, id.to_string().expose_secret()).unwrap();
    (path, id.to_public().to_string())
}

async fn step(env: &Env, name: &'static str, addr: &str, args: &[&str]) -> StepRun {
    env.step(name)
        .no_vault_defaults()
        .vault_cacert()
        .env("VAULT_ADDR", addr)
        .args(["--secret-namespace", NS])
        .args(args.iter().copied())
        .run()
        .await
}

async fn sealed(addr: &str) -> bool {
    let (st, b) = vault_call(addr, "", "GET", "sys/seal-status", None).await;
    assert_eq!(st, 200, "{b}");
    b["sealed"].as_bool().unwrap()
}

async fn initialized(addr: &str) -> bool {
    vault_call(addr, "", "GET", "sys/init", None).await.1["initialized"]
        .as_bool()
        .unwrap()
}

/// The stored keys, decrypted in the test (to prove they appear nowhere else).
async fn stored_keys(env: &Env, id: &std::path::Path) -> Vec<String> {
    let s = env.secret(NS, NAME).await.expect("unseal Secret");
    let data = s.data.unwrap_or_default();
    let cipher = &data["unseal-keys.json.age"].0;
    let ids =
        age::IdentityFile::from_buffer(std::io::BufReader::new(std::fs::File::open(id).unwrap()))
            .unwrap()
            .into_identities()
            .unwrap();
    let mut r = age::Decryptor::new(&cipher[..])
        .unwrap()
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .unwrap();
    let mut plain = Vec::new();
    r.read_to_end_sync(&mut plain);
    let doc: Value = serde_json::from_slice(&plain).unwrap();
    serde_json::from_value(doc["keys"].clone()).unwrap()
}

trait ReadAll {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>);
}
impl<R: std::io::Read> ReadAll for R {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>) {
        std::io::Read::read_to_end(self, out).unwrap();
    }
}

fn annotation(env_secret: &k8s_openapi::api::core::v1::Secret, k: &str) -> String {
    e2e::annotation(env_secret, k)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn fresh_init_stores_encrypted_keys_rerun_is_a_noop_and_unseal_survives_restarts() {
    let env = Env::start().await;
    let rv = OpenBao::raft().await;
    let (id, recipient) = identity(&env, "operator.age");
    let args = [
        "--age-recipient",
        recipient.as_str(),
        "--key-shares",
        "3",
        "--key-threshold",
        "2",
    ];
    let first = step(&env, "init-authority", &rv.url, &args).await;
    first.assert_code(0);
    assert_eq!(first.output("outcome"), "initialized");
    assert!(initialized(&rv.url).await);
    assert!(
        !sealed(&rv.url).await,
        "init-authority unseals after storing"
    );
    let s = env.secret(NS, NAME).await.expect("stored");
    assert_eq!(annotation(&s, "secops.io/authority-state"), "stored");
    assert_eq!(annotation(&s, "secops.io/unseal-encryption"), "age");
    assert_eq!(annotation(&s, "secops.io/unseal-recipients"), recipient);
    assert!(
        !s.data.as_ref().unwrap().contains_key("unseal-keys.json"),
        "no plaintext"
    );
    let keys = stored_keys(&env, &id).await;
    assert_eq!(keys.len(), 3);
    let result: Value = serde_json::from_str(first.output("result.json")).unwrap();
    assert_eq!(
        result["rootTokenRevoked"], true,
        "the root token is revoked once the keys are stored"
    );
    // Re-run: a no-op that never rewrites the material.
    let again = step(&env, "init-authority", &rv.url, &args).await;
    again.assert_code(0);
    assert_eq!(again.output("outcome"), "already-initialized");
    let s2 = env.secret(NS, NAME).await.unwrap();
    assert_eq!(s2.metadata.resource_version, s.metadata.resource_version);

    // A restart seals it; unseal reads, decrypts and unseals.
    rv.restart().await;
    assert!(sealed(&rv.url).await);
    let no_id = step(&env, "unseal", &rv.url, &[]).await;
    no_id.assert_code(2);
    let (wrong, _) = identity(&env, "stranger.age");
    let bad = step(
        &env,
        "unseal",
        &rv.url,
        &["--age-identity-file", wrong.to_str().unwrap()],
    )
    .await;
    bad.assert_code(3);
    assert!(sealed(&rv.url).await);
    let idf = id.to_str().unwrap();
    let un = step(&env, "unseal", &rv.url, &["--age-identity-file", idf]).await;
    un.assert_code(0);
    assert_eq!(un.output("outcome"), "unsealed");
    assert!(!sealed(&rv.url).await);
    let noop = step(&env, "unseal", &rv.url, &["--age-identity-file", idf]).await;
    noop.assert_code(0);
    assert_eq!(noop.output("outcome"), "already-unsealed");
    // No key share ever left the two authorities.
    for run in [&first, &again, &no_id, &bad, &un, &noop] {
        let all = format!("{}{}{:?}", run.stdout, run.stderr, run.outputs);
        for k in &keys {
            assert!(!all.contains(k.as_str()), "a key share leaked");
        }
    }
}

#[tokio::test]
async fn unseal_exits_5_while_there_is_no_material_and_3_for_foreign_keys() {
    let env = Env::start().await;
    env.vault.seal().await;
    let missing = step(&env, "unseal", &env.vault.url(), &[]).await;
    missing.assert_code(5);
    assert!(
        missing.stderr.contains("no unseal material"),
        "{}",
        missing.stderr
    );
    // Keys of another Vault (plaintext, on purpose): refused with exit 3, still sealed.
    let other = OpenBao::raft().await;
    step(
        &env,
        "init-authority",
        &other.url,
        &[
            "--plaintext-unseal-keys=true",
            "--key-shares",
            "1",
            "--key-threshold",
            "1",
        ],
    )
    .await
    .assert_code(0);
    let foreign = step(&env, "unseal", &env.vault.url(), &[]).await;
    foreign.assert_code(3);
    assert!(env.vault.is_sealed().await);
}

#[tokio::test]
async fn refusals_happen_before_init_and_never_overwrite_material() {
    let env = Env::start().await;
    let rv = OpenBao::raft().await;
    // No recipients and no consent to plaintext: usage error, Vault untouched.
    step(&env, "init-authority", &rv.url, &[])
        .await
        .assert_code(2);
    // The store is not writable: refused before sys/init.
    env.kube.forbid_namespace(NS);
    let forbidden = step(
        &env,
        "init-authority",
        &rv.url,
        &["--plaintext-unseal-keys=true"],
    )
    .await;
    forbidden.assert_code(3);
    assert!(
        !initialized(&rv.url).await,
        "nothing may be initialised without a writable store"
    );
    env.kube.allow_namespace(NS);
    // Material of an earlier Vault is never overwritten.
    env.seed(
        e2e::SeedSecret::bootstrap(NS, NAME)
            .unlabeled()
            .label("secops.io/class", "authority")
            .kv("unseal-keys.json", "{\"old\":true}"),
    )
    .await;
    let stale = step(
        &env,
        "init-authority",
        &rv.url,
        &["--plaintext-unseal-keys=true"],
    )
    .await;
    stale.assert_code(3);
    assert!(
        stale.stderr.contains("never overwritten"),
        "{}",
        stale.stderr
    );
    assert!(!initialized(&rv.url).await);
}

/// A loopback HTTP proxy to Vault that runs `hook` after Vault answered `PUT sys/init` and
/// before the answer reaches the step: the exact boundary of the crash window.
async fn proxy(upstream: String, hook: Arc<dyn Fn() + Send + Sync>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            let upstream = upstream.clone();
            let hook = hook.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut first = head.lines().next().unwrap().split(' ');
                let (method, path) = (
                    first.next().unwrap().to_owned(),
                    first.next().unwrap().to_owned(),
                );
                let mut req = client.request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{upstream}{path}"),
                );
                for l in head.lines().skip(1) {
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("x-vault-token")
                            || k.eq_ignore_ascii_case("content-type")
                        {
                            req = req.header(k.trim(), v.trim());
                        }
                    }
                }
                let resp = req
                    .body(buf[head_end..head_end + len].to_vec())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap();
                if method == "PUT" && path == "/v1/sys/init" && status == 200 {
                    hook();
                }
                let out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_crash_window_keeps_the_keys_while_the_process_lives_and_is_reported_after() {
    // 1. The store breaks right after Vault answered; it heals while the step retries.
    let env = Arc::new(Env::start().await);
    let rv = OpenBao::raft().await;
    let e = env.clone();
    let hook: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        e.kube.forbid_namespace(NS);
        let e = e.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            e.kube.allow_namespace(NS);
        });
    });
    let via = proxy(rv.url.clone(), hook).await;
    let (id, recipient) = identity(&env, "op.age");
    let healed = step(
        &env,
        "init-authority",
        &via,
        &[
            "--age-recipient",
            &recipient,
            "--key-shares",
            "1",
            "--key-threshold",
            "1",
        ],
    )
    .await;
    healed.assert_code(0);
    assert!(
        healed.stderr.contains("EXIST ONLY IN THIS PROCESS"),
        "{}",
        healed.stderr
    );
    assert_eq!(stored_keys(&env, &id).await.len(), 1);

    // 2. The store stays broken past the deadline: the step says the keys are lost, and
    //    every later run says so too (the placeholder shows init began, no material).
    let env = Arc::new(Env::start().await);
    let rv = OpenBao::raft().await;
    let e = env.clone();
    let via = proxy(
        rv.url.clone(),
        Arc::new(move || e.kube.forbid_namespace(NS)),
    )
    .await;
    let lost = step(
        &env,
        "init-authority",
        &via,
        &["--plaintext-unseal-keys=true", "--store-timeout", "1s"],
    )
    .await;
    lost.assert_code(3);
    assert!(lost.stderr.contains("LOST"), "{}", lost.stderr);
    assert!(initialized(&rv.url).await);
    env.kube.allow_namespace(NS);
    let s = env.secret(NS, NAME).await.expect("placeholder");
    assert_eq!(annotation(&s, "secops.io/authority-state"), "pending");
    assert!(s.data.unwrap_or_default().is_empty());
    let after = step(
        &env,
        "init-authority",
        &rv.url,
        &["--plaintext-unseal-keys=true"],
    )
    .await;
    after.assert_code(3);
    assert!(after.stderr.contains("LOST"), "{}", after.stderr);
    let placeholder_after = env.secret(NS, NAME).await.unwrap();
    assert_eq!(
        placeholder_after.metadata.resource_version,
        s.metadata.resource_version
    );
}

#[tokio::test]
async fn policies_and_roles_are_established_and_the_root_token_revoked() {
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/vault");
    let (id, recipient) = identity(&env, "op.age");
    let (policies, roles) = (templates.join("policies"), templates.join("roles"));
    // Vault reviews logins with the API server itself (not through the steps' proxy); any
    // CA stands for the cluster's on a plain-HTTP test server.
    let kube_url = env.kube.server_url();
    let kube_ca = env.dir.path().join("vault-ca.pem").display().to_string();
    let sa = sa_token(&env, "secops", "secops-init-authority");
    // A reviewer's token: the steps' tokens (audience vault) cannot review themselves.
    let reviewer = env.dir.path().join("reviewer.jwt");
    std::fs::write(
        &reviewer,
        env.kube.issue_service_account_token("vault", "vault-auth"),
    )
    .unwrap();
    let args = [
        "--age-recipient",
        recipient.as_str(),
        "--policies-dir",
        policies.to_str().unwrap(),
        "--roles-dir",
        roles.to_str().unwrap(),
        "--kubernetes-host",
        &kube_url,
        "--kubernetes-ca-file",
        &kube_ca,
        "--service-account-token-file",
        &sa,
        "--token-reviewer-jwt-file",
        reviewer.to_str().unwrap(),
    ];
    let run = step(&env, "init-authority", &vault.url(), &args).await;
    run.assert_code(0);
    let result: Value = serde_json::from_str(run.output("result.json")).unwrap();
    assert_eq!(result["rootTokenRevoked"], true);
    assert_eq!(result["state"], "established");
    assert!(!vault.is_sealed().await);
    let (st, body) = vault.bao.root("GET", "sys/mounts", None).await;
    assert_eq!(st, 403, "the root token is revoked: {body}");
    // Every shipped role logs in through the Kubernetes auth it enabled and configured, and
    // gets exactly its own policy.
    for p in std::fs::read_dir(templates.join("roles"))
        .unwrap()
        .flatten()
    {
        let name = p.path().file_stem().unwrap().to_str().unwrap().to_owned();
        let role: Value =
            serde_json::from_str(&std::fs::read_to_string(p.path()).unwrap()).unwrap();
        let sa_ns = role["bound_service_account_namespaces"][0]
            .as_str()
            .unwrap();
        let sa = role["bound_service_account_names"][0].as_str().unwrap();
        let policies = log_in(&env, &vault.url(), &name, sa_ns, sa).await;
        assert_eq!(policies, vec!["default".to_owned(), name.clone()], "{name}");
    }
    // The KV v2 mount the steps use exists: write-vault's role may create a secret.
    let token = log_in_token(
        &env,
        &vault.url(),
        "secops-write-vault",
        "secops",
        "secops-write-vault",
    )
    .await;
    let (st, body) = vault_call(
        &vault.url(),
        &token,
        "POST",
        "secret/data/apps/probe",
        Some(serde_json::json!({"options": {"cas": 0}, "data": {"k": "v"}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(stored_keys(&env, &id).await.len(), 5);
    let s = env.secret(NS, NAME).await.unwrap();
    assert_eq!(annotation(&s, "secops.io/authority-state"), "established");
    // Re-run without a token: it converges as the authority role, and nothing differs.
    let again = step(&env, "init-authority", &vault.url(), &args).await;
    again.assert_code(0);
    assert_eq!(again.output("outcome"), "converged");
    let result: Value = serde_json::from_str(again.output("result.json")).unwrap();
    assert_eq!(result["report"]["created"], serde_json::json!([]));
    assert_eq!(result["report"]["updated"], serde_json::json!([]));
    // Five shares, threshold three: unseal after a restart uses the stored keys.
    vault.seal().await;
    assert!(vault.is_sealed().await);
    step(
        &env,
        "unseal",
        &vault.url(),
        &["--age-identity-file", id.to_str().unwrap()],
    )
    .await
    .assert_code(0);
    assert!(!vault.is_sealed().await);
}

/// Logs in through Kubernetes auth role `role` as ServiceAccount `ns/sa`; the token.
async fn log_in_token(env: &Env, url: &str, role: &str, ns: &str, sa: &str) -> String {
    let jwt = env.kube.issue_token_for(ns, sa, e2e::VAULT_AUDIENCE);
    let (st, body) = vault_call(
        url,
        "",
        "POST",
        "auth/kubernetes/login",
        Some(serde_json::json!({"role": role, "jwt": jwt})),
    )
    .await;
    assert_eq!(st, 200, "login as {role}: {body}");
    body["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// The policies a login through `role` gets, sorted.
async fn log_in(env: &Env, url: &str, role: &str, ns: &str, sa: &str) -> Vec<String> {
    let token = log_in_token(env, url, role, ns, sa).await;
    let (st, body) = vault_call(url, &token, "GET", "auth/token/lookup-self", None).await;
    assert_eq!(st, 200, "{body}");
    let mut p: Vec<String> = serde_json::from_value(body["data"]["policies"].clone()).unwrap();
    p.sort();
    p
}

/// The shipped bring-up WorkflowTemplate and the re-unseal CronWorkflow, run as Argo runs
/// them (their own args, env, volumes: the grants ConfigMap and the identity Secret), with the
/// Kubernetes API recording what each ServiceAccount did.
#[tokio::test]
async fn bring_up_and_re_unseal_templates_run_with_only_their_secret_grants() {
    use e2e::argo::{authority_file, Phase, Runner};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    // The authority's workflows run in its own namespace, beside the unseal Secret.
    let runner = Runner::authority(&env);
    assert_eq!(runner.namespace(), NS);
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/vault");
    // What templates/vault's configMapGenerator makes: every policy and role, by file name.
    let mut grants = std::collections::BTreeMap::new();
    for sub in ["policies", "roles"] {
        for f in std::fs::read_dir(templates.join(sub)).unwrap().flatten() {
            grants.insert(
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(f.path()).unwrap(),
            );
        }
    }
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("secops-vault-grants".into()),
            ..Default::default()
        },
        data: Some(grants),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let id = age::x25519::Identity::generate();
    env.seed(
        e2e::SeedSecret::bootstrap(NS, "secops-unseal-identity")
            .unlabeled()
            .kv("key.txt", id.to_string().expose_secret()),
    )
    .await;
    // Vault "outside the cluster" reviews logins with a reviewer's token: the steps' tokens
    // are for the audience vault and cannot review themselves.
    env.seed(
        e2e::SeedSecret::bootstrap(NS, "secops-vault-reviewer")
            .unlabeled()
            .kv(
                "token",
                env.kube.issue_service_account_token("vault", "vault-auth"),
            ),
    )
    .await;
    let recipient = id.to_public().to_string();
    let url = vault.url();
    let kube_url = env.kube.server_url();
    let kube_ca = env.dir.path().join("vault-ca.pem").display().to_string();
    let bring_up = runner
        .submit(
            authority_file("authority-bring-up.yaml"),
            &[
                ("vault-addr", url.as_str()),
                ("age-recipients", recipient.as_str()),
                ("key-shares", "3"),
                ("key-threshold", "2"),
                ("kubernetes-host", kube_url.as_str()),
                ("kubernetes-ca-file", kube_ca.as_str()),
                (
                    "token-reviewer-jwt-file",
                    "/etc/secops/vault-reviewer/token",
                ),
            ],
        )
        .await
        .unwrap();
    bring_up.assert_phase(Phase::Succeeded);
    assert!(!vault.is_sealed().await);
    assert_eq!(
        log_in(&env, &url, "secops-rotate", "secops", "secops-rotate").await,
        ["default", "secops-rotate"]
    );
    let s = env.secret(NS, NAME).await.unwrap();
    assert_eq!(annotation(&s, "secops.io/authority-state"), "established");
    // The output artifact `unseal-material` (what the artifact repository keeps, and what the
    // runbook commits to Git) is the Secret's age ciphertext byte for byte, and it opens
    // with the operators' identity only.
    let copy = bring_up.pod("init-authority").artifact("unseal-material");
    let stored = &s.data.as_ref().unwrap()["unseal-keys.json.age"].0;
    assert_eq!(copy, stored.as_slice());
    let opened = age::decrypt(&id, copy).expect("the copy opens with the operators' identity");
    assert!(serde_json::from_slice::<serde_json::Value>(&opened).is_ok());
    assert!(!copy.windows(5).any(|w| w == b"keys\"" || w == b"root_"));

    // The daily convergence CronWorkflow: no root token, the authority role, nothing differs.
    let run = runner
        .submit_cron(
            authority_file("authority-bring-up.yaml"),
            "2026-11-29T04:17:00Z",
            &[
                ("vault-addr", url.as_str()),
                ("kubernetes-host", kube_url.as_str()),
                ("kubernetes-ca-file", kube_ca.as_str()),
            ],
        )
        .await
        .unwrap();
    run.assert_phase(Phase::Succeeded);
    assert_eq!(run.pod("init-authority").output("outcome"), "converged");

    // A restart (sealed): the CronWorkflow's run unseals; the next one is a no-op.
    vault.seal().await;
    for expect in ["unsealed", "already-unsealed"] {
        let run = runner
            .submit_cron(
                authority_file("authority-unseal.yaml"),
                "2026-11-29T05:00:00Z",
                &[("vault-addr", url.as_str())],
            )
            .await
            .unwrap();
        run.assert_phase(Phase::Succeeded);
        assert_eq!(run.pod("unseal").output("outcome"), expect);
    }
    assert!(!vault.is_sealed().await);

    // Kubernetes: init-authority and unseal touched Secrets in secops-authority only, with
    // exactly the verbs templates/authority/roles.yaml grants. (TokenReviews are Vault's:
    // without a reviewer JWT it presents each login's own token to review it.)
    let mut used = std::collections::BTreeSet::new();
    for a in env.kube.accesses() {
        if a.resource == "tokenreviews" {
            continue;
        }
        for sa in ["secops-init-authority", "secops-unseal"] {
            if a.user == e2e::argo::service_account_user(NS, sa) {
                assert_eq!(
                    (a.namespace.as_str(), a.resource.as_str()),
                    (NS, "secrets"),
                    "{a:?}"
                );
                used.insert((sa, a.verb.clone()));
            }
        }
    }
    let want: std::collections::BTreeSet<(&str, String)> = [
        ("secops-init-authority", "create"),
        ("secops-init-authority", "get"),
        ("secops-init-authority", "patch"),
        ("secops-unseal", "get"),
    ]
    .into_iter()
    .map(|(s, v)| (s, v.to_owned()))
    .collect();
    assert_eq!(used, want);
}

/// A ServiceAccount token file for the audience `vault`, as the templates project one.
fn sa_token(env: &Env, ns: &str, sa: &str) -> String {
    let path = env.dir.path().join(format!("{ns}-{sa}.token"));
    std::fs::write(&path, env.kube.issue_token_for(ns, sa, "vault")).unwrap();
    path.display().to_string()
}

/// A reviewer's token (audience: the API server), for a Vault outside the cluster.
fn reviewer_token(env: &Env) -> String {
    let path = env.dir.path().join("vault-auth.reviewer.jwt");
    std::fs::write(
        &path,
        env.kube.issue_service_account_token("vault", "vault-auth"),
    )
    .unwrap();
    path.display().to_string()
}

/// A step against another Vault (`url`), logging in with Kubernetes auth as `role`.
async fn step_as(env: &Env, name: &'static str, url: &str, role: &str, args: &[&str]) -> StepRun {
    env.step(name)
        .no_vault_defaults()
        .env("VAULT_ADDR", url)
        .env("SECOPS_VAULT_AUTH", "kubernetes")
        .env("SECOPS_VAULT_ROLE", role)
        .args([
            "--service-account-token-file".to_owned(),
            sa_token(env, "secops", role),
        ])
        .args(args.iter().copied())
        .run()
        .await
}

/// init-authority's arguments for a bring-up of everything `templates/vault` declares from
/// `vault_dir`, Vault reaching kube-server directly for its TokenReviews.
fn bring_up_args(env: &Env, vault_dir: &std::path::Path, recipient: &str) -> Vec<String> {
    let d = |s: &str| vault_dir.join(s).display().to_string();
    vec![
        "--age-recipient".into(),
        recipient.into(),
        "--key-shares".into(),
        "3".into(),
        "--key-threshold".into(),
        "2".into(),
        "--policies-dir".into(),
        d("policies"),
        "--roles-dir".into(),
        d("roles"),
        "--password-policies-dir".into(),
        d("password-policies"),
        "--kv-max-versions".into(),
        "20".into(),
        "--kubernetes-host".into(),
        env.kube.server_url(),
        "--kubernetes-ca-file".into(),
        env.dir.path().join("vault-ca.pem").display().to_string(),
        "--service-account-token-file".into(),
        sa_token(env, "secops", "secops-init-authority"),
        "--token-reviewer-jwt-file".into(),
        reviewer_token(env),
    ]
}

fn templates_vault() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/vault")
}

fn report(run: &StepRun) -> Value {
    let result: Value = serde_json::from_str(run.output("result.json")).unwrap();
    result["report"].clone()
}

fn names(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_openbao_is_brought_up_serves_the_steps_and_converges_later_without_root() {
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    let url = vault.url();
    let (id, recipient) = identity(&env, "op.age");
    let args = bring_up_args(&env, &templates_vault(), &recipient);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // 1. Bring-up from nothing: everything declared is created, verified, root revoked.
    let first = step(&env, "init-authority", &url, &args).await;
    first.assert_code(0);
    let result: Value = serde_json::from_str(first.output("result.json")).unwrap();
    assert_eq!(result["rootTokenRevoked"], true);
    assert_eq!(result["state"], "established");
    let declared = |sub: &str| {
        std::fs::read_dir(templates_vault().join(sub))
            .unwrap()
            .count()
    };
    let created = names(&report(&first)["created"]);
    assert_eq!(
        created.len(),
        declared("policies") + declared("roles") + declared("password-policies"),
        "every declared object: {created:?}"
    );
    // The KV engine exists with Vault's defaults once enabled: its config is updated.
    assert_eq!(
        names(&report(&first)["updated"]),
        ["KV engine secret/ config"]
    );
    assert!(first.stderr.contains("verified"), "{}", first.stderr);

    // 2. The steps work with the roles it established: a handover, then a rotation whose
    //    generator is the declared password policy.
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "from-git"))
        .await;
    let r = env.only_reference("apps").await;
    let wv = step_as(
        &env,
        "write-vault",
        &url,
        "secops-write-vault",
        &["--reference", &r],
    )
    .await;
    wv.assert_code(0);
    let mc = step_as(
        &env,
        "mark-consumed",
        &url,
        "secops-mark-consumed",
        &["--reference", &r, "--mode", "delete"],
    )
    .await;
    mc.assert_code(0);
    let rot = step_as(
        &env,
        "rotate",
        &url,
        "secops-rotate",
        &[
            "--path",
            "apps/db",
            "--key",
            "password=policy:secops-strong",
            "--rotation-id",
            "r1",
        ],
    )
    .await;
    rot.assert_code(0);

    // 3. A later run has no root token: it logs in as the authority role; nothing differs.
    let again = step(&env, "init-authority", &url, &args).await;
    again.assert_code(0);
    assert_eq!(again.output("outcome"), "converged");
    assert_eq!(names(&report(&again)["created"]), Vec::<String>::new());
    assert_eq!(names(&report(&again)["updated"]), Vec::<String>::new());
    assert_eq!(names(&report(&again)["unchanged"]).len(), created.len() + 1);

    // 4. Drift, by an operator with a root token from the stored shares: a shipped policy
    //    changed by hand and a policy that is not ours.
    let keys = stored_keys(&env, &id).await;
    let root = vault.bao.generate_root(&keys[..2]).await;
    let by_hand = |method: &'static str, path: &'static str, body: Value| {
        let (url, root) = (vault.bao.url.clone(), root.clone());
        async move {
            let (st, b) = vault_call(&url, &root, method, path, Some(body)).await;
            assert!(st < 300, "{path}: {st} {b}");
        }
    };
    by_hand(
        "PUT",
        "sys/policies/acl/secops-write-vault",
        serde_json::json!({"policy": "path \"secret/*\" { capabilities = [\"sudo\", \"delete\"] }"}),
    )
    .await;
    by_hand(
        "PUT",
        "sys/policies/acl/someone-elses",
        serde_json::json!({"policy": "path \"other/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let healed = step(&env, "init-authority", &url, &args).await;
    healed.assert_code(0);
    assert_eq!(
        names(&report(&healed)["updated"]),
        ["ACL policy secops-write-vault"]
    );
    assert_eq!(
        names(&report(&healed)["extras"]),
        ["ACL policy someone-elses"]
    );
    let (_, p) = vault_call(
        &url,
        &root,
        "GET",
        "sys/policies/acl/secops-write-vault",
        None,
    )
    .await;
    assert_eq!(
        p["data"]["policy"].as_str().unwrap().trim_end(),
        std::fs::read_to_string(templates_vault().join("policies/secops-write-vault.hcl"))
            .unwrap()
            .trim_end(),
        "the shipped policy is back"
    );
    let (st, _) = vault_call(&url, &root, "GET", "sys/policies/acl/someone-elses", None).await;
    assert_eq!(st, 200, "an extra is reported, never deleted");
    // The authority role may touch nothing else: not a policy it does not declare.
    let authority = log_in_token(
        &env,
        &url,
        "secops-authority",
        "secops",
        "secops-init-authority",
    )
    .await;
    let (st, _) = vault_call(
        &url,
        &authority,
        "PUT",
        "sys/policies/acl/someone-elses",
        Some(serde_json::json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"})),
    )
    .await;
    assert_eq!(
        st, 403,
        "the authority role cannot write undeclared policies"
    );
    let (st, _) = vault_call(
        &url,
        &authority,
        "PUT",
        "sys/policies/acl/secops-authority",
        Some(serde_json::json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"})),
    )
    .await;
    assert_eq!(st, 403, "nor widen its own");
    vault_call(&url, &root, "POST", "auth/token/revoke-self", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_object_vault_rejects_is_named_with_what_was_established_and_what_is_left() {
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    let url = vault.url();
    // A copy of templates/vault with one policy OpenBao cannot parse.
    let dir = tempfile::tempdir().unwrap();
    for sub in ["policies", "roles", "password-policies"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for f in std::fs::read_dir(templates_vault().join(sub))
            .unwrap()
            .flatten()
        {
            std::fs::copy(f.path(), dir.path().join(sub).join(f.file_name())).unwrap();
        }
    }
    let broken = dir.path().join("policies/secops-zz-broken.hcl");
    std::fs::write(&broken, "path \"secret/*\" {\n  capabilities = [\"read\"\n").unwrap();
    let (_, recipient) = identity(&env, "op.age");
    let args = bring_up_args(&env, dir.path(), &recipient);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = step(&env, "init-authority", &url, &args).await;
    run.assert_code(3);
    for part in [
        "ACL policy secops-zz-broken",
        "secops-zz-broken.hcl",
        "established so far",
        "ACL policy secops-write-vault",
        "left: [\"ACL policy secops-zz-broken\", \"auth role kubernetes/secops-audit-authority\"",
    ] {
        assert!(run.stderr.contains(part), "{part:?} in {}", run.stderr);
    }
    // Fixed in Git, the next run converges as the authority role (the root token is gone).
    std::fs::remove_file(&broken).unwrap();
    let fixed = step(&env, "init-authority", &url, &args).await;
    fixed.assert_code(0);
    assert_eq!(fixed.output("outcome"), "established");
    assert!(names(&report(&fixed)["created"])
        .contains(&"auth role kubernetes/secops-write-vault".to_owned()));
}

/// A fresh raft OpenBao behind a proxy that faults every request, `sys/` included: the
/// establishing requests are `sys/` writes.
async fn fresh_vault_faultable() -> (e2e::openbao::OpenBao, fault_injection::Handle) {
    let bao = OpenBao::raft().await;
    let proxy = fault_injection::start(fault_injection::Options::new(
        bao.url.clone(),
        fault_injection::Dialect::Vault,
    ))
    .await
    .unwrap();
    (bao, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bring_up_killed_while_establishing_converges_on_the_rerun_once_the_authority_role_exists(
) {
    // Kill points named by the request they interrupt (health polls before them vary in
    // number): the first establishing request, the authority role unsent and landed with its
    // answer lost, the first declared object, the verification login, the root revocation.
    let role = "/v1/auth/kubernetes/role/secops-authority";
    let points: [(&str, &str, bool, bool); 6] = [
        ("GET", "/v1/sys/auth", false, false),
        ("POST", role, false, false),
        ("POST", role, true, true),
        (
            "POST",
            "/v1/sys/policies/password/secops-strong",
            false,
            true,
        ),
        ("POST", "/v1/auth/kubernetes/login", false, true),
        ("POST", "/v1/auth/token/revoke-self", false, true),
    ];
    for (method, path, served, role_landed) in points {
        let what = format!("killed at {method} {path} (served: {served})");
        let env = Env::start().await;
        let (_bao, proxy) = fresh_vault_faultable().await;
        let (_, recipient) = identity(&env, "op.age");
        let args = bring_up_args(&env, &templates_vault(), &recipient);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        proxy.set_fault(Some(fault_injection::Fault::KillAt {
            method,
            path: path.into(),
            served,
        }));
        let killed = step(&env, "init-authority", &proxy.url(), &args).await;
        // Revoking the root token is best effort (a warning): the rest was done.
        if !path.ends_with("revoke-self") {
            assert_ne!(killed.code, 0, "{what}: {}", killed.stderr);
        }
        assert!(
            proxy
                .records()
                .iter()
                .any(|r| r.method == method && r.path == path),
            "{what}: the kill point was reached"
        );
        proxy.set_fault(None);
        let kept = env.secret(NS, NAME).await.expect("material stored").data;
        let rerun = step(&env, "init-authority", &proxy.url(), &args).await;
        if role_landed {
            rerun.assert_code(0);
            let r = report(&rerun);
            let all = names(&r["created"]).len()
                + names(&r["updated"]).len()
                + names(&r["unchanged"]).len();
            assert_eq!(all, 18, "{what}: every declared object converged: {r}");
        } else {
            // Before the authority role exists only an operator token helps (docs/runbook.md).
            rerun.assert_code(3);
            assert!(
                rerun.stderr.contains("generate-root"),
                "{what}: {}",
                rerun.stderr
            );
        }
        let s = env.secret(NS, NAME).await.unwrap();
        assert_eq!(s.data, kept, "{what}: the material is never rewritten");
        assert_eq!(
            annotation(&s, "secops.io/authority-state"),
            if role_landed { "established" } else { "stored" },
            "{what}"
        );
    }
}
