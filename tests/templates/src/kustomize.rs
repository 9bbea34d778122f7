//! The kustomizations users apply (`kubectl apply -k`) and the components they share: every
//! resource, component and generated file they list exists, every manifest is installed by
//! one (or by an optional component; the ESO examples excepted), and the `images` knob names
//! exactly the images the templates run. Also the namespace each document lands in, for the
//! namespace-aware reference checks, and the rules that let one edit of the namespace knob
//! (`settings/`) move every `namespace` that names it. `tests/checks/rendered.rs` checks what
//! `kubectl kustomize` really renders.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::load::{normalize, Doc, Templates};
use crate::xref::doc_containers;
use crate::{path, Problem};

const API_VERSION: &str = "kustomize.config.k8s.io/v1beta1";
const COMPONENT_API_VERSION: &str = "kustomize.config.k8s.io/v1alpha1";

/// Manifests that are examples, not installed by a kustomization (docs/install.md "Reading (ESO)").
pub const EXAMPLES: [&str; 1] = ["templates/eso/"];

/// The local-config ConfigMap holding the knobs, and its key for the workflow namespace.
pub const SETTINGS: &str = "secops-settings";
pub const WORKFLOW_NAMESPACE_KEY: &str = "workflow-namespace";

/// Fields these checks understand. Others (name prefixes, label transformers) could rename or
/// rewrite objects behind the reference checks' back; `tests/checks/rendered.rs` covers what
/// the ones here do.
const FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "components",
    "configMapGenerator",
];
const COMPONENT_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "resources",
    "images",
    "configurations",
    "replacements",
    "patches",
];

const IMAGE_FIELDS: [&str; 4] = ["name", "newName", "newTag", "digest"];

/// Kustomizations and components (both are kustomize inputs, not API objects).
pub fn is_kustomize_input(d: &Doc) -> bool {
    matches!(d.kind(), "Kustomization" | "Component")
}

fn kustomizations(t: &Templates) -> impl Iterator<Item = &Doc> {
    t.docs.iter().filter(|d| is_kustomize_input(d))
}

/// A listed resource or component: a file, or a folder with its own kustomization.
enum Resource {
    File(String),
    Dir(String),
    Missing(String),
}

fn listed(t: &Templates, k: &Doc, field: &str) -> Vec<(String, Resource)> {
    let mut out = Vec::new();
    for (i, r) in k.value[field].as_array().into_iter().flatten().enumerate() {
        let p = path::index(field, i);
        let r = r.as_str().unwrap_or("");
        let full = normalize(&format!("{}/{r}", k.dir()));
        let res = if t.files.contains(&full) {
            Resource::File(full)
        } else if ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .any(|f| t.files.contains(&format!("{full}/{f}")))
        {
            Resource::Dir(full)
        } else {
            Resource::Missing(r.to_owned())
        };
        out.push((p, res));
    }
    out
}

fn resources(t: &Templates, k: &Doc) -> Vec<(String, Resource)> {
    listed(t, k, "resources")
}

/// The component folders a kustomization lists.
fn components<'a>(t: &'a Templates, k: &Doc) -> Vec<&'a Doc> {
    listed(t, k, "components")
        .into_iter()
        .filter_map(|(_, r)| match r {
            Resource::Dir(d) => kustomization_in(t, &d),
            _ => None,
        })
        .collect()
}

fn kustomization_in<'a>(t: &'a Templates, dir: &str) -> Option<&'a Doc> {
    kustomizations(t).find(|k| k.dir() == dir)
}

/// The files a kustomization (or component) installs, through nested kustomizations and
/// components.
fn files_of(t: &Templates, k: &Doc, depth: usize, out: &mut BTreeSet<String>) {
    if depth > 16 {
        return;
    }
    for (_, r) in resources(t, k) {
        match r {
            Resource::File(f) => {
                out.insert(f);
            }
            Resource::Dir(dir) => {
                if let Some(child) = kustomization_in(t, &dir) {
                    files_of(t, child, depth + 1, out);
                }
            }
            Resource::Missing(_) => {}
        }
    }
    for c in components(t, k) {
        files_of(t, c, depth + 1, out);
    }
}

