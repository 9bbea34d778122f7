//! Cross-references inside `templates/`, which no schema can see: every template and
//! parameter used is declared, every container runs an existing step binary with flags and
//! environment variables it has, every ServiceAccount referenced exists.
//!
//! Four of the CRDs' CEL rules are re-implemented here because they concern every template:
//! one template type per template, no `timeout`/`activeDeadlineSeconds` on steps or dag
//! templates, and at most one location per artifact.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::binaries::{check_container, Binaries};
use crate::load::{Doc, Templates};
use crate::vars::{self, Var};
use crate::{kustomize, path, Problem};

const ARGO: &str = "argoproj.io/v1alpha1";

/// Kinds without a namespace.
pub const CLUSTER_SCOPED: [&str; 6] = [
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterWorkflowTemplate",
    "ClusterSecretStore",
    "Namespace",
    "PriorityClass",
];

/// The template types of the CRD's one-type-per-template rule.
const TEMPLATE_TYPES: [&str; 10] = [
    "container",
    "script",
    "dag",
    "steps",
    "resource",
    "suspend",
    "containerSet",
    "data",
    "http",
    "plugin",
];

/// Artifact locations of the CRD's at-most-one-location rule.
const ARTIFACT_LOCATIONS: [&str; 10] = [
    "s3",
    "git",
    "http",
    "artifactory",
    "hdfs",
    "raw",
    "oss",
    "gcs",
    "azure",
    "plugin",
];

/// At most one artifact location in `v` (an artifact or an `archiveLocation`) at `at`.
fn one_location(d: &Doc, at: &str, v: &Value, out: &mut Vec<Problem>) {
    let found: Vec<&str> = ARTIFACT_LOCATIONS
        .iter()
        .copied()
        .filter(|k| v.get(*k).is_some())
        .collect();
    if found.len() > 1 {
        out.push(Problem::at(
            d,
            at,
            format!("at most one artifact location, not {found:?}"),
        ));
    }
}

/// Every named object in `templates/`, with the namespace it is installed in.
pub struct Index<'a> {
    namespaces: HashMap<(String, usize), String>,
    pub service_accounts: BTreeSet<(Option<String>, String)>,
    pub roles: BTreeSet<(Option<String>, String)>,
    pub cluster_roles: BTreeSet<String>,
    pub workflow_templates: BTreeMap<String, &'a Doc>,
    pub cluster_workflow_templates: BTreeMap<String, &'a Doc>,
    pub event_sources: BTreeMap<String, &'a Doc>,
    /// ("ClusterSecretStore", None, name) or ("SecretStore", namespace, name).
    pub secret_stores: BTreeSet<(&'static str, Option<String>, String)>,
}

impl<'a> Index<'a> {
    pub fn new(t: &'a Templates) -> Index<'a> {
        let mut idx = Index {
            namespaces: kustomize::namespaces(t),
            service_accounts: BTreeSet::new(),
            roles: BTreeSet::new(),
            cluster_roles: BTreeSet::new(),
            workflow_templates: BTreeMap::new(),
            cluster_workflow_templates: BTreeMap::new(),
            event_sources: BTreeMap::new(),
            secret_stores: BTreeSet::new(),
        };
        for d in &t.docs {
            let name = d.name().to_owned();
            let ns = idx.namespace(d).map(str::to_owned);
            match (d.api_version(), d.kind()) {
                ("v1", "ServiceAccount") => {
                    idx.service_accounts.insert((ns, name));
                }
                ("rbac.authorization.k8s.io/v1", "Role") => {
                    idx.roles.insert((ns, name));
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                    idx.cluster_roles.insert(name);
                }
                (ARGO, "WorkflowTemplate") => {
                    idx.workflow_templates.insert(name, d);
                }
                (ARGO, "ClusterWorkflowTemplate") => {
                    idx.cluster_workflow_templates.insert(name, d);
                }
                (ARGO, "EventSource") => {
                    idx.event_sources.insert(name, d);
                }
                ("external-secrets.io/v1", "ClusterSecretStore") => {
                    idx.secret_stores.insert(("ClusterSecretStore", None, name));
                }
                ("external-secrets.io/v1", "SecretStore") => {
                    idx.secret_stores.insert(("SecretStore", ns, name));
                }
                _ => {}
            }
        }
        idx
    }

    /// The namespace the document is installed in: its kustomization's, else its own; `None`
    /// for cluster-scoped kinds and when nothing says.
    pub fn namespace<'s>(&'s self, d: &'s Doc) -> Option<&'s str> {
        if CLUSTER_SCOPED.contains(&d.kind()) {
            return None;
        }
        self.namespaces
            .get(&(d.file.clone(), d.index))
            .map(String::as_str)
            .or_else(|| d.value["metadata"]["namespace"].as_str())
    }

    /// A ServiceAccount of that name exists (in `ns`, when known).
    pub fn service_account(&self, ns: Option<&str>, name: &str) -> bool {
        self.service_accounts
            .iter()
            .any(|(n, s)| s == name && (ns.is_none() || n.as_deref() == ns))
    }

    /// The WorkflowTemplate (or, with `cluster`, ClusterWorkflowTemplate) of that name.
    pub fn workflow_template(&self, name: &str, cluster: bool) -> Option<&'a Doc> {
        if cluster {
            self.cluster_workflow_templates.get(name).copied()
        } else {
            self.workflow_templates.get(name).copied()
        }
    }
}

