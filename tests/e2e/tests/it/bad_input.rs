//! The bad-input corpus: one test per case. Each case sets up canary-valued Secrets (and
//! Vault data or a Vault fault), runs one step as a process, and checks the contract for bad
//! input: a clear message on stderr (object, reason, next step), the documented exit code,
//! no canary anywhere in what the step printed or wrote, and no write anywhere — no Vault
//! write, no Kubernetes mutation (a Warning Event recording the refusal is the one write a
//! refusal makes, and it is allowed), every seeded Secret at its old resourceVersion.
//!
//! Limits chosen here and documented in docs/threat-model.md: at most `MAX_KEYS` (512) keys per
//! Secret, 10 000 references per batch, 8 MiB of reference JSON; paths at most 512 bytes.

use base64::Engine as _;
use e2e::{Env, SeedSecret, StepRun};
use fault_injection::Fault;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use serde_json::{json, Value};

macro_rules! canary {
    () => {
        "CANARY-b4d-1npu7-do-not-leak"
    };
}
const CANARY: &str = canary!();
const NS: &str = "apps";

/// An argument of the step, resolved once the Secrets exist.
enum Arg {
    Lit(String),
    /// `--reference` with the reference of the first seeded Secret (as read-bootstrap would
    /// write it, from the live object), edited.
    Ref(fn(&mut Value)),
    /// `--reference-file` holding these bytes.
    RefFile(Box<dyn Fn() -> Vec<u8> + Send>),
}