/// Kustomizations no other one lists: the ones users apply.
fn top_level(t: &Templates) -> Vec<&Doc> {
    let mut nested = BTreeSet::new();
    for k in kustomizations(t) {
        for (_, r) in resources(t, k) {
            if let Resource::Dir(d) = r {
                nested.insert(d);
            }
        }
    }
    kustomizations(t)
        .filter(|k| k.kind() == "Kustomization" && !nested.contains(k.dir()))
        .collect()
}

/// Components no kustomization lists: optional, for users to add (docs/install.md).
fn optional_components(t: &Templates) -> Vec<&Doc> {
    let listed: BTreeSet<&str> = kustomizations(t)
        .flat_map(|k| components(t, k))
        .map(|c| c.dir())
        .collect();
    kustomizations(t)
        .filter(|k| k.kind() == "Component" && !listed.contains(k.dir()))
        .collect()
}

/// Files kustomize reads as its own configuration (`configurations:`), not as manifests.
pub fn config_files(t: &Templates) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in kustomizations(t) {
        for (_, r) in listed(t, k, "configurations") {
            if let Resource::File(f) = r {
                out.insert(f);
            }
        }
    }
    out
}

/// The workflow namespace the settings component sets (its local-config ConfigMap).
pub fn workflow_namespace(t: &Templates) -> Option<&str> {
    t.docs
        .iter()
        .find(|d| d.kind() == "ConfigMap" && d.name() == SETTINGS)
        .and_then(|d| d.value["data"][WORKFLOW_NAMESPACE_KEY].as_str())
}

/// The namespace a kustomization puts its objects in: its own `namespace:`, else the
/// workflow namespace when it lists the settings component.
fn namespace_of<'a>(t: &'a Templates, k: &'a Doc) -> Option<&'a str> {
    k.value["namespace"].as_str().or_else(|| {
        components(t, k)
            .iter()
            .any(|c| {
                let mut f = BTreeSet::new();
                files_of(t, c, 0, &mut f);
                t.docs
                    .iter()
                    .any(|d| f.contains(&d.file) && d.name() == SETTINGS)
            })
            .then(|| workflow_namespace(t))
            .flatten()
    })
}

/// (file, document index) -> the namespace kustomize sets (an outer kustomization's wins over
/// an inner one's). An optional component's objects land where the kustomization of its
/// parent folder puts them (docs/install.md says where each goes), else nowhere known.
pub fn namespaces(t: &Templates) -> HashMap<(String, usize), String> {
    let mut out = HashMap::new();
    let mut assign = |files: &BTreeSet<String>, ns: &str| {
        for d in t.docs.iter().filter(|d| files.contains(&d.file)) {
            out.entry((d.file.clone(), d.index))
                .or_insert_with(|| ns.to_owned());
        }
    };
    for k in top_level(t) {
        if let Some(ns) = namespace_of(t, k) {
            let mut files = BTreeSet::new();
            files_of(t, k, 0, &mut files);
            assign(&files, ns);
        }
    }
    for c in optional_components(t) {
        let parent = c.dir().rsplit_once('/').map_or("", |(p, _)| p);
        if let Some(ns) = kustomization_in(t, parent).and_then(|k| namespace_of(t, k)) {
            let mut files = BTreeSet::new();
            files_of(t, c, 0, &mut files);
            assign(&files, ns);
        }
    }
    out
}

/// The image name kustomize matches on: without tag or digest.
fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => image,
    }
}

