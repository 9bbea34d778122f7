//! The official schemas in `shared/schemas`, compiled once.
//!
//! Argo Workflows kinds are checked twice: against their definition in the JSON schema
//! (what IDEs and `argo lint` use) and against the full CRD's `openAPIV3Schema` (what the API
//! server uses). Only the CRD rejects undeclared fields, so it is the check that catches v3
//! leftovers such as `spec.schedule` or `synchronization.mutex`. ESO kinds are checked
//! against their CRDs, Argo Events kinds against their JSON schema (its CRDs are not
//! structural).
//!
//! A CRD schema is OpenAPI v3 with Kubernetes extensions, so it is first converted into a JSON
//! schema ([`crd_to_json_schema`]); undeclared fields are found by [`crate::strict`].
//!
//! Not checked: CEL rules (`x-kubernetes-validations`) cannot be evaluated here. In the
//! v4.1.2 Argo CRDs they are:
//! - one template type per template; no `timeout` or `activeDeadlineSeconds` on steps/dag
//!   templates; at most one location per artifact and `archiveLocation` (these four are
//!   re-implemented by hand in [`crate::xref`]);
//! - `gauge.realtime` not with a `resourcesDuration.` value; dag tasks: not both `depends`
//!   and `dependencies`, not `depends` with `continueOn`, no task name starting with a digit
//!   when dependencies are used; sequences: not both `count` and `end`; resource templates:
//!   `manifest` xor `manifestFrom`.
//!
//! In the ESO v2.9.0 CRDs: provider one-of rules (aws `customSessionTags`, crd, doppler,
//! nebius, 1Password SDK, openBao incl. its AppRole, pulumi, secretserver) and PushSecret's
//! `dataTo[]` store reference and rewrite `regexp` xor `transform`. The ExternalSecret CRD has
//! none. None of these providers or fields is used by the templates.

use std::collections::BTreeMap;
use std::path::Path;

use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::{json, Map, Value};

use crate::load::Doc;
use crate::strict::{self, Mode};
use crate::{path, Problem};

pub const ARGO_SCHEMA: &str = "argo-workflows-v4.1.2.schema.json";
pub const EVENTS_SCHEMA: &str = "argo-events-2026-07.schema.json";
pub const CRD_FILES: [&str; 5] = [
    "argo-workflows-v4.1.2-workflowtemplates.crd.yaml",
    "argo-workflows-v4.1.2-cronworkflows.crd.yaml",
    "eso-v2.9.0-externalsecrets.crd.yaml",
    "eso-v2.9.0-pushsecrets.crd.yaml",
    "eso-v2.9.0-clustersecretstores.crd.yaml",
];

const ARGO: &str = "argoproj.io/v1alpha1";

/// (kind, definition) in the Argo Workflows JSON schema.
const ARGO_KINDS: [(&str, &str); 4] = [
    (
        "WorkflowTemplate",
        "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    ),
    (
        "ClusterWorkflowTemplate",
        "io.argoproj.workflow.v1alpha1.ClusterWorkflowTemplate",
    ),
    ("CronWorkflow", "io.argoproj.workflow.v1alpha1.CronWorkflow"),
    // Only as the resource a Sensor submits (see `events`).
    ("Workflow", "io.argoproj.workflow.v1alpha1.Workflow"),
];

/// (kind, definition) in the Argo Events JSON schema.
const EVENTS_KINDS: [(&str, &str); 2] = [
    ("EventSource", "io.argoproj.events.v1alpha1.EventSource"),
    ("Sensor", "io.argoproj.events.v1alpha1.Sensor"),
];

/// ClusterWorkflowTemplate and Workflow have no CRD file in shared/schemas; their `spec` is
/// the same Go type (`WorkflowSpec`) as WorkflowTemplate's, so its CRD schema applies.
fn crd_kind_for(kind: &str) -> &str {
    match kind {
        "ClusterWorkflowTemplate" | "Workflow" => "WorkflowTemplate",
        k => k,
    }
}

struct JsonKind {
    api_version: &'static str,
    kind: &'static str,
    source: &'static str,
    validator: Validator,
    /// The schema document and the definition, for the unknown-field walk (events only: for
    /// Argo Workflows kinds the CRD walk is authoritative).
    strict: Option<(&'static str, String)>,
}

pub struct CrdVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// The original `openAPIV3Schema`, for the unknown-field walk.
    pub schema: Value,
    validator: Validator,
}

pub struct Crd {
    pub file: String,
    pub name: String,
    pub group: String,
    pub kind: String,
    pub versions: Vec<CrdVersion>,
}

pub struct Schemas {
    json: Vec<JsonKind>,
    /// JSON schema documents by file name, for `$ref` resolution in the strict walk.
    documents: BTreeMap<&'static str, Value>,
    pub crds: Vec<Crd>,
}

fn options() -> jsonschema::ValidationOptions<'static> {
    // Kubernetes and the Go controllers use RE2; the `regex` crate has the same syntax.
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true)
}

