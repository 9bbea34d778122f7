//! Reads everything under `templates/` into memory: YAML documents (each with its file and
//! index), Vault roles (JSON) and policies (HCL). The checks run on this copy, so tests can
//! break it in memory without touching the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::Problem;

/// One YAML document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Relative to the repository root, with `/` separators.
    pub file: String,
    /// Index among the file's non-empty documents.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    pub fn str_at(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }
    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }
    /// The folder the file is in, relative to the repository root.
    pub fn dir(&self) -> &str {
        self.file.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

/// A Vault Kubernetes-auth role (`vault/roles/<name>.json`) or policy (`vault/policies/<name>.hcl`).
#[derive(Debug, Clone)]
pub struct VaultFile<T> {
    pub file: String,
    pub content: T,
    /// The file's text, as kustomize's replacements see it.
    pub raw: String,
}

#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub docs: Vec<Doc>,
    /// By role name (the file stem).
    pub vault_roles: BTreeMap<String, VaultFile<Value>>,
    /// By policy name (the file stem).
    pub vault_policies: BTreeMap<String, VaultFile<String>>,
    /// Password policies (`vault/password-policies/<name>.hcl`), by name.
    pub vault_password_policies: BTreeMap<String, VaultFile<String>>,
    /// Every file under `templates/`, relative to the repository root.
    pub files: BTreeSet<String>,
    /// Files that could not be read or parsed.
    pub problems: Vec<Problem>,
}

impl Templates {
    /// The document of `kind` named `name` (tests use it to break one in place).
    pub fn doc_mut(&mut self, kind: &str, name: &str) -> &mut Value {
        &mut self
            .docs
            .iter_mut()
            .find(|d| d.kind() == kind && d.name() == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in templates/"))
            .value
    }
}

/// Reads `templates_dir`; `repo` is the root the file names are relative to.
pub fn load(repo: &Path, templates_dir: &Path) -> Templates {
    let mut t = Templates::default();
    let mut files = Vec::new();
    walk(templates_dir, &mut files);
    files.sort();
    for path in files {
        let rel = path
            .strip_prefix(repo)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let rel = normalize(&rel);
        t.files.insert(rel.clone());
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                t.problems
                    .push(Problem::new(&rel, None, "", format!("cannot read: {e}")));
                continue;
            }
        };
        let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
        let stem = rel
            .rsplit_once('/')
            .map_or(rel.as_str(), |(_, f)| f)
            .rsplit_once('.')
            .map_or("", |(s, _)| s)
            .to_owned();
        let parent = rel.rsplit_once('/').map_or("", |(d, _)| d);
        match ext {
            "yaml" | "yml" => read_yaml(&rel, &text, &mut t),
            "json" if parent.ends_with("vault/roles") => match serde_json::from_str(&text) {
                Ok(v) => {
                    t.vault_roles.insert(
                        stem,
                        VaultFile {
                            file: rel,
                            content: v,
                            raw: text,
                        },
                    );
                }
                Err(e) => {
                    t.problems
                        .push(Problem::new(&rel, None, "", format!("invalid JSON: {e}")))
                }
            },
            "hcl" if parent.ends_with("vault/policies") => {
                t.vault_policies.insert(
                    stem,
                    VaultFile {
                        file: rel,
                        raw: text.clone(),
                        content: text,
                    },
                );
            }
            "hcl" if parent.ends_with("vault/password-policies") => {
                // Vault refuses a password policy without a length; say so before it does.
                if !text.lines().any(|l| l.trim_start().starts_with("length")) {
                    t.problems.push(Problem::new(
                        &rel,
                        None,
                        "",
                        "a password policy needs `length = N`",
                    ));
                }
                t.vault_password_policies.insert(
                    stem,
                    VaultFile {
                        file: rel,
                        raw: text.clone(),
                        content: text,
                    },
                );
            }
            "md" => {}
            _ => t.problems.push(Problem::new(
                &rel,
                None,
                "",
                "unexpected file: templates/ holds YAML, vault/roles/*.json, vault/policies/*.hcl \
                 and vault/password-policies/*.hcl",
            )),
        }
    }
    t
}

/// Documents as `kubectl kustomize` printed them for `source` (named `rendered <source>`),
/// with the Vault roles and policies from the generated `secops-vault-grants` ConfigMap.
pub fn rendered(source: &str, text: &str, t: &mut Templates) {
    let file = format!("rendered {source}");
    let before = t.docs.len();
    read_yaml(&file, text, t);
    for d in &t.docs[before..] {
        if d.kind() != "ConfigMap" || d.name() != "secops-vault-grants" {
            continue;
        }
        for (key, v) in d.value["data"].as_object().into_iter().flatten() {
            let raw = v.as_str().unwrap_or("").to_owned();
            let at = format!("{file} data.[{key}]");
            if let Some(stem) = key.strip_suffix(".json") {
                match serde_json::from_str(&raw) {
                    Ok(content) => {
                        t.vault_roles.insert(
                            stem.to_owned(),
                            VaultFile {
                                file: at,
                                content,
                                raw,
                            },
                        );
                    }
                    Err(e) => {
                        t.problems
                            .push(Problem::new(at, None, "", format!("invalid JSON: {e}")))
                    }
                }
            } else if let Some(stem) = key.strip_suffix(".hcl") {
                t.vault_policies.insert(
                    stem.to_owned(),
                    VaultFile {
                        file: at,
                        content: raw.clone(),
                        raw,
                    },
                );
            }
        }
    }
}

fn read_yaml(rel: &str, text: &str, t: &mut Templates) {
    match serde_saphyr::from_multiple::<Value>(text) {
        Ok(values) => {
            for value in values.into_iter().filter(|v| !v.is_null()) {
                let index = t.docs.iter().filter(|d| d.file == rel).count();
                if !value.is_object() {
                    t.problems.push(Problem::new(
                        rel,
                        Some(index),
                        "",
                        "a document must be a mapping",
                    ));
                }
                t.docs.push(Doc {
                    file: rel.to_owned(),
                    index,
                    value,
                });
            }
        }
        Err(e) => t
            .problems
            .push(Problem::new(rel, None, "", format!("invalid YAML: {e}"))),
    }
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Resolves `.` and `..` segments of a `/`-separated relative path.
pub fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_relative_paths() {
        assert_eq!(normalize("a/./b/../c.yaml"), "a/c.yaml");
        assert_eq!(
            normalize("tests/templates/../../templates/x"),
            "templates/x"
        );
        assert_eq!(normalize("../x"), "../x");
    }
}