pub fn check(t: &Templates, out: &mut Vec<Problem>) {
    for k in kustomizations(t) {
        let (api, fields) = match k.kind() {
            "Component" => (COMPONENT_API_VERSION, &COMPONENT_FIELDS[..]),
            _ => (API_VERSION, &FIELDS[..]),
        };
        if k.api_version() != api {
            out.push(Problem::at(
                k,
                "apiVersion",
                format!("a {} is {api}", k.kind()),
            ));
        }
        for key in k.value.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !fields.contains(&key.as_str()) {
                out.push(Problem::at(
                    k,
                    key.as_str(),
                    format!(
                        "{key} is not understood by these checks (allowed in a {}: {})",
                        k.kind(),
                        fields.join(", ")
                    ),
                ));
            }
        }
        for field in ["resources", "components", "configurations"] {
            for (p, r) in listed(t, k, field) {
                if let Resource::Missing(r) = r {
                    out.push(Problem::at(
                        k,
                        p,
                        format!("{r:?} does not exist (relative to {})", k.dir()),
                    ));
                }
            }
        }
        check_generators(t, k, out);
    }

    // Every manifest is installed by some kustomization or optional component.
    let mut installed = BTreeSet::new();
    for k in top_level(t).into_iter().chain(optional_components(t)) {
        files_of(t, k, 0, &mut installed);
    }
    let config = config_files(t);
    let manifests: BTreeSet<&str> = t
        .docs
        .iter()
        .filter(|d| !is_kustomize_input(d) && !config.contains(&d.file))
        .map(|d| d.file.as_str())
        .collect();
    for f in manifests {
        if !installed.contains(f) && !EXAMPLES.iter().any(|e| f.starts_with(e)) {
            out.push(Problem::new(
                f,
                None,
                "",
                "no kustomization lists this file, so `kubectl apply -k` never installs it",
            ));
        }
    }

    // The images knob of the components each applied kustomization lists matches the images
    // it installs.
    for k in top_level(t) {
        let mut files = BTreeSet::new();
        files_of(t, k, 0, &mut files);
        let mut used: Vec<(&Doc, String, &str)> = Vec::new();
        for d in t.docs.iter().filter(|d| files.contains(&d.file)) {
            for (p, c) in doc_containers(d) {
                if let Some(image) = c["image"].as_str() {
                    used.push((d, path::key(&p, "image"), image_name(image)));
                }
            }
        }
        let mut knob = BTreeSet::new();
        let mut knob_files = Vec::new();
        for c in std::iter::once(k).chain(components(t, k)) {
            let images: Vec<&Value> = c.value["images"].as_array().into_iter().flatten().collect();
            if !images.is_empty() {
                knob_files.push(c.file.clone());
            }
            for (i, img) in images.iter().enumerate() {
                let p = path::index("images", i);
                for key in img.as_object().into_iter().flatten().map(|(k, _)| k) {
                    if !IMAGE_FIELDS.contains(&key.as_str()) {
                        out.push(Problem::at(
                            c,
                            path::key(&p, key),
                            format!("unknown images field {key:?}"),
                        ));
                    }
                }
                let name = img["name"].as_str().unwrap_or("");
                knob.insert(name);
                if !used.iter().any(|(_, _, u)| *u == name) && c.kind() == "Kustomization" {
                    out.push(Problem::at(
                        c,
                        path::key(&p, "name"),
                        format!(
                            "image {name:?} is used by no template this kustomization installs"
                        ),
                    ));
                }
            }
        }
        for (d, p, name) in used {
            if !knob.contains(name) {
                out.push(Problem::at(
                    d,
                    p,
                    format!(
                        "image {name:?} is not listed in the images knob of {} (its components: {})",
                        k.file,
                        knob_files.join(", ")
                    ),
                ));
            }
        }
    }
    // Every image some component's knob names is used somewhere.
    let all_used: BTreeSet<&str> = t
        .docs
        .iter()
        .flat_map(doc_containers)
        .filter_map(|(_, c)| c["image"].as_str().map(image_name))
        .collect();
    for c in kustomizations(t).filter(|c| c.kind() == "Component") {
        for (i, img) in c.value["images"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = img["name"].as_str().unwrap_or("");
            if !all_used.contains(name) {
                out.push(Problem::at(
                    c,
                    path::key(&path::index("images", i), "name"),
                    format!("image {name:?} is used by no template in templates/"),
                ));
            }
        }
    }
    check_namespace_knob(t, out);
    check_policy_knobs(t, out);
}

/// The Vault path pieces of a policy file: (index among its `"`-separated pieces, path).
pub fn policy_paths(raw: &str) -> Vec<(usize, &str)> {
    let pieces: Vec<&str> = raw.split('"').collect();
    (1..pieces.len())
        .filter(|&i| pieces[i - 1].trim_end().ends_with("path"))
        .map(|i| (i, pieces[i]))
        .collect()
}

