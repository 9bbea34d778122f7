//! Checks `templates/` the way the cluster and the step binaries will judge it, but in CI:
//! `kubectl apply` (strict field validation against the full CRDs), the Argo and ESO
//! controllers, and each step's flag parser reject drift only at install or run time.
//!
//! [`load`] reads every document; [`Checker::check`] returns every [`Problem`] at once.
//!
//! Beside the templates, two checks of the repository itself: [`docs`] (README stays short,
//! every documentation link resolves) and [`tidy`] (the code rules of ARCHITECTURE.md).

pub mod binaries;
pub mod deadlines;
pub mod docs;
pub mod events;
pub mod kustomize;
pub mod load;
pub mod path;
pub mod rbac;
pub mod schema;
pub mod strict;
pub mod tidy;
pub mod vars;
pub mod vault;
pub mod xref;

use std::fmt;
use std::path::{Path, PathBuf};

pub use load::{load, Doc, Templates};

/// One finding: where (file, document index in a multi-document file, path inside it) and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Relative to the repository root, e.g. `templates/workflows/secret-handover.yaml`.
    pub file: String,
    /// Index of the YAML document in `file`; `None` for non-YAML files or the file as a whole.
    pub doc: Option<usize>,
    /// Path inside the document, e.g. `spec.templates[2].container.args[0]`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(
        file: impl Into<String>,
        doc: Option<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            doc,
            path: path.into(),
            message: message.into(),
        }
    }

    /// A problem in a YAML document.
    pub fn at(doc: &Doc, path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(doc.file.clone(), Some(doc.index), path, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(d) = self.doc {
            write!(f, "#{d}")?;
        }
        if !self.path.is_empty() {
            write!(f, " {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems, one per line, for a test failure message.
pub fn report(problems: &[Problem]) -> String {
    let mut s = format!("{} problem(s):\n", problems.len());
    for p in problems {
        s.push_str(&format!("  {p}\n"));
    }
    s
}

/// Where the repository, its templates and the shared schemas are.
#[derive(Debug, Clone)]
pub struct Locations {
    pub repo: PathBuf,
    pub templates: PathBuf,
    pub schemas: PathBuf,
}

impl Locations {
    /// The repository this crate lives in, and `shared/schemas` next to it (CI clones the
    /// repository beside a copy of `shared/`), or under `$SECOPS_SHARED_DIR`.
    pub fn locate() -> Result<Locations, String> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo = manifest
            .join("../..")
            .canonicalize()
            .map_err(|e| format!("{}: {e}", manifest.join("../..").display()))?;
        let templates = repo.join("templates");
        if !templates.is_dir() {
            return Err(format!("no templates/ at {}", templates.display()));
        }
        let beside = manifest.join("../../../shared/schemas");
        let from_env = std::env::var_os("SECOPS_SHARED_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let schemas = schemas_dir(beside, from_env)?;
        Ok(Locations {
            repo,
            templates,
            schemas,
        })
    }
}

/// `beside` if it is a folder, else `<shared>/schemas`; an error naming both otherwise.
fn schemas_dir(beside: PathBuf, shared: Option<PathBuf>) -> Result<PathBuf, String> {
    let from_env = shared.map(|d| d.join("schemas"));
    if beside.is_dir() {
        return Ok(beside);
    }
    match from_env {
        Some(dir) if dir.is_dir() => Ok(dir),
        other => Err(format!(
            "the official schemas are not found: looked at {} and {}; clone the repository \
             next to shared/ or set SECOPS_SHARED_DIR to the shared/ folder",
            beside.display(),
            other.map_or_else(
                || "$SECOPS_SHARED_DIR/schemas (unset)".into(),
                |d| d.display().to_string()
            ),
        )),
    }
}

/// The schemas and step binaries, loaded once; [`Checker::check`] runs every check.
pub struct Checker {
    pub schemas: schema::Schemas,
    pub binaries: binaries::Binaries,
}

impl Checker {
    pub fn new(loc: &Locations) -> Result<Checker, String> {
        Ok(Checker {
            schemas: schema::Schemas::load(&loc.schemas)?,
            binaries: binaries::Binaries::new(&loc.repo),
        })
    }

    /// Every problem: load errors, schema and strict-field validation, cross-references.
    pub fn check(&self, t: &Templates) -> Vec<Problem> {
        let mut out = t.problems.clone();
        let config = kustomize::config_files(t);
        for doc in &t.docs {
            if !config.contains(&doc.file) {
                self.validate(doc, &mut out);
            }
        }
        let index = xref::Index::new(t);
        let uses = xref::check(t, &index, &self.binaries, &mut out);
        rbac::check(t, &index, &uses.pods, &mut out);
        events::check(t, &index, &self.schemas, &mut out);
        vault::check(t, &index, &uses.roles, &mut out);
        kustomize::check(t, &mut out);
        deadlines::check(t, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// What `kubectl kustomize` rendered, as it would be installed: every document validated
    /// as above and cross-referenced with the namespaces kustomize gave it, and the Vault
    /// grants as the generated `secops-vault-grants` ConfigMap holds them. The kustomization
    /// checks do not apply (there are none left).
    /// `registry` is where the images knob points (`ghcr.io/secops/` by default).
    pub fn check_rendered(&self, t: &Templates, registry: &str) -> Vec<Problem> {
        let mut out = t.problems.clone();
        for doc in &t.docs {
            self.validate(doc, &mut out);
        }
        let binaries = binaries::Binaries {
            registry: registry.to_owned(),
            ..self.binaries.clone()
        };
        let index = xref::Index::new(t);
        let uses = xref::check(t, &index, &binaries, &mut out);
        rbac::check(t, &index, &uses.pods, &mut out);
        events::check(t, &index, &self.schemas, &mut out);
        vault::check(t, &index, &uses.roles, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Schema and strict validation of one document, by kind.
    fn validate(&self, doc: &Doc, out: &mut Vec<Problem>) {
        let (api_version, kind) = (doc.api_version(), doc.kind());
        if api_version.is_empty() || kind.is_empty() {
            out.push(Problem::at(doc, "", "apiVersion and kind are required"));
            return;
        }
        if kustomize::is_kustomize_input(doc) {
            // Checked by `kustomize`: kustomize inputs, not API objects.
            return;
        }
        if self.schemas.validate(doc, out) {
            strict::check_metadata(doc, out);
            return;
        }
        if strict::check_core(doc, out) {
            return;
        }
        out.push(Problem::at(
            doc,
            "kind",
            format!(
                "unknown kind {api_version} {kind}: no schema in shared/schemas and not a \
                 Kubernetes core type the checker knows"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_come_from_beside_the_repository_or_from_the_environment() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = manifest.join("../../../shared");
        let nowhere = manifest.join("no-such-folder");
        if !shared.join("schemas").is_dir() {
            return; // this checkout has shared/ elsewhere (SECOPS_SHARED_DIR)
        }
        assert_eq!(
            schemas_dir(shared.join("schemas"), None),
            Ok(shared.join("schemas"))
        );
        assert_eq!(
            schemas_dir(nowhere.clone(), Some(shared.clone())),
            Ok(shared.join("schemas"))
        );
        let err = schemas_dir(nowhere, Some(manifest.to_owned())).unwrap_err();
        assert!(err.contains("SECOPS_SHARED_DIR"), "{err}");
    }
}