/// A container that logs in to Vault with a literal role, and the pod identity it does so with.
#[derive(Debug, Clone)]
pub struct RoleUse {
    pub file: String,
    pub doc: usize,
    pub path: String,
    pub role: String,
    pub service_account: Option<String>,
    pub namespace: Option<String>,
    /// The audience of the projected token the step presents (its
    /// `SECOPS_SERVICE_ACCOUNT_TOKEN_FILE` in a `serviceAccountToken` volume); `None`: the
    /// pod's default token, for the API server's audience.
    pub token_audience: Option<String>,
}

/// A pod an Argo template runs, and the ServiceAccount it runs as.
#[derive(Debug, Clone)]
pub struct PodUse {
    pub file: String,
    pub doc: usize,
    pub path: String,
    pub service_account: String,
    pub namespace: Option<String>,
}

/// What the workflow checks found that other checks need.
#[derive(Debug, Default)]
pub struct Uses {
    pub roles: Vec<RoleUse>,
    pub pods: Vec<PodUse>,
}

/// Argo documents and ExternalSecrets. Returns what the RBAC and Vault checks need.
pub fn check(t: &Templates, idx: &Index, bins: &Binaries, out: &mut Vec<Problem>) -> Uses {
    let mut uses = Uses::default();
    for d in &t.docs {
        match (d.api_version(), d.kind()) {
            ("external-secrets.io/v1", "ExternalSecret") => check_store_ref(d, idx, out),
            (ARGO, "WorkflowTemplate" | "ClusterWorkflowTemplate" | "Workflow") => {
                check_spec(
                    d,
                    "spec",
                    &d.value["spec"],
                    &BTreeMap::new(),
                    idx,
                    bins,
                    out,
                    &mut uses,
                );
            }
            (ARGO, "CronWorkflow") => check_cron(d, idx, bins, out, &mut uses),
            _ => {}
        }
    }
    uses
}

/// An ExternalSecret reads through a store defined in templates/.
fn check_store_ref(d: &Doc, idx: &Index, out: &mut Vec<Problem>) {
    let r = &d.value["spec"]["secretStoreRef"];
    let name = r["name"].as_str().unwrap_or("");
    let kind = r["kind"].as_str().unwrap_or("SecretStore");
    let key = match kind {
        "ClusterSecretStore" => ("ClusterSecretStore", None, name.to_owned()),
        _ => (
            "SecretStore",
            idx.namespace(d).map(str::to_owned),
            name.to_owned(),
        ),
    };
    if !idx.secret_stores.contains(&key) {
        out.push(Problem::at(
            d,
            "spec.secretStoreRef",
            format!("no {} {name:?} in templates/", key.0),
        ));
    }
}

/// Declared parameters: name -> declaration.
pub fn parameters(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p.clone())))
        .collect()
}