struct Case {
    secrets: Vec<Secret>,
    forbidden: Vec<String>,
    vault_seed: Vec<(&'static str, Value)>,
    /// write-vault the first Secret's reference before the step under test.
    pre_write: bool,
    fault: Option<Fault>,
    step: &'static str,
    args: Vec<Arg>,
    env: Vec<(&'static str, String)>,
    code: i32,
    says: Vec<String>,
}

fn case(step: &'static str) -> Case {
    Case {
        secrets: Vec::new(),
        forbidden: Vec::new(),
        vault_seed: Vec::new(),
        pre_write: false,
        fault: None,
        step,
        args: Vec::new(),
        env: Vec::new(),
        code: -1,
        says: Vec::new(),
    }
}

impl Case {
    fn seed(mut self, s: SeedSecret) -> Self {
        self.secrets.push(s.build());
        self
    }
    fn seed_raw(mut self, s: Secret) -> Self {
        self.secrets.push(s);
        self
    }
    fn args<const N: usize>(mut self, a: [&str; N]) -> Self {
        self.args.extend(a.iter().map(|s| Arg::Lit(s.to_string())));
        self
    }
    fn reference(mut self, edit: fn(&mut Value)) -> Self {
        self.args.push(Arg::Lit("--reference".into()));
        self.args.push(Arg::Ref(edit));
        self
    }
    fn reference_file(mut self, bytes: impl Fn() -> Vec<u8> + Send + 'static) -> Self {
        self.args.push(Arg::Lit("--reference-file".into()));
        self.args.push(Arg::RefFile(Box::new(bytes)));
        self
    }
    fn env(mut self, k: &'static str, v: &str) -> Self {
        self.env.push((k, v.to_string()));
        self
    }
    fn fault(mut self, path_prefix: &str, status: u16, body: &'static str) -> Self {
        self.fault = Some(Fault::Garbage {
            path_prefix: path_prefix.into(),
            status,
            body,
        });
        self
    }
    fn pre_write(mut self) -> Self {
        self.pre_write = true;
        self
    }
    fn vault_seed(mut self, path: &'static str, data: Value) -> Self {
        self.vault_seed.push((path, data));
        self
    }
    fn forbid(mut self, ns: &str) -> Self {
        self.forbidden.push(ns.into());
        self
    }
    fn exits(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
    /// Substrings stderr must hold: the object, the reason and (where one helps) the next step.
    fn says<const N: usize>(mut self, s: [&str; N]) -> Self {
        self.says.extend(s.iter().map(|s| s.to_string()));
        self
    }
}

/// A labelled bootstrap Secret in `apps` holding the canary, as text and as binary.
fn canary_secret(name: &str) -> SeedSecret {
    SeedSecret::bootstrap(NS, name)
        .kv("password", CANARY)
        .kv("blob", [CANARY.as_bytes(), &[0xff, 0x00]].concat())
}

/// read-bootstrap for the Secret `s` in `apps` by name.
fn rb_one(s: SeedSecret) -> Case {
    case("read-bootstrap")
        .seed(s)
        .args(["--namespaces", NS, "--namespace", NS, "--name", "s"])
}

/// A path annotation that must be refused by read-bootstrap.
fn bad_path(annotation: &str, reason: &str) -> Case {
    rb_one(canary_secret("s").annotate("secops.io/vault-path", annotation))
        .exits(3)
        .says([
            "Secret apps/s",
            "target path refused",
            reason,
            "fix or remove the secops.io/vault-path annotation",
        ])
}

/// write-vault with the (edited) reference of the first Secret.
fn wv_ref(s: SeedSecret, edit: fn(&mut Value)) -> Case {
    case("write-vault").seed(s).reference(edit)
}

fn keep(_: &mut Value) {}

fn with_owner(mut s: Secret) -> Secret {
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "db-operator".into(),
        uid: "4b1d9f3e-0000-4000-8000-000000000001".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    s
}

fn with_finalizer(mut s: Secret) -> Secret {
    s.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    s
}

fn many_keys(n: usize) -> SeedSecret {
    (0..n).fold(SeedSecret::bootstrap(NS, "s"), |s, i| {
        s.kv(&format!("k{i}"), format!("{CANARY}-{i}"))
    })
}

fn reference_json(s: &Secret) -> Value {
    let ns = s.metadata.namespace.clone().unwrap();
    let name = s.metadata.name.clone().unwrap();
    let path = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("secops.io/vault-path").cloned())
        .unwrap_or_else(|| format!("{ns}/{name}"));
    json!({
        "namespace": ns,
        "name": name,
        "uid": s.metadata.uid,
        "resourceVersion": s.metadata.resource_version,
        "path": path,
        "keys": s.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
    })
}

fn forms() -> [String; 3] {
    let b64 = base64::engine::general_purpose::STANDARD;
    [
        CANARY.to_string(),
        b64.encode(CANARY),
        b64.encode([CANARY.as_bytes(), &[0xff, 0x00]].concat()),
    ]
}

fn assert_no_canary(name: &str, run: &StepRun) {
    for f in forms() {
        assert!(!run.stdout.contains(&f), "{name}: canary on stdout");
        assert!(!run.stderr.contains(&f), "{name}: canary on stderr");
        for (o, body) in &run.outputs {
            assert!(!body.contains(&f), "{name}: canary in output {o}");
        }
    }
}

/// Vault requests that change something (login and token revocation change no secret).
fn vault_writes(log: &[(String, String)]) -> Vec<(String, String)> {
    log.iter()
        .filter(|(m, p)| {
            !matches!(m.as_str(), "GET" | "LIST")
                && !p.starts_with("/v1/auth/")
                && !p.starts_with("/v1/sys/")
        })
        .cloned()
        .collect()
}

/// Kubernetes requests that change something, except recording an Event.
fn kube_mutations(log: &[(String, String)]) -> Vec<(String, String)> {
    log.iter()
        .filter(|(m, p)| m != "GET" && !(m == "POST" && p.contains("/events")))
        .cloned()
        .collect()
}

async fn run(name: &str, c: Case) {
    assert!(c.code >= 0, "{name}: no expected exit code");
    let env = Env::start_with(c.forbidden.clone()).await;
    let mut live = Vec::new();
    for s in &c.secrets {
        let ns = s.metadata.namespace.clone().unwrap();
        live.push(
            env.secrets(&ns)
                .create(&PostParams::default(), s)
                .await
                .unwrap_or_else(|e| panic!("{name}: seed: {e}")),
        );
    }
    for (path, data) in &c.vault_seed {
        let (st, body) = env
            .vault_root(
                "POST",
                &format!("secret/data/{path}"),
                Some(json!({ "data": data })),
            )
            .await;
        assert_eq!(st, 200, "{name}: vault seed: {body}");
    }
    if c.pre_write {
        let r = reference_json(&live[0]).to_string();
        env.write_vault(&r).await.assert_code(0);
        live[0] = env.secret(NS, "s").await.unwrap();
    }
    let mut args = Vec::new();
    for a in &c.args {
        args.push(match a {
            Arg::Lit(s) => s.clone(),
            Arg::Ref(edit) => {
                let mut r = reference_json(&live[0]);
                edit(&mut r);
                r.to_string()
            }
            Arg::RefFile(bytes) => {
                let p = env.dir.path().join("reference-file");
                std::fs::write(&p, bytes()).unwrap();
                p.display().to_string()
            }
        });
    }
    let vault_before = env.vault.requests().len();
    let kube_before = env.kube.requests().len();
    let versions_before = vault_versions(&env, &c).await;
    if let Some(f) = &c.fault {
        env.vault.set_fault(Some(f.clone()));
    }
    let mut step = env.step(c.step).args(args);
    for (k, v) in &c.env {
        step = step.env(k, v.clone());
    }
    let run = step.run().await;
    env.vault.set_fault(None);

    assert_eq!(
        run.code, c.code,
        "{name}: exit code\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for s in &c.says {
        assert!(
            run.stderr.contains(s.as_str()),
            "{name}: stderr does not say {s:?}:\n{}",
            run.stderr
        );
    }
    assert_no_canary(name, &run);
    // A refusal (exit 3) names the object, the reason and the next step: on stderr, or for a
    // discovery that refused some Secrets, in each entry of refused.json.
    if c.code == 3 {
        match crate::refusals::stderr_refusal(c.step, &run.stderr) {
            Some(m) => {
                crate::refusals::refusal_parts(m);
            }
            None => {
                let refused: Vec<Value> =
                    serde_json::from_str(run.outputs.get("refused.json").unwrap_or_else(|| {
                        panic!("{name}: exit 3 without a refusal message:\n{}", run.stderr)
                    }))
                    .unwrap();
                assert!(!refused.is_empty(), "{name}: exit 3, nothing refused");
                for r in &refused {
                    crate::refusals::refusal_parts(r["reason"].as_str().unwrap());
                }
            }
        }
    }

    // Nothing written: the servers' logs show no change, Vault holds what it held.
    let vault_log = env.vault.requests()[vault_before..].to_vec();
    let writes = vault_writes(&vault_log);
    if c.fault.is_none() {
        assert!(writes.is_empty(), "{name}: Vault writes {writes:?}");
    }
    assert_eq!(
        vault_versions(&env, &c).await,
        versions_before,
        "{name}: Vault versions changed"
    );
    let mutations = kube_mutations(&env.kube.requests()[kube_before..]);
    assert!(
        mutations.is_empty(),
        "{name}: Kubernetes mutations {mutations:?}"
    );
    for s in &live {
        let (ns, n) = (
            s.metadata.namespace.as_deref().unwrap(),
            s.metadata.name.as_deref().unwrap(),
        );
        let now = env.secret(ns, n).await.expect("still there");
        assert_eq!(
            now.metadata.resource_version, s.metadata.resource_version,
            "{name}: Secret {ns}/{n} changed"
        );
    }
    // Every audit line is JSON and none reports a change.
    for a in run.audit() {
        assert!(
            !matches!(
                a["outcome"].as_str(),
                Some("written" | "consumed" | "rotated" | "pushed")
            ),
            "{name}: audit reports a change: {a}"
        );
    }
}

/// Current version of every path a case could touch (the Secrets' targets and seeds).
async fn vault_versions(env: &Env, c: &Case) -> Vec<(String, Option<u64>)> {
    let mut paths: Vec<String> = c
        .secrets
        .iter()
        .map(|s| {
            reference_json(s)["path"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    paths.extend(c.vault_seed.iter().map(|(p, _)| p.to_string()));
    paths.push(format!("internal/{NS}/s"));
    let mut out = Vec::new();
    for p in paths.into_iter().filter(|p| !p.is_empty()) {
        // A path Vault cannot address (control characters, ...) holds nothing: 400 or 404.
        let (st, body) = env
            .vault_root("GET", &format!("secret/metadata/{p}"), None)
            .await;
        let v = match st {
            200 => body["data"]["current_version"].as_u64(),
            400 | 404 => None,
            _ => panic!("{p:?}: {st} {body}"),
        };
        out.push((p, v));
    }
    out
}

macro_rules! corpus {
    ($($name:ident => $case:expr;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run(stringify!($name), $case).await;
            }
        )+

        #[test]
        fn the_corpus_has_at_least_sixty_distinct_cases() {
            let names = [$(stringify!($name)),+];
            let unique: std::collections::BTreeSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len());
            assert!(names.len() >= 60, "{} cases", names.len());
        }
    };
}

const GARBAGE_HTML: &str = "<html><body>502 Bad Gateway (but status 200)</body></html>";

corpus! {
    // --- labels: only explicitly labelled bootstrap Secrets -------------------------------
    unlabeled_secret_by_name => rb_one(canary_secret("s").unlabeled())
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap", "label it"]);
    class_label_with_another_value => rb_one(canary_secret("s").unlabeled().label("secops.io/class", "runtime"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    class_label_value_in_other_case => rb_one(canary_secret("s").unlabeled().label("secops.io/class", "Bootstrap"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    class_label_value_with_suffix => rb_one(canary_secret("s").unlabeled().label("secops.io/class", "bootstrap-v2"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    class_label_key_in_other_case => rb_one(canary_secret("s").unlabeled().label("secops.io/Class", "bootstrap"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    class_label_key_of_another_domain => rb_one(canary_secret("s").unlabeled().label("secops.example.com/class", "bootstrap"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    internal_secret_is_not_a_bootstrap => rb_one(canary_secret("s").unlabeled().label("secops.io/class", "internal"))
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap"]);
    forged_reference_to_an_unlabeled_secret => wv_ref(canary_secret("s").unlabeled(), keep)
        .exits(3).says(["Secret apps/s", "is not labeled secops.io/class=bootstrap", "only explicitly labeled"]);
    push_secret_refuses_a_bootstrap_secret_by_name => case("push-secret").seed(canary_secret("s"))
        .args(["--namespaces", NS, "--namespace", NS, "--name", "s"])
        .exits(3).says(["Secret apps/s", "secops.io/class=internal"]);

    // --- Secrets managed by something else -------------------------------------------------
    owner_references => case("read-bootstrap").seed_raw(with_owner(canary_secret("s").build()))
        .args(["--namespaces", NS, "--namespace", NS, "--name", "s"])
        .exits(3).says(["Secret apps/s", "has owner references", "remove the bootstrap label"]);
    finalizers => case("read-bootstrap").seed_raw(with_finalizer(canary_secret("s").build()))
        .args(["--namespaces", NS, "--namespace", NS, "--name", "s"])
        .exits(3).says(["Secret apps/s", "has finalizers", "remove the finalizers"]);
    forged_reference_to_an_owned_secret => case("write-vault").seed_raw(with_owner(canary_secret("s").build()))
        .reference(keep)
        .exits(3).says(["Secret apps/s", "has owner references"]);
    forged_reference_to_a_finalized_secret => case("write-vault").seed_raw(with_finalizer(canary_secret("s").build()))
        .reference(keep)
        .exits(3).says(["Secret apps/s", "has finalizers"]);
    service_account_token => rb_one(
            canary_secret("s")
                .typed("kubernetes.io/service-account-token")
                .annotate("kubernetes.io/service-account.name", "default"),
        )
        .exits(3).says(["Secret apps/s", "is a service-account token", "remove the bootstrap label"]);
    forged_reference_to_a_service_account_token => wv_ref(
            canary_secret("s")
                .typed("kubernetes.io/service-account-token")
                .annotate("kubernetes.io/service-account.name", "default"),
            keep,
        )
        .exits(3).says(["Secret apps/s", "is a service-account token"]);
    secret_without_data => rb_one(SeedSecret::bootstrap(NS, "s"))
        .exits(3).says(["Secret apps/s", "has no data", "GitOps source"]);
    immutable_secret_cannot_be_made_inert => case("mark-consumed").seed(canary_secret("s").immutable()).pre_write()
        .reference(keep).args(["--mode", "inert"])
        .exits(3).says(["Secret apps/s", "immutable"]);

    // --- namespaces and names ---------------------------------------------------------------
    namespace_outside_the_allowed_ones => case("read-bootstrap").seed(canary_secret("s"))
        .args(["--namespaces", NS, "--namespace", "kube-system", "--name", "s"])
        .exits(2).says(["\"kube-system\"", "not among the allowed --namespaces", "add it there"]);
    namespace_forbidden_by_rbac => case("read-bootstrap").forbid("locked")
        .args(["--namespaces", "locked"])
        .exits(3).says(["Secrets in namespace locked", "forbidden", "grant the step's ServiceAccount"]);
    namespace_name_not_a_dns_label => case("read-bootstrap").args(["--namespaces", "Apps"])
        .exits(2).says(["--namespaces", "\"Apps\"", "not a namespace name"]);
    namespace_name_with_traversal => case("read-bootstrap").args(["--namespaces", "../apps"])
        .exits(2).says(["\"../apps\"", "not a namespace name"]);
    namespaces_from_env_with_a_bad_one => case("read-bootstrap").env("SECOPS_NAMESPACES", "apps,Kube")
        .exits(2).says(["\"Kube\"", "not a namespace name"]);
    no_namespaces => case("read-bootstrap")
        .exits(2).says(["required arguments were not provided", "--namespaces <NAMESPACES>"]);
    secret_name_dot_dot => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", ".."])
        .exits(2).says(["--name", "is not a Secret name"]);
    secret_name_percent_encoded_dots => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", "%2e%2e"])
        .exits(2).says(["--name \"%2e%2e\"", "is not a Secret name"]);
    secret_name_with_a_slash => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", "x/../../secrets"])
        .exits(2).says(["is not a Secret name"]);
    secret_name_with_a_control_character => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", "db\u{1b}[2J"])
        .exits(2).says(["is not a Secret name"]);
    name_and_selector_together => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", "s", "--selector", "a=b"])
        .exits(2).says(["--selector", "cannot be combined with --name"]);
    selector_with_a_control_character => case("read-bootstrap").args(["--namespaces", NS, "--selector", "team=a\u{7}"])
        .exits(2).says(["--selector has control characters"]);
    secret_not_found => case("read-bootstrap").args(["--namespaces", NS, "--namespace", NS, "--name", "missing"])
        .exits(3).says(["Secret apps/missing", "not found", "check the name"]);

    // --- path annotations that try to leave {prefix}/{namespace}/ --------------------------
    path_dot_dot => bad_path("apps/../billing/db", "'.' or '..' segment");
    path_single_dot => bad_path("apps/./db", "'.' or '..' segment");
    path_percent_encoded_dot_dot => bad_path("apps/%2e%2e/billing/db", "outside [A-Za-z0-9._-]");
    path_percent_encoded_dot_dot_upper_case => bad_path("apps/%2E%2E/billing/db", "outside [A-Za-z0-9._-]");
    path_percent_encoded_slash => bad_path("apps/x%2f..%2f..%2fbilling", "outside [A-Za-z0-9._-]");
    path_absolute => bad_path("/apps/db", "must be relative");
    path_trailing_slash => bad_path("apps/db/", "must be relative");
    path_empty_segment => bad_path("apps//db", "empty segment");
    path_empty => bad_path("", "path is empty");
    path_backslash => bad_path("apps\\..\\billing\\db", "outside [A-Za-z0-9._-]");
    path_control_character => bad_path("apps/db\u{7}", "outside [A-Za-z0-9._-]");
    path_newline => bad_path("apps/db\nbilling/db", "outside [A-Za-z0-9._-]");
    path_nul => bad_path("apps/db\u{0}/x", "outside [A-Za-z0-9._-]");
    path_ansi_escape => bad_path("apps/db\u{1b}[2K", "outside [A-Za-z0-9._-]");
    path_one_dot_leaders_look_like_dot_dot => bad_path("apps/\u{2024}\u{2024}/billing/db", "outside [A-Za-z0-9._-]");
    path_fullwidth_full_stops => bad_path("apps/\u{ff0e}\u{ff0e}/billing/db", "outside [A-Za-z0-9._-]");
    path_fullwidth_solidus => bad_path("apps\u{ff0f}..\u{ff0f}billing", "outside [A-Za-z0-9._-]");
    path_division_slash => bad_path("apps\u{2215}db", "outside [A-Za-z0-9._-]");
    path_zero_width_space => bad_path("apps/db\u{200b}", "outside [A-Za-z0-9._-]");
    path_right_to_left_override => bad_path("apps/\u{202e}bd", "outside [A-Za-z0-9._-]");
    path_cyrillic_look_alike_namespace => bad_path("\u{0430}pps/db", "outside [A-Za-z0-9._-]");
    path_whitespace => bad_path("apps/db x", "outside [A-Za-z0-9._-]");
    path_query => bad_path("apps/db?version=1", "outside [A-Za-z0-9._-]");
    path_into_another_namespace => bad_path("billing/db", "outside the subtree");
    path_into_a_namespace_sharing_the_prefix => bad_path("apps-prod/db", "outside the subtree");
    path_is_the_subtree_itself => bad_path("apps", "outside the subtree");
    path_with_the_mount_in_it => bad_path("secret/data/apps/db", "outside the subtree");
    path_longer_than_512_bytes => bad_path(&format!("apps/{}", "a".repeat(600)), "longer than 512 bytes");
    path_outside_the_prefix => rb_one(canary_secret("s").annotate("secops.io/vault-path", "apps/db"))
        .args(["--path-prefix", "bootstrap"])
        .exits(3).says(["Secret apps/s", "outside the subtree \"bootstrap/apps\"", "same --path-prefix"]);
    path_prefix_with_traversal => case("read-bootstrap").args(["--namespaces", NS, "--path-prefix", "bootstrap/.."])
        .exits(2).says(["--path-prefix", "'.' or '..'"]);

    // --- sizes and counts ---------------------------------------------------------------------
    more_keys_than_a_handover_takes => rb_one(many_keys(513))
        .exits(3).says(["Secret apps/s", "has 513 keys, more than the 512", "split it"]);
    write_vault_rechecks_the_key_count => case("write-vault").seed(many_keys(513))
        .reference(|r| r["keys"] = json!([]))
        .exits(3).says(["Secret apps/s", "has 513 keys"]);
    too_many_binary_keys_for_vault_metadata => {
        let s = (0..100).fold(SeedSecret::bootstrap(NS, "s"), |s, i| {
            s.kv(&format!("{}-{i:03}", "b".repeat(120)), [CANARY.as_bytes(), &[0xff]].concat())
        });
        wv_ref(s, keep).exits(3).says(["Secret apps/s", "too many binary (non-UTF-8) keys", "split the Secret"])
    };
    reference_listing_too_many_keys => case("write-vault").seed(canary_secret("s"))
        .reference_file(|| {
            json!({"namespace": NS, "name": "s", "uid": "u", "resourceVersion": "1", "path": "apps/s",
                   "keys": (0..100_000).map(|i| format!("k{i}")).collect::<Vec<_>>()}).to_string().into_bytes()
        })
        .exits(2).says(["Secret apps/s", "lists 100000 keys", "read-bootstrap's references.json"]);
    batch_larger_than_ten_thousand => case("write-vault").seed(canary_secret("s"))
        .reference_file(|| {
            let one = json!({"namespace": NS, "name": "s", "uid": "u", "resourceVersion": "1", "path": "apps/s", "keys": []});
            Value::Array(vec![one; 10_001]).to_string().into_bytes()
        })
        .exits(2).says(["10001 references, more than 10000", "batches.json"]);
    reference_file_larger_than_8_mib => case("write-vault")
        .reference_file(|| vec![b' '; 9 * 1024 * 1024])
        .exits(2).says(["--reference is 9437184 bytes, more than 8388608"]);

    // --- bytes that are not UTF-8 -------------------------------------------------------------
    reference_file_not_utf8 => case("write-vault")
        .reference_file(|| [b"{\"namespace\":\"apps\",\"name\":\"".as_slice(), &[0xff, 0xfe], b"\"}"].concat())
        .exits(2).says(["cannot read --reference-file", "UTF-8"]);
    reference_with_a_lone_surrogate => case("write-vault")
        .args(["--reference", r#"{"namespace":"apps","name":"\ud800","uid":"u","resourceVersion":"1","path":"apps/s","keys":[]}"#])
        .exits(2).says(["not a valid secret reference", "hex escape"]);
    binary_values_on_kv_version_1 => wv_ref(canary_secret("s"), keep).args(["--kv-version", "1"])
        .exits(3).says(["Secret apps/s", "binary (non-UTF-8) values", "KV v2"]);

    // --- references passed between steps ------------------------------------------------------
    reference_not_json => case("write-vault").args(["--reference", "apps/s"])
        .exits(2).says(["--reference is not a valid secret reference", "read-bootstrap's references.json"]);
    reference_with_trailing_garbage => case("write-vault").seed(canary_secret("s"))
        .args(["--reference", r#"{"namespace":"apps","name":"s","uid":"u","resourceVersion":"1","path":"apps/s","keys":[]} x"#])
        .exits(2).says(["not a valid secret reference", "trailing characters"]);
    reference_with_an_unknown_field => wv_ref(canary_secret("s"), |r| r["data"] = json!({"password": "x"}))
        .exits(2).says(["not a valid secret reference", "unknown field `data`"]);
    reference_with_a_wrong_type => wv_ref(canary_secret("s"), |r| r["resourceVersion"] = json!(7))
        .exits(2).says(["not a valid secret reference", "invalid type"]);
    reference_missing_a_field => wv_ref(canary_secret("s"), |r| { r.as_object_mut().unwrap().remove("uid"); })
        .exits(2).says(["not a valid secret reference", "missing field `uid`"]);
    reference_with_an_empty_name => wv_ref(canary_secret("s"), |r| r["name"] = json!(""))
        .exits(2).says(["field name is empty"]);
    reference_with_namespace_traversal => wv_ref(canary_secret("s"), |r| r["namespace"] = json!("../kube-system"))
        .exits(2).says(["namespace \"../kube-system\" is not a namespace name"]);
    reference_with_a_name_holding_a_slash => wv_ref(canary_secret("s"), |r| r["name"] = json!("s/../../configmaps/x"))
        .exits(2).says(["is not a Secret name"]);
    reference_with_an_escaping_path => wv_ref(canary_secret("s"), |r| r["path"] = json!("apps/../billing/s"))
        .exits(2).says(["not a valid secret reference", "'.' or '..'"]);
    reference_with_a_path_in_another_namespace => wv_ref(canary_secret("s"), |r| r["path"] = json!("billing/s"))
        .exits(3).says(["Secret apps/s", "reference says Vault path billing/s but the Secret maps to apps/s", "unchanged"]);
    reference_with_another_uid => wv_ref(canary_secret("s"), |r| r["uid"] = json!("00000000-0000-4000-8000-000000000000"))
        .exits(3).says(["Secret apps/s", "was replaced since read-bootstrap", "re-run the handover workflow"]);
    reference_with_a_stale_resource_version => wv_ref(canary_secret("s"), |r| r["resourceVersion"] = json!("999999"))
        .exits(4).says(["Secret apps/s changed since read-bootstrap", "re-run"]);
    reference_empty_list => case("write-vault").args(["--reference", "[]"])
        .exits(2).says(["--reference is an empty list"]);
    reference_list_with_one_bad_item => wv_ref(canary_secret("s"), |r| *r = json!([r.clone(), {"namespace": "apps"}]))
        .exits(2).says(["not a valid secret reference", "missing field"]);
    reference_and_reference_file_together => case("write-vault").args(["--reference", "{}", "--reference-file", "/dev/null"])
        .exits(2).says(["--reference", "cannot be used with"]);
    no_reference => case("mark-consumed").args(["--mode", "delete"])
        .exits(2).says(["--reference JSON or --reference-file FILE"]);
    vault_version_not_a_number => case("mark-consumed").seed(canary_secret("s")).reference(keep)
        .args(["--mode", "delete", "--vault-version", "latest"])
        .exits(2).says(["--vault-version", "latest"]);
    consume_mode_unknown => case("mark-consumed").seed(canary_secret("s")).reference(keep)
        .args(["--mode", "shred"])
        .exits(2).says(["--mode", "shred"]);
    consume_mode_unknown_from_env => case("mark-consumed").seed(canary_secret("s")).reference(keep)
        .env("SECOPS_CONSUME_MODE", "Delete")
        .exits(2).says(["Delete"]);

    // --- Vault answers that are not Vault's API ---------------------------------------------
    login_answered_with_html => wv_ref(canary_secret("s"), keep)
        .fault("/v1/auth/kubernetes/login", 200, GARBAGE_HTML)
        .exits(1).says(["Kubernetes login", "is not what the Vault API documents", "check that VAULT_ADDR points at Vault"]);
    login_answered_without_auth => wv_ref(canary_secret("s"), keep)
        .fault("/v1/auth/kubernetes/login", 200, r#"{"auth":null}"#)
        .exits(1).says(["Kubernetes login", "without an auth block"]);
    login_token_of_the_wrong_type => wv_ref(canary_secret("s"), keep)
        .fault("/v1/auth/kubernetes/login", 200, r#"{"auth":{"client_token":42}}"#)
        .exits(1).says(["Kubernetes login", "is not what the Vault API documents"]);
    write_answered_with_truncated_json => wv_ref(canary_secret("s"), keep)
        .fault("/v1/secret/data/apps/", 200, r#"{"data":{"vers"#)
        .exits(1).says(["write of secret/data/apps/s", "Eof error"]);
    write_answered_with_a_value_in_the_wrong_place => wv_ref(canary_secret("s"), keep)
        .fault("/v1/secret/data/apps/", 200, concat!(r#"{"data":{"version":""#, canary!(), r#""}}"#))
        .exits(1).says(["write of secret/data/apps/s", "Data error"]);
    write_answered_with_an_empty_body => wv_ref(canary_secret("s"), keep)
        .fault("/v1/secret/data/apps/", 200, "")
        .exits(1).says(["write of secret/data/apps/s", "is not what the Vault API documents"]);
    write_refused_with_an_html_error => wv_ref(canary_secret("s"), keep)
        .fault("/v1/secret/data/apps/", 400, GARBAGE_HTML)
        .exits(3).says(["Vault path secret/apps/s", "HTTP 400", "inspect the Vault path"]);
    read_back_answered_with_a_value_in_the_wrong_place => case("mark-consumed").seed(canary_secret("s")).pre_write()
        .reference(keep).args(["--mode", "delete"])
        .fault("/v1/secret/data/apps/", 200, concat!(r#"{"data":""#, canary!(), r#""}"#))
        .exits(1).says(["read of secret/data/apps/s", "is not what the Vault API documents"]);
    read_back_without_metadata => case("mark-consumed").seed(canary_secret("s")).pre_write()
        .reference(keep).args(["--mode", "delete"])
        .fault("/v1/secret/data/apps/", 200, r#"{"data":{"data":{"password":"x"}}}"#)
        .exits(1).says(["read of secret/data/apps/s", "has no metadata"]);
    rotation_read_answered_with_an_array => case("rotate")
        .vault_seed("apps/r", json!({"password": CANARY}))
        .args(["--path", "apps/r", "--key", "password=password", "--rotation-id", "r1"])
        .fault("/v1/secret/data/apps/r", 200, "[]")
        .exits(1).says(["apps/r", "is not what the Vault API documents"]);

    // --- flags and environment ----------------------------------------------------------------
    unknown_flag_read_bootstrap => case("read-bootstrap").args(["--namespaces", NS, "--all-namespaces"])
        .exits(2).says(["unexpected argument '--all-namespaces'"]);
    dry_run_not_a_bool => case("read-bootstrap").args(["--namespaces", NS, "--dry-run=maybe"])
        .exits(2).says(["invalid value 'maybe'", "--dry-run"]);
    unknown_flag_mark_consumed => case("mark-consumed").args(["--mode", "delete", "--force"])
        .exits(2).says(["unexpected argument '--force'"]);
    unknown_flag_rotate => case("rotate").args(["--path", "apps/r", "--key", "password=password", "--all"])
        .exits(2).says(["unexpected argument '--all'"]);
    vault_addr_not_a_url => wv_ref(canary_secret("s"), keep).env("VAULT_ADDR", "127.0.0.1:8200")
        .exits(2).says(["--vault-addr", "127.0.0.1:8200"]);
    vault_addr_wrong_scheme => wv_ref(canary_secret("s"), keep).env("VAULT_ADDR", "ftp://127.0.0.1:8200")
        .exits(2).says(["VAULT_ADDR ftp://127.0.0.1:8200", "must be an http:// or https:// URL"]);
    vault_addr_unreachable => wv_ref(canary_secret("s"), keep).env("VAULT_ADDR", "http://127.0.0.1:1")
        .exits(5).says(["Vault is unreachable", "retry once Vault is available"]);
    kv_version_three => wv_ref(canary_secret("s"), keep).args(["--kv-version", "3"])
        .exits(2).says(["--kv-version", "'3'"]);
    kv_version_from_env_not_a_number => wv_ref(canary_secret("s"), keep).env("SECOPS_KV_VERSION", "two")
        .exits(2).says(["--kv-version", "'two'"]);
    rotate_on_kv_version_1 => case("rotate").args(["--path", "apps/r", "--key", "password=password", "--kv-version", "1"])
        .exits(2).says(["rotate needs KV version 2", "--kv-version 1 is not supported"]);
    vault_timeout_not_a_number => wv_ref(canary_secret("s"), keep).env("SECOPS_VAULT_TIMEOUT", "30s")
        .exits(2).says(["--vault-timeout", "'30s'"]);
    kube_events_not_a_boolean => wv_ref(canary_secret("s"), keep).env("SECOPS_KUBE_EVENTS", "maybe")
        .exits(2).says(["--kube-events", "'maybe'"]);
    skip_verify_not_a_boolean => wv_ref(canary_secret("s"), keep).env("VAULT_SKIP_VERIFY", "yes")
        .exits(2).says(["\"yes\" is not a boolean"]);
    vault_auth_unknown => wv_ref(canary_secret("s"), keep).env("SECOPS_VAULT_AUTH", "ldap")
        .exits(2).says(["--vault-auth", "'ldap'"]);
    vault_role_unknown => wv_ref(canary_secret("s"), keep).env("SECOPS_VAULT_ROLE", "nobody")
        .exits(3).says(["Vault auth mount \"kubernetes\"", "was refused", "check the role exists"]);
    vault_token_file_missing => wv_ref(canary_secret("s"), keep)
        .env("SECOPS_VAULT_AUTH", "token").env("VAULT_TOKEN_FILE", "/nonexistent/token")
        .exits(2).says(["cannot read --vault-token-file /nonexistent/token"]);
    kv_mount_with_traversal => wv_ref(canary_secret("s"), keep).env("SECOPS_KV_MOUNT", "secret/../sys")
        .exits(2).says(["--kv-mount", "'.' or '..'"]);
    batch_size_zero => case("read-bootstrap").args(["--namespaces", NS, "--batch-size", "0"])
        .exits(2).says(["--batch-size", "'0'"]);
    batch_size_not_a_number => case("read-bootstrap").args(["--namespaces", NS, "--batch-size", "fifty"])
        .exits(2).says(["--batch-size", "'fifty'"]);
    rotation_generator_with_a_bad_length => case("rotate").args(["--path", "apps/r", "--key", "password=password:length=many"])
        .exits(2).says(["--key", "length"]);
    rotation_of_a_key_the_secret_lacks => case("rotate")
        .vault_seed("apps/r", json!({"password": CANARY}))
        .args(["--path", "apps/r", "--key", "api-key=password", "--rotation-id", "r1"])
        .exits(3).says(["apps/r", "api-key"]);
}