impl Schemas {
    pub fn load(dir: &Path) -> Result<Schemas, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let mut argo: Value =
            serde_json::from_str(&read(ARGO_SCHEMA)?).map_err(|e| format!("{ARGO_SCHEMA}: {e}"))?;
        // The API server accepts an integer for IntOrString (the CRD marks the fields
        // x-kubernetes-int-or-string); this JSON schema alone says string.
        argo["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] =
            json!({"type": ["string", "integer"]});
        let events: Value = serde_json::from_str(&read(EVENTS_SCHEMA)?)
            .map_err(|e| format!("{EVENTS_SCHEMA}: {e}"))?;

        let mut json = Vec::new();
        for (source, doc, kinds, strict) in [
            (ARGO_SCHEMA, &argo, &ARGO_KINDS[..], false),
            (EVENTS_SCHEMA, &events, &EVENTS_KINDS[..], true),
        ] {
            for (kind, def) in kinds {
                if doc["definitions"].get(*def).is_none() {
                    return Err(format!("{source} has no definition {def}"));
                }
                let validator = options()
                    .build(&rooted_at(doc, def))
                    .map_err(|e| format!("{source} {def}: {e}"))?;
                json.push(JsonKind {
                    api_version: ARGO,
                    kind,
                    source,
                    validator,
                    strict: strict.then(|| (source, def.to_string())),
                });
            }
        }

        let mut crds = Vec::new();
        for file in CRD_FILES {
            let text = read(file)?;
            // Trusted, large input: no parser budget.
            let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(
                &text,
                serde_saphyr::options! { budget: None },
            )
            .map_err(|e| format!("{file}: {e}"))?;
            for d in docs.into_iter().filter(|d| !d.is_null()) {
                crds.push(Crd::new(file, &d)?);
            }
        }
        let mut documents = BTreeMap::new();
        documents.insert(ARGO_SCHEMA, argo);
        documents.insert(EVENTS_SCHEMA, events);
        Ok(Schemas {
            json,
            documents,
            crds,
        })
    }

    /// Validates a document if a schema knows its kind; false if none does.
    pub fn validate(&self, doc: &Doc, out: &mut Vec<Problem>) -> bool {
        self.validate_value(doc, "", &doc.value, out)
    }