/// `arguments.parameters` (at `at`) set only parameters `target` declares.
pub fn check_arguments_against(
    doc: &Doc,
    at: &str,
    args: &Value,
    target: &Doc,
    out: &mut Vec<Problem>,
) {
    let declared = parameters(&target.value["spec"]["arguments"]["parameters"]);
    for (i, p) in args.as_array().into_iter().flatten().enumerate() {
        let name = p["name"].as_str().unwrap_or("");
        if !declared.contains_key(name) {
            out.push(Problem::at(
                doc,
                path::key(&path::index(at, i), "name"),
                format!(
                    "parameter {name:?} is not declared by {} {}",
                    target.kind(),
                    target.name()
                ),
            ));
        }
    }
}

fn check_cron(d: &Doc, idx: &Index, bins: &Binaries, out: &mut Vec<Problem>, uses: &mut Uses) {
    // Argo's validation (`validate.go`): the controller appends a timestamp to the name.
    if d.name().len() > 52 {
        out.push(Problem::at(
            d,
            "metadata.name",
            "a CronWorkflow name has at most 52 characters",
        ));
    }
    let at = "spec.workflowSpec";
    let ws = &d.value["spec"]["workflowSpec"];
    let r = &ws["workflowTemplateRef"];
    if !r.is_object() {
        check_spec(d, at, ws, &BTreeMap::new(), idx, bins, out, uses);
        return;
    }
    let name = r["name"].as_str().unwrap_or("");
    let cluster = r["clusterScope"].as_bool().unwrap_or(false);
    let Some(target) = idx.workflow_template(name, cluster) else {
        out.push(Problem::at(
            d,
            "spec.workflowSpec.workflowTemplateRef.name",
            format!(
                "no {} named {name:?} in templates/",
                if cluster {
                    "ClusterWorkflowTemplate"
                } else {
                    "WorkflowTemplate"
                }
            ),
        ));
        return;
    };
    check_arguments_against(
        d,
        "spec.workflowSpec.arguments.parameters",
        &ws["arguments"]["parameters"],
        target,
        out,
    );
    // Its own strings may use the referenced template's parameters and its own.
    let mut declared = parameters(&target.value["spec"]["arguments"]["parameters"]);
    declared.extend(parameters(&ws["arguments"]["parameters"]));
    check_spec(d, at, ws, &declared, idx, bins, out, uses);
}

