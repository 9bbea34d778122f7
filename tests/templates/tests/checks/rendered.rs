//! What users install is what `kubectl kustomize` renders, not the files: the knobs in
//! `templates/settings/` must move every image and every namespace in the rendered output,
//! and the rendered documents must pass the same strict checks as the sources. Needs kubectl
//! with kustomize v5 (`SECOPS_KUBECTL`, else on PATH; `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use template_checks::xref::{doc_containers, CLUSTER_SCOPED};
use template_checks::{load, report, Templates};

use super::setup;

/// The kustomizations users apply, and the namespace each puts its objects in (`None`: the
/// workflow namespace of the settings knob).
const ROOTS: [(&str, Option<&str>); 3] = [
    ("templates", None),
    ("templates/authority", Some("secops-authority")),
    ("templates/targets/apps", Some("apps")),
];

const DEFAULT_NS: &str = "secops";

fn kubectl() -> String {
    std::env::var("SECOPS_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

fn kustomize(dir: &Path) -> Result<String, String> {
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install kubectl (.ci/run does) or set SECOPS_KUBECTL",
                kubectl()
            )
        });
    if !out.status.success() {
        return Err(format!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).expect("UTF-8"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Replaces `from` by `to` in a file of the copy; it must be there (so a changed comment or
/// layout fails here, loudly, instead of leaving a knob unturned).
fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let p = root.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// A copy of the repository's `templates/` with the optional components switched on (as
/// docs/install.md says), then `change` applied. The root holds `templates/`.
fn copy_templates(change: impl FnOnce(&Path)) -> tempfile::TempDir {
    let repo = &template_checks::Locations::locate().unwrap().repo;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("templates"), &dir.path().join("templates"));
    let k = "templates/kustomization.yaml";
    edit(dir.path(), k, "  # - events ", "  - events ");
    edit(
        dir.path(),
        k,
        "  # - audit-cluster-wide ",
        "  - audit-cluster-wide ",
    );
    edit(
        dir.path(),
        "templates/targets/apps/kustomization.yaml",
        "  # - ../events-watch ",
        "  - ../events-watch ",
    );
    change(dir.path());
    dir
}

/// Every root rendered, as one installation.
fn render(root: &Path) -> Result<Templates, String> {
    let mut t = Templates::default();
    for (r, _) in ROOTS {
        load::rendered(r, &kustomize(&root.join(r))?, &mut t);
    }
    // The ESO examples are applied as they are (docs/install.md "Reading (ESO)").
    for f in ["cluster-secret-store.yaml", "external-secret-example.yaml"] {
        let text = std::fs::read_to_string(root.join("templates/eso").join(f)).unwrap();
        load::rendered(&format!("templates/eso/{f}"), &text, &mut t);
    }
    Ok(t)
}

/// The knobs as a test turns them.
struct Knobs {
    registry: &'static str,
    tag: &'static str,
    namespace: &'static str,
    /// The policies' Vault path knobs (settings.yaml key, value).
    vault_paths: [(&'static str, &'static str); 6],
    /// `cluster-name` (empty by default: the steps refuse to run until it is set).
    cluster: &'static str,
}

const DEFAULTS: Knobs = Knobs {
    registry: "ghcr.io/secops",
    tag: "0.1.0",
    namespace: DEFAULT_NS,
    vault_paths: [
        ("vault-data", "secret/data/*"),
        ("vault-metadata", "secret/metadata/*"),
        ("vault-internal-data", "secret/data/internal/*"),
        ("vault-internal-metadata", "secret/metadata/internal/*"),
        ("vault-delete", "secret/delete/*"),
        ("vault-destroy", "secret/destroy/*"),
    ],
    cluster: "",
};

/// Another registry and tag, another namespace, and the policies narrowed to the handover
/// prefix `bootstrap` of a KV mount `kv`.
const CHANGED: Knobs = Knobs {
    registry: "registry.example/mine",
    tag: "2.0",
    namespace: "team-x",
    vault_paths: [
        ("vault-data", "kv/data/bootstrap/*"),
        ("vault-metadata", "kv/metadata/bootstrap/*"),
        ("vault-internal-data", "kv/data/internal/*"),
        ("vault-internal-metadata", "kv/metadata/internal/*"),
        ("vault-delete", "kv/delete/bootstrap/*"),
        ("vault-destroy", "kv/destroy/bootstrap/*"),
    ],
    cluster: "prod-eu-1",
};

fn turn_knobs(root: &Path, k: &Knobs) {
    let settings = "templates/settings/kustomization.yaml";
    let text = std::fs::read_to_string(root.join(settings)).unwrap();
    let text = text
        .replace(
            "newName: ghcr.io/secops/",
            &format!("newName: {}/", k.registry),
        )
        .replace("newTag: 0.1.0", &format!("newTag: \"{}\"", k.tag));
    std::fs::write(root.join(settings), text).unwrap();
    edit(
        root,
        "templates/settings/settings.yaml",
        "workflow-namespace: secops",
        &format!("workflow-namespace: {}", k.namespace),
    );
    edit(
        root,
        "templates/settings/settings.yaml",
        "  cluster-name: \"\"\n",
        &format!("  cluster-name: \"{}\"\n", k.cluster),
    );
    for ((key, from), (_, to)) in DEFAULTS.vault_paths.iter().zip(&k.vault_paths) {
        edit(
            root,
            "templates/settings/settings.yaml",
            &format!("  {key}: {from}\n"),
            &format!("  {key}: {to}\n"),
        );
    }
}

/// Every image and every namespace in the rendered output that does not follow the knobs,
/// and the number of image references and namespaces checked.
fn not_following(t: &Templates, k: &Knobs) -> (Vec<String>, usize, usize) {
    let mut bad = Vec::new();
    let (mut images, mut namespaces) = (0, 0);
    for d in &t.docs {
        let where_ = format!("{} {} {}", d.file, d.kind(), d.name());
        for (p, c) in doc_containers(d) {
            images += 1;
            cluster_name_follows(d, &p, c, k, &mut bad);
            let image = c["image"].as_str().unwrap_or("");
            let step = c["command"][0]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/');
            let want = format!("{}/{step}:{}", k.registry, k.tag);
            if image != want {
                bad.push(format!("{where_} {p}.image: {image} (want {want})"));
            }
        }
        let root = d.file.trim_start_matches("rendered ");
        if root.starts_with("templates/eso/") {
            continue; // examples, applied as written
        }
        let want_ns = ROOTS
            .iter()
            .find(|(r, _)| *r == root)
            .and_then(|(_, ns)| *ns)
            .unwrap_or(k.namespace);
        let ns = d.value["metadata"]["namespace"].as_str();
        if CLUSTER_SCOPED.contains(&d.kind()) {
            if ns.is_some() {
                bad.push(format!(
                    "{where_}: a cluster-scoped object with a namespace"
                ));
            }
        } else {
            namespaces += 1;
            if ns != Some(want_ns) {
                bad.push(format!(
                    "{where_} metadata.namespace: {ns:?} (want {want_ns})"
                ));
            }
        }
        for (i, s) in d.value["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(sns) = s["namespace"].as_str() {
                namespaces += 1;
                // kustomize's own `namespace:` names a ServiceAccount of the same build.
                let own = Some(sns) == ns
                    && t.docs.iter().any(|sa| {
                        sa.file == d.file
                            && sa.kind() == "ServiceAccount"
                            && sa.name() == s["name"].as_str().unwrap_or("")
                    });
                if sns != k.namespace && !own {
                    bad.push(format!(
                        "{where_} subjects[{i}].namespace: {sns} (want {})",
                        k.namespace
                    ));
                }
            }
        }
    }
    for (name, role) in &t.vault_roles {
        let bound = &role.content["bound_service_account_namespaces"];
        if name == "secops-eso-reader" || name == "secops-snapshot-authority" {
            // ESO's own namespace, and the authority's (templates/authority/ sets it), not
            // the knob's.
            continue;
        }
        namespaces += 1;
        if bound != &serde_json::json!([k.namespace]) {
            bad.push(format!(
                "Vault role {name} bound_service_account_namespaces: {bound} (want [{}])",
                k.namespace
            ));
        }
    }
    // Every policy path (but sys/) is one of the knobs' values.
    let allowed: Vec<&str> = k.vault_paths.iter().map(|(_, v)| *v).collect();
    for (name, policy) in &t.vault_policies {
        for (_, p) in template_checks::kustomize::policy_paths(&policy.raw) {
            if !p.starts_with("sys/") && !allowed.contains(&p) {
                bad.push(format!("Vault policy {name}: path {p:?} follows no knob"));
            }
        }
    }
    // Nothing names the default namespace any more (the part-of label is no namespace).
    if k.namespace != DEFAULT_NS {
        for d in &t.docs {
            scan(&d.value, &format!("{} {}", d.file, d.name()), &mut bad);
        }
    }
    (bad, images, namespaces)
}

/// The steps that record or judge provenance get `--cluster-name` from the workflow's
/// `cluster-name` parameter, whose value the `cluster-name` knob sets.
fn cluster_name_follows(d: &load::Doc, p: &str, c: &Value, k: &Knobs, bad: &mut Vec<String>) {
    const NEEDS: [&str; 4] = [
        "write-vault",
        "mark-consumed",
        "push-secret",
        "audit-authority",
    ];
    let where_ = format!("{} {} {} {p}", d.file, d.kind(), d.name());
    let step = c["command"][0]
        .as_str()
        .unwrap_or("")
        .trim_start_matches('/');
    let flag = "--cluster-name={{workflow.parameters.cluster-name}}";
    let passes = c["args"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(flag)));
    if NEEDS.contains(&step) && !passes {
        bad.push(format!("{where_}: {step} without {flag}"));
    }
    if passes {
        let spec = match d.kind() {
            "CronWorkflow" => &d.value["spec"]["workflowSpec"],
            _ => &d.value["spec"],
        };
        let value = spec["arguments"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"] == "cluster-name")
            .map(|x| x["value"].as_str().unwrap_or("").to_owned());
        if value.as_deref() != Some(k.cluster) {
            bad.push(format!(
                "{where_}: parameter cluster-name is {value:?} (want the knob's {:?})",
                k.cluster
            ));
        }
    }
}

fn scan(v: &Value, at: &str, bad: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let hit = s == DEFAULT_NS
                || s.contains(&format!("\"{DEFAULT_NS}\""))
                || s.contains(&format!("namespace: {DEFAULT_NS}\n"));
            if hit {
                bad.push(format!("{at}: still names namespace {DEFAULT_NS:?}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| scan(x, &format!("{at}[{i}]"), bad)),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "app.kubernetes.io/part-of")
            .for_each(|(k, x)| scan(x, &format!("{at}.{k}"), bad)),
        _ => {}
    }
}

#[test]
fn the_rendered_templates_pass_every_check_and_use_the_defaults() {
    let dir = copy_templates(|_| {});
    let t = render(dir.path()).unwrap();
    let problems = setup().checker.check_rendered(&t, "ghcr.io/secops/");
    assert!(problems.is_empty(), "{}", report(&problems));
    let (bad, images, namespaces) = not_following(&t, &DEFAULTS);
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(images, 14, "every step image reference");
    assert!(namespaces > 40, "{namespaces}");
}

/// Issue 17, B1 and B2: one edit of the knobs moves all 14 image references and every
/// namespace (objects, subjects in every kustomization, the Vault roles' bound namespaces).
#[test]
fn every_image_and_namespace_follows_the_knobs() {
    let dir = copy_templates(|root| turn_knobs(root, &CHANGED));
    let t = render(dir.path()).unwrap();
    let (bad, images, _) = not_following(&t, &CHANGED);
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(images, 14);
    let problems = setup()
        .checker
        .check_rendered(&t, &format!("{}/", CHANGED.registry));
    assert!(problems.is_empty(), "{}", report(&problems));
}

/// The check above fires: without the `configurations:` entry kustomize moves only the
/// containerSet images (it knows `containers[]`, not Argo's singular `container:`).
#[test]
fn without_the_argo_image_fields_the_container_images_stay() {
    let dir = copy_templates(|root| {
        turn_knobs(root, &CHANGED);
        edit(
            root,
            "templates/settings/kustomization.yaml",
            "configurations:\n  - argo-images.yaml\n",
            "",
        );
    });
    let (bad, _, _) = not_following(&render(dir.path()).unwrap(), &CHANGED);
    let images: Vec<&String> = bad.iter().filter(|b| b.contains(".image:")).collect();
    assert_eq!(images.len(), 11, "{bad:#?}");
    assert!(images
        .iter()
        .all(|b| b.contains(".container.image: ghcr.io/secops/")));
    assert_eq!(bad.len(), 11, "{bad:#?}");
}

/// ... and without the subject replacements, the bindings keep naming the old namespace
/// (and grant nothing): the audit ClusterRoleBinding and every target RoleBinding.
#[test]
fn without_the_subject_replacements_the_bindings_stay() {
    let dir = copy_templates(|root| {
        turn_knobs(root, &CHANGED);
        edit(
            root,
            "templates/settings/kustomization.yaml",
            "        fieldPaths:\n          - subjects.*.namespace\n",
            "        fieldPaths:\n          - metadata.labels.unused\n        options:\n          create: true\n",
        );
    });
    let (bad, _, _) = not_following(&render(dir.path()).unwrap(), &CHANGED);
    let subjects: Vec<&String> = bad
        .iter()
        .filter(|b| b.contains("subjects[0].namespace: secops"))
        .collect();
    // 7 target RoleBindings, the EventSource's, and the cluster-wide audit binding.
    assert_eq!(subjects.len(), 9, "{bad:#?}");
}

/// The Vault roles in the generated ConfigMap follow the knob only through the settings
/// replacement; the sources keep the default (the e2e tests load them unchanged).
#[test]
fn the_vault_role_files_keep_the_default_namespace() {
    let repo: PathBuf = template_checks::Locations::locate().unwrap().repo;
    let t = load(&repo, &repo.join("templates"));
    for (name, role) in &t.vault_roles {
        if name != "secops-eso-reader" && name != "secops-snapshot-authority" {
            assert_eq!(
                role.content["bound_service_account_namespaces"],
                serde_json::json!([DEFAULT_NS]),
                "{name}"
            );
        }
    }
}

/// The cluster-name check fires: a step that judges provenance without `--cluster-name` is
/// named, and nothing else is.
#[test]
fn a_step_without_the_cluster_name_is_found() {
    let dir = copy_templates(|root| {
        turn_knobs(root, &CHANGED);
        edit(
            root,
            "templates/workflows/secret-handover.yaml",
            "          - --workflow-uid={{workflow.uid}}\n          - --cluster-name={{workflow.parameters.cluster-name}}\n          - --outputs-dir=/outputs\n          - --dry-run={{workflow.parameters.dry-run}}",
            "          - --workflow-uid={{workflow.uid}}\n          - --outputs-dir=/outputs\n          - --dry-run={{workflow.parameters.dry-run}}",
        );
    });
    let (bad, _, _) = not_following(&render(dir.path()).unwrap(), &CHANGED);
    // The edit drops the flag from both of secret-handover's steps that had it in this order.
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad.iter()
            .all(|b| b.contains("secret-handover ") && b.contains("without --cluster-name")),
        "{bad:#?}"
    );
}

/// ... and without the settings replacement the workflows keep an empty cluster name (which
/// the steps refuse): each of the four workflows is named.
#[test]
fn without_the_cluster_name_replacement_the_parameter_stays_empty() {
    let dir = copy_templates(|root| {
        turn_knobs(root, &CHANGED);
        edit(
            root,
            "templates/settings/kustomization.yaml",
            "      fieldPath: data.cluster-name\n",
            "      fieldPath: data.workflow-namespace\n",
        );
    });
    let (bad, _, _) = not_following(&render(dir.path()).unwrap(), &CHANGED);
    assert!(!bad.is_empty());
    assert!(bad
        .iter()
        .all(|b| b.contains("parameter cluster-name is") && b.contains(CHANGED.namespace)));
    for w in [
        "secret-handover ",
        "secret-handover-batch",
        "push-internal-secrets",
        "authority-audit",
    ] {
        assert!(bad.iter().any(|b| b.contains(w)), "{w}: {bad:#?}");
    }
}

/// The steps that judge owner references, and the flag each must get from the parameter.
const GITOPS_STEPS: [&str; 3] = ["read-bootstrap", "write-vault", "mark-consumed"];
const GITOPS_FLAG: &str = "--gitops-owner-kinds={{workflow.parameters.gitops-owner-kinds}}";

/// Where the `gitops-owner-kinds` knob does not reach: a handover WorkflowTemplate whose
/// parameter default is not `kinds`, or a step container judging owners without the flag
/// (read-bootstrap also needs the consume mode, to refuse modes that cannot hold). Returns
/// the problems and the number of step containers checked.
fn gitops_not_following(t: &Templates, kinds: &str) -> (Vec<String>, usize) {
    let (mut bad, mut steps) = (Vec::new(), 0);
    for d in t.docs.iter().filter(|d| d.kind() == "WorkflowTemplate") {
        let where_ = format!("{} {}", d.file, d.name());
        let judged: Vec<(String, &Value)> = doc_containers(d)
            .into_iter()
            .filter(|(_, c)| {
                let cmd = c["command"][0].as_str().unwrap_or("");
                GITOPS_STEPS.iter().any(|s| cmd == format!("/{s}"))
            })
            .collect();
        if judged.is_empty() {
            continue;
        }
        let param = d.value["spec"]["arguments"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "gitops-owner-kinds");
        if param.map(|p| &p["value"]) != Some(&Value::from(kinds)) {
            bad.push(format!(
                "{where_}: parameter gitops-owner-kinds is not {kinds:?}"
            ));
        }
        for (p, c) in judged {
            steps += 1;
            let args: Vec<&str> = c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !args.contains(&GITOPS_FLAG) {
                bad.push(format!("{where_} {p}: no {GITOPS_FLAG}"));
            }
            let discovery = c["command"][0] == "/read-bootstrap";
            if discovery && !args.contains(&"--consume-mode={{workflow.parameters.consume-mode}}") {
                bad.push(format!(
                    "{where_} {p}: read-bootstrap without --consume-mode"
                ));
            }
        }
    }
    (bad, steps)
}

/// Issue 21: one edit of `gitops-owner-kinds` in settings/ moves the allowlist of every
/// handover step (both templates' parameter default, which each step's flag reads).
#[test]
fn the_gitops_owner_kinds_knob_reaches_every_handover_step() {
    let t = render(copy_templates(|_| {}).path()).unwrap();
    let (bad, steps) = gitops_not_following(&t, "SealedSecret.bitnami.com");
    assert!(bad.is_empty(), "{bad:#?}");
    // secret-handover: 3 steps; secret-handover-batch: the discover step and the batch's 3.
    assert_eq!(steps, 7);
    let changed = "SealedSecret.bitnami.com,SopsSecret.isindir.github.com";
    let turn = |root: &Path| {
        edit(
            root,
            "templates/settings/settings.yaml",
            "  gitops-owner-kinds: SealedSecret.bitnami.com\n",
            &format!("  gitops-owner-kinds: {changed}\n"),
        )
    };
    let dir = copy_templates(turn);
    let (bad, _) = gitops_not_following(&render(dir.path()).unwrap(), changed);
    assert!(bad.is_empty(), "{bad:#?}");
    // The check fires: without the replacement both templates keep the default.
    let dir = copy_templates(|root| {
        turn(root);
        edit(
            root,
            "templates/settings/kustomization.yaml",
            "      fieldPath: data.gitops-owner-kinds\n",
            "      fieldPath: data.workflow-namespace\n",
        );
    });
    let (bad, _) = gitops_not_following(&render(dir.path()).unwrap(), changed);
    assert_eq!(bad.len(), 2, "{bad:#?}");
}