    /// Validates `value` (the whole document, or a resource embedded in it at `at`).
    pub fn validate_value(
        &self,
        doc: &Doc,
        at: &str,
        value: &Value,
        out: &mut Vec<Problem>,
    ) -> bool {
        let api_version = value["apiVersion"].as_str().unwrap_or("");
        let kind = value["kind"].as_str().unwrap_or("");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut known = false;
        let mut found = Vec::new();

        // The CRD first: when both report at one path, its finding is the one kept.
        let crd = self
            .crds
            .iter()
            .find(|c| c.group == group && c.kind == crd_kind_for(kind));
        if let Some(crd) = crd {
            known = true;
            match crd.versions.iter().find(|v| v.name == version) {
                Some(v) if v.served => {
                    for e in v.validator.iter_errors(value) {
                        let p = path::from_pointer(at, e.instance_path().as_str());
                        found.push((
                            p,
                            format!("{} (full CRD {})", short(&e.to_string()), crd.name),
                        ));
                    }
                    let mut unknown = Vec::new();
                    strict::unknown_fields(
                        &v.schema,
                        &v.schema,
                        value,
                        at,
                        Mode::Structural,
                        &mut unknown,
                    );
                    for (p, msg) in unknown {
                        found.push((
                            p,
                            format!("{msg}: the full CRD {} does not declare it", crd.name),
                        ));
                    }
                }
                _ => {
                    let served: Vec<_> = crd
                        .versions
                        .iter()
                        .filter(|v| v.served)
                        .map(|v| format!("{}/{}", crd.group, v.name))
                        .collect();
                    found.push((
                        path::key(at, "apiVersion"),
                        format!(
                            "{api_version} is not served by the CRD {} (served: {})",
                            crd.name,
                            served.join(", ")
                        ),
                    ));
                }
            }
        }
        for j in self
            .json
            .iter()
            .filter(|j| j.api_version == api_version && j.kind == kind)
        {
            known = true;
            for e in j.validator.iter_errors(value) {
                let p = path::from_pointer(at, e.instance_path().as_str());
                if found.iter().any(|(q, _)| *q == p) {
                    continue;
                }
                found.push((p, format!("{} ({})", short(&e.to_string()), j.source)));
            }
            if let Some((source, def)) = &j.strict {
                let root = &self.documents[source];
                let mut unknown = Vec::new();
                strict::unknown_fields(
                    root,
                    &root["definitions"][def],
                    value,
                    at,
                    Mode::JsonSchema,
                    &mut unknown,
                );
                for (p, msg) in unknown {
                    found.push((
                        p,
                        format!(
                            "{msg}: {source} does not declare it (the controller would ignore it)"
                        ),
                    ));
                }
            }
        }
        out.extend(found.into_iter().map(|(p, m)| Problem::at(doc, p, m)));
        known
    }
}

