//! The kustomizations users apply (`kubectl apply -k`): every resource they list exists,
//! every manifest is listed by one (the ESO examples excepted), and the `images` knob names
//! exactly the images the listed templates run. Also the namespace each document lands in,
//! for the namespace-aware reference checks.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::load::{normalize, Doc, Templates};
use crate::xref::doc_containers;
use crate::{path, Problem};

const API_VERSION: &str = "kustomize.config.k8s.io/v1beta1";

/// Manifests that are examples, not installed by a kustomization (README "Reading (ESO)").
pub const EXAMPLES: [&str; 1] = ["templates/eso/"];

/// Fields these checks understand. Others (name prefixes, patches, generators) could rename
/// or rewrite objects behind the reference checks' back.
const FIELDS: [&str; 8] = [
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "images",
    "labels",
    "commonLabels",
    "commonAnnotations",
];

const IMAGE_FIELDS: [&str; 4] = ["name", "newName", "newTag", "digest"];

fn kustomizations(t: &Templates) -> impl Iterator<Item = &Doc> {
    t.docs.iter().filter(|d| d.kind() == "Kustomization")
}

/// A listed resource: a file, or a folder with its own kustomization.
enum Resource {
    File(String),
    Dir(String),
    Missing(String),
}

fn resources(t: &Templates, k: &Doc) -> Vec<(String, Resource)> {
    let mut out = Vec::new();
    for (i, r) in k.value["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = path::index("resources", i);
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

fn kustomization_in<'a>(t: &'a Templates, dir: &str) -> Option<&'a Doc> {
    kustomizations(t).find(|k| k.dir() == dir)
}

/// The files a kustomization installs, through nested kustomizations.
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
        .filter(|k| !nested.contains(k.dir()))
        .collect()
}

/// (file, document index) -> the namespace kustomize sets (an outer kustomization's
/// `namespace` wins over an inner one's).
pub fn namespaces(t: &Templates) -> HashMap<(String, usize), String> {
    fn assign(
        t: &Templates,
        k: &Doc,
        ns: Option<&str>,
        depth: usize,
        out: &mut HashMap<(String, usize), String>,
    ) {
        if depth > 16 {
            return;
        }
        let ns = ns.or(k.value["namespace"].as_str());
        for (_, r) in resources(t, k) {
            match r {
                Resource::File(f) => {
                    if let Some(ns) = ns {
                        for d in t.docs.iter().filter(|d| d.file == f) {
                            out.entry((d.file.clone(), d.index))
                                .or_insert_with(|| ns.to_owned());
                        }
                    }
                }
                Resource::Dir(dir) => {
                    if let Some(child) = kustomization_in(t, &dir) {
                        assign(t, child, ns, depth + 1, out);
                    }
                }
                Resource::Missing(_) => {}
            }
        }
    }
    let mut out = HashMap::new();
    for k in top_level(t) {
        assign(t, k, None, 0, &mut out);
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
        if k.api_version() != API_VERSION {
            out.push(Problem::at(
                k,
                "apiVersion",
                format!("a Kustomization is {API_VERSION}"),
            ));
        }
        for key in k.value.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !FIELDS.contains(&key.as_str()) {
                out.push(Problem::at(
                    k,
                    key.as_str(),
                    format!(
                        "{key} is not understood by these checks (allowed: {})",
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
        for (p, r) in resources(t, k) {
            if let Resource::Missing(r) = r {
                out.push(Problem::at(
                    k,
                    p,
                    format!("resource {r:?} does not exist (relative to {})", k.dir()),
                ));
            }
        }
    }

    // Every manifest is installed by some kustomization.
    let mut listed = BTreeSet::new();
    for k in top_level(t) {
        files_of(t, k, 0, &mut listed);
    }
    let manifests: BTreeSet<&str> = t
        .docs
        .iter()
        .filter(|d| d.kind() != "Kustomization")
        .map(|d| d.file.as_str())
        .collect();
    for f in manifests {
        if !listed.contains(f) && !EXAMPLES.iter().any(|e| f.starts_with(e)) {
            out.push(Problem::new(
                f,
                None,
                "",
                "no kustomization lists this file, so `kubectl apply -k` never installs it",
            ));
        }
    }

    // The images knob of each applied kustomization matches the images it installs.
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
        let images: Vec<&Value> = k.value["images"].as_array().into_iter().flatten().collect();
        let mut knob = BTreeSet::new();
        for (i, img) in images.iter().enumerate() {
            let p = path::index("images", i);
            for key in img.as_object().into_iter().flatten().map(|(k, _)| k) {
                if !IMAGE_FIELDS.contains(&key.as_str()) {
                    out.push(Problem::at(
                        k,
                        path::key(&p, key),
                        format!("unknown images field {key:?}"),
                    ));
                }
            }
            let name = img["name"].as_str().unwrap_or("");
            knob.insert(name);
            if !used.iter().any(|(_, _, u)| *u == name) {
                out.push(Problem::at(
                    k,
                    path::key(&p, "name"),
                    format!("image {name:?} is used by no template this kustomization installs"),
                ));
            }
        }
        for (d, p, name) in used {
            if !knob.contains(name) {
                out.push(Problem::at(
                    d,
                    p,
                    format!("image {name:?} is not listed in {}'s images", k.file),
                ));
            }
        }
    }
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