/// Checks a WorkflowSpec at `at`. `inherited` parameters are declared elsewhere (the
/// WorkflowTemplate a CronWorkflow references).
#[allow(clippy::too_many_arguments)]
pub fn check_spec(
    d: &Doc,
    at: &str,
    spec: &Value,
    inherited: &BTreeMap<String, Value>,
    idx: &Index,
    bins: &Binaries,
    out: &mut Vec<Problem>,
    uses: &mut Uses,
) {
    let mut declared = inherited.clone();
    declared.extend(parameters(&spec["arguments"]["parameters"]));
    // Every shipped workflow can be run as a plan first (docs/steps.md: "Plan before you run").
    match declared.get("dry-run") {
        None => out.push(Problem::at(
            d,
            path::keys(at, "arguments.parameters"),
            "declares no dry-run parameter: every workflow exposes one (value \"false\") and passes it to every step as --dry-run",
        )),
        Some(p) if p["value"].as_str() != Some("false") => out.push(Problem::at(
            d,
            path::keys(at, "arguments.parameters"),
            format!(
                "the dry-run parameter must default to \"false\", not {}",
                p["value"]
            ),
        )),
        Some(_) => {}
    }
    let ns = idx.namespace(d);
    let templates: Vec<&Value> = spec["templates"].as_array().into_iter().flatten().collect();
    let by_name: BTreeMap<&str, &Value> = templates
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?, *t)))
        .collect();
    let ctx = Ctx {
        d,
        spec,
        idx,
        by_name: &by_name,
    };

    // Names and the entry points.
    let mut seen = BTreeSet::new();
    for (i, t) in templates.iter().enumerate() {
        let name = t["name"].as_str().unwrap_or("");
        if !seen.insert(name) {
            out.push(Problem::at(
                d,
                path::key(&path::index(&path::key(at, "templates"), i), "name"),
                format!("template name {name:?} is used twice"),
            ));
        }
    }
    let uses_ref = spec["workflowTemplateRef"].is_object();
    match spec["entrypoint"].as_str() {
        Some(e) if !by_name.contains_key(e) => out.push(Problem::at(
            d,
            path::key(at, "entrypoint"),
            format!("no template named {e:?}"),
        )),
        Some(e) => {
            for (name, decl) in parameters(&by_name[e]["inputs"]["parameters"]) {
                if !has_value(&decl) && !declared.contains_key(&name) {
                    out.push(Problem::at(
                        d,
                        path::key(at, "entrypoint"),
                        format!("entrypoint {e:?} needs input {name:?}, which no workflow argument of that name supplies"),
                    ));
                }
            }
        }
        None if !templates.is_empty() && !uses_ref && d.kind() != "CronWorkflow" => {
            out.push(Problem::at(
                d,
                path::key(at, "entrypoint"),
                "no entrypoint: the templates cannot be submitted without one",
            ))
        }
        None => {}
    }
    if let Some(e) = spec["onExit"].as_str() {
        if !by_name.contains_key(e) {
            out.push(Problem::at(
                d,
                path::key(at, "onExit"),
                format!("no template named {e:?}"),
            ));
        }
    }

    for (i, a) in spec["arguments"]["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        one_location(
            d,
            &path::index(&path::keys(at, "arguments.artifacts"), i),
            a,
            out,
        );
    }

    // Identities.
    let spec_sa = spec["serviceAccountName"].as_str();
    for (key, sa) in [
        (path::key(at, "serviceAccountName"), spec_sa),
        (
            path::keys(at, "executor.serviceAccountName"),
            spec["executor"]["serviceAccountName"].as_str(),
        ),
    ] {
        if let Some(sa) = sa {
            check_sa(d, &key, idx, ns, sa, out);
        }
    }

    // Workflow-level strings (everything but the templates).
    for_strings(spec, at, &["templates"], &mut |p, s| {
        for v in vars::refs(s) {
            match v {
                Var::WorkflowParam(n) => need_param(d, p, &declared, &n, out),
                Var::Known => {}
                other => out.push(Problem::at(
                    d,
                    p,
                    format!("{} cannot be used outside a template", describe(&other)),
                )),
            }
        }
    });

    for (i, t) in templates.iter().enumerate() {
        let tat = path::index(&path::key(at, "templates"), i);
        check_template(&ctx, &tat, t, &declared, spec_sa, ns, bins, out, uses);
    }
}

struct Ctx<'a, 'b> {
    d: &'a Doc,
    /// The workflow spec (its pod-level volumes).
    spec: &'a Value,
    idx: &'a Index<'b>,
    by_name: &'a BTreeMap<&'a str, &'a Value>,
}

fn has_value(decl: &Value) -> bool {
    decl.get("value").is_some() || decl.get("default").is_some() || decl.get("valueFrom").is_some()
}

fn describe(v: &Var) -> String {
    match v {
        Var::WorkflowParam(n) => format!("workflow.parameters.{n}"),
        Var::InputParam(n) => format!("inputs.parameters.{n}"),
        Var::OutputParam { steps, node, param } => {
            format!("{steps}.{node}.outputs.parameters.{param}")
        }
        Var::Node { steps, node } => format!("{steps}.{node}"),
        Var::Item => "item".into(),
        Var::Known => "a global".into(),
        Var::Unknown(s) => s.clone(),
    }
}

fn need_param(
    d: &Doc,
    p: &str,
    declared: &BTreeMap<String, Value>,
    name: &str,
    out: &mut Vec<Problem>,
) {
    if !declared.contains_key(name) {
        out.push(Problem::at(
            d,
            p,
            format!(
                "{{{{workflow.parameters.{name}}}}} is not declared in spec.arguments.parameters"
            ),
        ));
    }
}

pub(crate) fn check_sa(
    d: &Doc,
    at: &str,
    idx: &Index,
    ns: Option<&str>,
    sa: &str,
    out: &mut Vec<Problem>,
) {
    if !sa.contains("{{") && !idx.service_account(ns, sa) {
        let place = ns.map_or(String::new(), |n| format!(" in namespace {n}"));
        out.push(Problem::at(
            d,
            at,
            format!("no ServiceAccount {sa:?}{place} in templates/"),
        ));
    }
}