/// One edit of `settings/` narrows every policy: each policy path (but `sys/`) is the target
/// of a settings replacement, at the index where that path is, whose knob's default it is.
fn check_policy_knobs(t: &Templates, out: &mut Vec<Problem>) {
    let Some(settings) = t
        .docs
        .iter()
        .find(|d| d.kind() == "ConfigMap" && d.name() == SETTINGS)
    else {
        return; // reported by check_namespace_knob
    };
    let mut covered = BTreeSet::new();
    for c in kustomizations(t) {
        for (ri, r) in c.value["replacements"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if r["source"]["name"] != SETTINGS {
                continue;
            }
            let Some(knob) = r["source"]["fieldPath"]
                .as_str()
                .and_then(|f| f.strip_prefix("data."))
            else {
                continue;
            };
            let default = settings.value["data"][knob].as_str();
            for (ti, target) in r["targets"].as_array().into_iter().flatten().enumerate() {
                let at = format!("replacements[{ri}].targets[{ti}]");
                if target["select"]["name"] != "secops-vault-grants" {
                    continue;
                }
                for f in target["fieldPaths"].as_array().into_iter().flatten() {
                    let Some(stem) = f
                        .as_str()
                        .and_then(|f| f.strip_prefix("data.["))
                        .and_then(|f| f.strip_suffix(".hcl]"))
                    else {
                        continue;
                    };
                    let Some(policy) = t.vault_policies.get(stem) else {
                        out.push(Problem::at(c, &at, format!("no policy {stem}.hcl")));
                        continue;
                    };
                    let index = target["options"]["index"].as_u64().unwrap_or(0) as usize;
                    let piece = policy.raw.split('"').nth(index);
                    let is_path = policy_paths(&policy.raw).iter().any(|(i, _)| *i == index);
                    if target["options"]["delimiter"] != "\"" || !is_path || piece != default {
                        out.push(Problem::at(
                            c,
                            &at,
                            format!(
                                "piece {index} of {stem}.hcl is {piece:?}, not a path whose \
                                 default is the knob {knob} ({default:?}): the knob would \
                                 rewrite the wrong text"
                            ),
                        ));
                    }
                    covered.insert((stem.to_owned(), index));
                }
            }
        }
    }
    for (name, policy) in &t.vault_policies {
        for (i, p) in policy_paths(&policy.raw) {
            if !p.starts_with("sys/") && !covered.contains(&(name.clone(), i)) {
                out.push(Problem::new(
                    &policy.file,
                    None,
                    format!("path {p:?}"),
                    "follows no knob of settings/: narrowing the knobs would leave it as it is",
                ));
            }
        }
    }
}

/// `configMapGenerator` files exist; a generator named like a folder's files lists them all.
fn check_generators(t: &Templates, k: &Doc, out: &mut Vec<Problem>) {
    for (i, g) in k.value["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = path::index("configMapGenerator", i);
        let mut listed = BTreeSet::new();
        for (j, f) in g["files"].as_array().into_iter().flatten().enumerate() {
            let f = f.as_str().unwrap_or("");
            let file = f.rsplit_once('=').map_or(f, |(_, f)| f);
            let full = normalize(&format!("{}/{file}", k.dir()));
            if !t.files.contains(&full) {
                out.push(Problem::at(
                    k,
                    path::index(&path::key(&p, "files"), j),
                    format!("{file:?} does not exist (relative to {})", k.dir()),
                ));
            }
            listed.insert(full);
        }
        // Every Vault grant file goes into the one ConfigMap init-authority reads.
        if g["name"] == "secops-vault-grants" {
            let grants = t
                .vault_roles
                .values()
                .map(|r| &r.file)
                .chain(t.vault_policies.values().map(|p| &p.file));
            for f in grants {
                if !listed.contains(f) {
                    out.push(Problem::at(
                        k,
                        path::key(&p, "files"),
                        format!("{f} is missing: init-authority would never establish it"),
                    ));
                }
            }
        }
    }
}