/// Validation messages quote the instance; a whole template is not useful in a report.
fn short(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The schema document with its root replaced by a reference to one definition.
fn rooted_at(doc: &Value, def: &str) -> Value {
    let mut root = Map::new();
    root.insert("$ref".into(), format!("#/definitions/{def}").into());
    root.insert("definitions".into(), doc["definitions"].clone());
    Value::Object(root)
}

impl Crd {
    fn new(file: &str, d: &Value) -> Result<Crd, String> {
        let spec = &d["spec"];
        let name = d["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let mut versions = Vec::new();
        for v in spec["versions"].as_array().into_iter().flatten() {
            let vname = v["name"].as_str().unwrap_or("").to_owned();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            if !schema.is_object() {
                return Err(format!("{file}: {name} {vname} has no openAPIV3Schema"));
            }
            let converted =
                crd_to_json_schema(&schema).map_err(|e| format!("{file}: {name} {vname}: {e}"))?;
            let validator = options()
                .build(&converted)
                .map_err(|e| format!("{file}: {name} {vname}: {e}"))?;
            versions.push(CrdVersion {
                name: vname,
                served: v["served"].as_bool().unwrap_or(false),
                storage: v["storage"].as_bool().unwrap_or(false),
                schema,
                validator,
            });
        }
        Ok(Crd {
            file: file.to_owned(),
            name,
            group: spec["group"].as_str().unwrap_or("").to_owned(),
            kind: spec["names"]["kind"].as_str().unwrap_or("").to_owned(),
            versions,
        })
    }
}

/// OpenAPI v3 keywords a structural CRD schema may use that mean the same in JSON schema.
const SAME: [&str; 14] = [
    "enum",
    "pattern",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "uniqueItems",
    "format",
];

/// Keywords that do not constrain values here. `x-kubernetes-validations` is CEL (not
/// evaluated, see the module docs); list-map keys are checked by [`crate::strict`].
const IGNORED: [&str; 9] = [
    "description",
    "default",
    "example",
    "title",
    "externalDocs",
    "x-kubernetes-validations",
    "x-kubernetes-map-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-embedded-resource",
];

/// Converts a structural CRD schema into a draft 2020-12 JSON schema with the same
/// type/enum/pattern/required/bounds semantics. Fails on a keyword it does not know, so a new
/// CRD cannot silently weaken the check.
pub fn crd_to_json_schema(s: &Value) -> Result<Value, String> {
    let Some(obj) = s.as_object() else {
        return Err(format!("a schema must be an object, not {s}"));
    };
    let mut out = Map::new();
    let nullable = obj
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let int_or_string = obj
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (k, v) in obj {
        match k.as_str() {
            "type" => {
                let t = v.as_str().ok_or("type must be a string")?;
                out.insert(
                    "type".into(),
                    if nullable {
                        json!([t, "null"])
                    } else {
                        json!(t)
                    },
                );
            }
            "properties" => {
                let mut props = Map::new();
                for (name, p) in v.as_object().ok_or("properties must be a map")? {
                    props.insert(
                        name.clone(),
                        crd_to_json_schema(p).map_err(|e| format!("{name}: {e}"))?,
                    );
                }
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "not" => {
                out.insert(k.clone(), crd_to_json_schema(v)?);
            }
            "additionalProperties" => {
                let a = if v.is_boolean() {
                    v.clone()
                } else {
                    crd_to_json_schema(v)?
                };
                out.insert(k.clone(), a);
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = v
                    .as_array()
                    .ok_or("allOf/anyOf/oneOf must be a list")?
                    .iter()
                    .map(crd_to_json_schema)
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(k.clone(), Value::Array(list));
            }
            // OpenAPI 3.0 booleans; JSON schema wants the bound itself.
            "exclusiveMinimum" | "exclusiveMaximum" => {
                if v.as_bool() == Some(true) {
                    let bound = if k == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    if let Some(b) = obj.get(bound) {
                        out.insert(k.clone(), b.clone());
                    }
                }
            }
            "x-kubernetes-list-type" => {
                if v == "set" {
                    out.insert("uniqueItems".into(), true.into());
                }
            }
            "nullable" | "x-kubernetes-int-or-string" | "x-kubernetes-preserve-unknown-fields" => {}
            k if SAME.contains(&k) => {
                out.insert(k.to_owned(), v.clone());
            }
            k if IGNORED.contains(&k) => {}
            k => return Err(format!("unsupported CRD schema keyword {k:?}")),
        }
    }
    // An exclusive bound replaces the inclusive one it qualified.
    for (ex, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if out.contains_key(ex) {
            out.remove(bound);
        }
    }
    if nullable {
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    if int_or_string {
        // Replaces the `anyOf: [{type: integer}, {type: string}]` structural schemas carry,
        // so that a wrong value is reported once.
        if out.get("anyOf") == Some(&json!([{"type": "integer"}, {"type": "string"}])) {
            out.remove("anyOf");
        }
        out.insert("type".into(), json!(["integer", "string"]));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_kubernetes_extensions() {
        let s = json!({
            "type": "object",
            "description": "x",
            "x-kubernetes-validations": [{"rule": "self.a > 0"}],
            "properties": {
                "limit": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true},
                "when": {"type": "string", "nullable": true, "enum": ["a"]},
                "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
            }
        });
        let v = options().build(&crd_to_json_schema(&s).unwrap()).unwrap();
        assert!(v.is_valid(&json!({"limit": 3, "when": null, "n": 1, "tags": ["a", "b"]})));
        assert!(v.is_valid(&json!({"limit": "3", "when": "a"})));
        assert!(!v.is_valid(&json!({"limit": true})));
        assert!(!v.is_valid(&json!({"when": "b"})));
        assert!(!v.is_valid(&json!({"n": 0})));
        assert!(!v.is_valid(&json!({"tags": ["a", "a"]})));
    }

    #[test]
    fn refuses_unknown_keywords() {
        assert!(crd_to_json_schema(&json!({"type": "object", "x-new-thing": 1})).is_err());
    }
}