/// Calls `f(path, string)` for every string in `v`, skipping `skip` keys at the top.
fn for_strings(v: &Value, at: &str, skip: &[&str], f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(at, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                for_strings(x, &path::index(at, i), &[], f);
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                for_strings(x, &path::key(at, k), &[], f);
            }
        }
        _ => {}
    }
}

/// The templates a step or task calls: local, or in another WorkflowTemplate.
fn called<'a>(ctx: &Ctx<'a, '_>, step: &'a Value) -> Result<Option<&'a Value>, String> {
    if let Some(name) = step["template"].as_str() {
        return ctx
            .by_name
            .get(name)
            .copied()
            .map(Some)
            .ok_or_else(|| format!("no template named {name:?} in this spec"));
    }
    let r = &step["templateRef"];
    if r.is_object() {
        let (name, tmpl) = (
            r["name"].as_str().unwrap_or(""),
            r["template"].as_str().unwrap_or(""),
        );
        let cluster = r["clusterScope"].as_bool().unwrap_or(false);
        let Some(wt) = ctx.idx.workflow_template(name, cluster) else {
            return Err(format!(
                "templateRef: no WorkflowTemplate {name:?} in templates/"
            ));
        };
        return wt.value["spec"]["templates"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == tmpl)
            .map(Some)
            .ok_or_else(|| {
                format!("templateRef: WorkflowTemplate {name} has no template {tmpl:?}")
            });
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn check_template(
    ctx: &Ctx,
    tat: &str,
    t: &Value,
    declared: &BTreeMap<String, Value>,
    spec_sa: Option<&str>,
    ns: Option<&str>,
    bins: &Binaries,
    out: &mut Vec<Problem>,
    uses: &mut Uses,
) {
    let d = ctx.d;
    // CEL rules of the CRD, by hand.
    let types: Vec<&str> = TEMPLATE_TYPES
        .iter()
        .copied()
        .filter(|k| t.get(*k).is_some())
        .collect();
    if types.len() != 1 {
        out.push(Problem::at(
            d,
            tat,
            format!(
                "a template has exactly one type ({}), this one has {types:?}",
                TEMPLATE_TYPES.join(", ")
            ),
        ));
    }
    if t.get("steps").is_some() || t.get("dag").is_some() {
        for k in ["activeDeadlineSeconds", "timeout"] {
            if t.get(k).is_some() {
                out.push(Problem::at(
                    d,
                    path::key(tat, k),
                    format!("{k} is only allowed on leaf templates (not steps or dag)"),
                ));
            }
        }
    }

    for k in ["inputs.artifacts", "outputs.artifacts"] {
        let list = k.split('.').fold(t, |v, part| &v[part]);
        for (i, a) in list.as_array().into_iter().flatten().enumerate() {
            one_location(d, &path::index(&path::keys(tat, k), i), a, out);
        }
    }
    if t["archiveLocation"].is_object() {
        one_location(
            d,
            &path::key(tat, "archiveLocation"),
            &t["archiveLocation"],
            out,
        );
    }

    let inputs = parameters(&t["inputs"]["parameters"]);
    let sa = t["serviceAccountName"].as_str();
    if let Some(sa) = sa {
        check_sa(
            d,
            &path::key(tat, "serviceAccountName"),
            ctx.idx,
            ns,
            sa,
            out,
        );
    }

    // Nodes (steps or tasks) of this template, with the group a step is in.
    let mut nodes: BTreeMap<String, (usize, &Value)> = BTreeMap::new();
    let mut node_list: Vec<(String, usize, &Value)> = Vec::new();
    for (g, group) in t["steps"].as_array().into_iter().flatten().enumerate() {
        for (s, step) in group.as_array().into_iter().flatten().enumerate() {
            node_list.push((
                path::index(&path::index(&path::key(tat, "steps"), g), s),
                g,
                step,
            ));
        }
    }
    for (i, task) in t["dag"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        node_list.push((path::index(&path::keys(tat, "dag.tasks"), i), 0, task));
    }
    let word = if t.get("dag").is_some() {
        "tasks"
    } else {
        "steps"
    };
    for (p, g, n) in &node_list {
        let name = n["name"].as_str().unwrap_or("").to_owned();
        if nodes.insert(name.clone(), (*g, n)).is_some() {
            out.push(Problem::at(
                d,
                path::key(p, "name"),
                format!("{word} name {name:?} is used twice in this template"),
            ));
        }
    }

    // A reference to a node: it exists (in an earlier step group when `before` is set), and
    // a referenced output parameter is declared by the node's template.
    let node_ref =
        |p: &str, v: &Var, before: Option<usize>, this: Option<&str>, out: &mut Vec<Problem>| {
            let (steps, node, param) = match v {
                Var::OutputParam { steps, node, param } => (*steps, node, Some(param)),
                Var::Node { steps, node } => (*steps, node, None),
                _ => return,
            };
            if steps != word {
                out.push(Problem::at(
                    d,
                    p,
                    format!("{} in a template of {word}", describe(v)),
                ));
                return;
            }
            let Some((g, n)) = nodes.get(node.as_str()) else {
                out.push(Problem::at(
                    d,
                    p,
                    format!("{}: no {word} named {node:?} in this template", describe(v)),
                ));
                return;
            };
            if this == Some(node.as_str()) || before.is_some_and(|b| *g >= b) {
                out.push(Problem::at(
                    d,
                    p,
                    format!("{}: {node:?} has not run yet at this point", describe(v)),
                ));
                return;
            }
            let (Some(param), Ok(Some(called))) = (param, called(ctx, n)) else {
                return;
            };
            if !parameters(&called["outputs"]["parameters"]).contains_key(param.as_str()) {
                out.push(Problem::at(
                    d,
                    p,
                    format!(
                        "{}: template {} declares no output parameter {param:?}",
                        describe(v),
                        called["name"].as_str().unwrap_or("?")
                    ),
                ));
            }
        };

    let check_var = |p: &str,
                     v: Var,
                     before: Option<usize>,
                     this: Option<&str>,
                     in_loop: bool,
                     out: &mut Vec<Problem>| match &v {
        Var::WorkflowParam(n) => need_param(d, p, declared, n, out),
        Var::InputParam(n) => {
            if !inputs.contains_key(n) {
                out.push(Problem::at(d, p, format!("{{{{inputs.parameters.{n}}}}} is not declared in this template's inputs.parameters")));
            }
        }
        Var::OutputParam { .. } | Var::Node { .. } => node_ref(p, &v, before, this, out),
        Var::Item => {
            if !in_loop {
                out.push(Problem::at(
                    d,
                    p,
                    "{{item}} outside a step or task with withItems or withParam",
                ));
            }
        }
        Var::Known => {}
        Var::Unknown(s) => out.push(Problem::at(
            d,
            p,
            format!("{{{{{s}}}}} is not an Argo variable"),
        )),
    };

    // The template's own strings (outside its steps/tasks).
    let mut own = t.clone();
    if let Some(o) = own.as_object_mut() {
        o.remove("steps");
        if let Some(dag) = o.get_mut("dag").and_then(Value::as_object_mut) {
            dag.remove("tasks");
        }
    }
    for_strings(&own, tat, &[], &mut |p, s| {
        for v in vars::refs(s) {
            check_var(p, v, None, None, false, out);
        }
    });

    // Steps and tasks.
    for (p, g, n) in &node_list {
        let name = n["name"].as_str();
        match called(ctx, n) {
            Err(e) => out.push(Problem::at(
                d,
                path::key(
                    p,
                    if n.get("template").is_some() {
                        "template"
                    } else {
                        "templateRef"
                    },
                ),
                e,
            )),
            Ok(None) if n.get("inline").is_none() => out.push(Problem::at(
                d,
                p.as_str(),
                format!("the {word} entry calls no template"),
            )),
            Ok(None) => {}
            Ok(Some(callee)) => {
                let want = parameters(&callee["inputs"]["parameters"]);
                let given = parameters(&n["arguments"]["parameters"]);
                for (j, a) in n["arguments"]["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let an = a["name"].as_str().unwrap_or("");
                    if !want.contains_key(an) {
                        out.push(Problem::at(
                            d,
                            path::key(
                                &path::index(&path::keys(p, "arguments.parameters"), j),
                                "name",
                            ),
                            format!(
                                "template {} has no input parameter {an:?}",
                                callee["name"].as_str().unwrap_or("?")
                            ),
                        ));
                    }
                }
                for (wn, decl) in &want {
                    if !has_value(decl) && !given.contains_key(wn) {
                        out.push(Problem::at(
                            d,
                            path::keys(p, "arguments.parameters"),
                            format!(
                                "template {} needs input parameter {wn:?}, which is not passed",
                                callee["name"].as_str().unwrap_or("?")
                            ),
                        ));
                    }
                }
            }
        }
        for (j, dep) in n["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let dep = dep.as_str().unwrap_or("");
            if !nodes.contains_key(dep) || Some(dep) == name {
                out.push(Problem::at(
                    d,
                    path::index(&path::key(p, "dependencies"), j),
                    format!("no other task named {dep:?}"),
                ));
            }
        }
        let in_loop = n.get("withItems").is_some() || n.get("withParam").is_some();
        let before = (word == "steps").then_some(*g);
        for_strings(n, p, &[], &mut |sp, s| {
            for v in vars::refs(s) {
                check_var(sp, v, before, name, in_loop, out);
            }
        });
    }

    // Containers: each runs a step binary.
    let pod_sa = sa.or(spec_sa).map(str::to_owned);
    if let (Some(sa), false) = (&pod_sa, containers(tat, t).is_empty()) {
        uses.pods.push(PodUse {
            file: d.file.clone(),
            doc: d.index,
            path: tat.to_owned(),
            service_account: sa.clone(),
            namespace: ns.map(str::to_owned),
        });
    }
    for (cp, c) in containers(tat, t) {
        let facts = check_container(d, &cp, c, bins, declared, out);
        if let Some((role, rp)) = facts.vault_role {
            uses.roles.push(RoleUse {
                file: d.file.clone(),
                doc: d.index,
                path: rp,
                role,
                service_account: pod_sa.clone(),
                namespace: ns.map(str::to_owned),
                token_audience: token_audience(ctx.spec, t, c),
            });
        }
    }
}

/// The audience of the projected ServiceAccount token a container's token file is in.
fn token_audience(spec: &Value, t: &Value, c: &Value) -> Option<String> {
    let file = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE")
        .and_then(|e| e["value"].as_str())
        .or_else(|| {
            c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find_map(|a| a.strip_prefix("--service-account-token-file="))
        })?;
    let mounts = c["volumeMounts"].as_array().into_iter().flatten().chain(
        t["containerSet"]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten(),
    );
    for m in mounts {
        let dir = m["mountPath"].as_str().unwrap_or("").trim_end_matches('/');
        let Some(rel) = file.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let volume = t["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["volumes"].as_array().into_iter().flatten())
            .find(|v| v["name"] == m["name"])?;
        return volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["serviceAccountToken"])
            .find(|s| s["path"] == rel)
            .and_then(|s| s["audience"].as_str())
            .map(str::to_owned);
    }
    None
}

/// Every container of an Argo template, with its path.
pub fn containers<'a>(tat: &str, t: &'a Value) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    for k in ["container", "script"] {
        if t[k].is_object() {
            out.push((path::key(tat, k), &t[k]));
        }
    }
    for k in ["containerSet.containers", "initContainers", "sidecars"] {
        let list = k.split('.').fold(t, |v, part| &v[part]);
        for (i, c) in list.as_array().into_iter().flatten().enumerate() {
            out.push((path::index(&path::keys(tat, k), i), c));
        }
    }
    out
}

/// Every container in an Argo Workflows document (WorkflowTemplate, CronWorkflow, ...).
pub fn doc_containers(d: &Doc) -> Vec<(String, &Value)> {
    let (at, spec) = match d.kind() {
        "CronWorkflow" => ("spec.workflowSpec", &d.value["spec"]["workflowSpec"]),
        "WorkflowTemplate" | "ClusterWorkflowTemplate" | "Workflow" => ("spec", &d.value["spec"]),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (i, t) in spec["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        out.extend(containers(&path::index(&path::key(at, "templates"), i), t));
    }
    out
}