/// One edit of `settings/` moves every namespace that names the workflow namespace: a
/// subject's `namespace` may only name it (the settings replacement moves those), and a Vault
/// role bound to it must have it as the 8th `"`-separated piece of its file, where the
/// replacement writes it.
fn check_namespace_knob(t: &Templates, out: &mut Vec<Problem>) {
    let Some(ns) = workflow_namespace(t) else {
        out.push(Problem::new(
            "templates/settings/settings.yaml",
            None,
            "",
            format!("no ConfigMap {SETTINGS} with data.{WORKFLOW_NAMESPACE_KEY}"),
        ));
        return;
    };
    let targeted = replacement_targets(t);
    for d in t.docs.iter().filter(|d| d.kind().ends_with("RoleBinding")) {
        for (i, s) in d.value["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(sns) = s["namespace"].as_str() else {
                continue;
            };
            let p = path::key(&path::index("subjects", i), "namespace");
            if sns != ns {
                out.push(Problem::at(
                    d,
                    p,
                    format!(
                        "a subject's namespace may only be the workflow namespace {ns:?} (the \
                         settings knob moves it); leave it out for the binding's own namespace"
                    ),
                ));
            } else if !targeted.contains(&(d.kind().to_owned(), d.name().to_owned())) {
                out.push(Problem::at(
                    d,
                    p,
                    format!(
                        "{} {} is rejected by the settings replacement, so this namespace \
                         would not follow the knob",
                        d.kind(),
                        d.name()
                    ),
                ));
            }
        }
    }
    let role_keys = grant_keys_targeted(t);
    for (name, role) in &t.vault_roles {
        let bound: Vec<&str> = role.content["bound_service_account_namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !bound.contains(&ns) {
            continue;
        }
        let key = format!("{name}.json");
        let piece = role.raw.split('"').nth(7);
        if bound != [ns] || piece != Some(ns) {
            out.push(Problem::new(
                &role.file,
                None,
                "bound_service_account_namespaces",
                "a role bound to the workflow namespace binds only it, as the 8th \
                 '\"'-separated piece of the file (the settings replacement writes there)",
            ));
        }
        if !role_keys.contains(&key) {
            out.push(Problem::new(
                &role.file,
                None,
                "bound_service_account_namespaces",
                format!(
                    "the settings replacement does not list data.[{key}]: this role would stay \
                     bound to {ns:?} when the knob changes"
                ),
            ));
        }
    }
}

/// (kind, name) of every RoleBinding/ClusterRoleBinding whose subjects the settings
/// replacements move: the ones their `select` names and no `reject` removes.
fn replacement_targets(t: &Templates) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for c in kustomizations(t) {
        for r in c.value["replacements"].as_array().into_iter().flatten() {
            for target in r["targets"].as_array().into_iter().flatten() {
                let kind = target["select"]["kind"].as_str().unwrap_or("");
                let moves_subjects = target["fieldPaths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| f == "subjects.*.namespace");
                if !moves_subjects {
                    continue;
                }
                let rejected: BTreeSet<&str> = target["reject"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["name"].as_str())
                    .collect();
                for d in t.docs.iter().filter(|d| d.kind() == kind) {
                    if !rejected.contains(d.name()) {
                        out.insert((kind.to_owned(), d.name().to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// The `secops-vault-grants` keys the settings replacements write the namespace into.
fn grant_keys_targeted(t: &Templates) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in kustomizations(t) {
        for r in c.value["replacements"].as_array().into_iter().flatten() {
            for target in r["targets"].as_array().into_iter().flatten() {
                if target["select"]["name"] != "secops-vault-grants"
                    || target["options"]["delimiter"] != "\""
                    || target["options"]["index"] != 7
                {
                    continue;
                }
                for f in target["fieldPaths"].as_array().into_iter().flatten() {
                    if let Some(key) = f
                        .as_str()
                        .and_then(|f| f.strip_prefix("data.["))
                        .and_then(|f| f.strip_suffix(']'))
                    {
                        out.insert(key.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_drop_tag_and_digest() {
        assert_eq!(
            image_name("ghcr.io/secops/rotate:0.1.0"),
            "ghcr.io/secops/rotate"
        );
        assert_eq!(image_name("localhost:5000/rotate"), "localhost:5000/rotate");
        assert_eq!(
            image_name("ghcr.io/secops/rotate@sha256:ab"),
            "ghcr.io/secops/rotate"
        );
    }
}
