//! An Argo Workflows stand-in that runs the shipped templates themselves. The binaries are
//! only as correct as the YAML wiring them together (flags, output files, ServiceAccounts,
//! Vault roles), and tests that call the binaries directly never read it. So this follows a
//! WorkflowTemplate or CronWorkflow as the Argo controller does and starts each binary with
//! exactly the command, args and env in the YAML. What it does not understand it refuses, so a
//! template change cannot pass by being ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::Env;

/// `templates/` of this repository.
pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

/// A file under `templates/workflows/`, e.g. `secret-handover.yaml`.
pub fn workflow_file(name: &str) -> PathBuf {
    templates_dir().join("workflows").join(name)
}

/// A file under `templates/authority/`, e.g. `authority-bring-up.yaml` (installed in the
/// authority's own namespace).
pub fn authority_file(name: &str) -> PathBuf {
    templates_dir().join("authority").join(name)
}

/// The workflow namespace: the knob in `templates/settings/settings.yaml`.
pub fn workflow_namespace() -> String {
    let docs = load_yaml(&templates_dir().join("settings/settings.yaml")).expect("settings");
    docs[0]["data"]["workflow-namespace"]
        .as_str()
        .expect("settings: data.workflow-namespace")
        .to_owned()
}

/// The namespace `templates/authority/kustomization.yaml` installs into.
pub fn authority_namespace() -> String {
    let k = load_yaml(&templates_dir().join("authority/kustomization.yaml")).expect("authority");
    k[0]["namespace"]
        .as_str()
        .expect("authority kustomization namespace")
        .to_owned()
}

/// Every document of a (multi-document) YAML file.
pub fn load_yaml(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// What to submit: a YAML file (the document of the wanted kind is picked from it) or a
/// document already loaded (and perhaps changed in memory).
pub enum Source {
    File(PathBuf),
    Document(Value),
}

impl From<&Path> for Source {
    fn from(p: &Path) -> Self {
        Source::File(p.to_path_buf())
    }
}

impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Self {
        Source::File(p)
    }
}

impl From<Value> for Source {
    fn from(v: Value) -> Self {
        Source::Document(v)
    }
}

/// The phase of a node or of the workflow, as Argo names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Succeeded,
    Failed,
    Error,
    /// `when` was false, or `withParam` gave no items.
    Skipped,
    /// A DAG task not run because a dependency did not succeed.
    Omitted,
}

impl Phase {
    fn is_failure(self) -> bool {
        matches!(self, Phase::Failed | Phase::Error)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Steps,
    Dag,
    /// A container template: one pod per attempt.
    Pod,
    /// A step or task that did not run (`when`, empty `withParam`, failed dependency) or
    /// whose arguments could not be resolved.
    Step,
}

/// One node of the run, as `argo get` lists them.
#[derive(Debug, Clone)]
pub struct Node {
    /// Argo's node name, e.g. `secret-handover-x7k2p[1].hand-over(0)[0].write`.
    pub name: String,
    /// The step or task name (the workflow name for the root).
    pub display_name: String,
    pub template: String,
    pub kind: NodeKind,
    pub phase: Phase,
    pub message: String,
    /// One exit code per attempt (pods only).
    pub exit_codes: Vec<i32>,
    /// Of the last attempt, after substitution, with volume paths mapped to temp dirs.
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The input parameters it was called with.
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    /// Output artifacts the pod left (name to bytes), as Argo uploads them with
    /// `archive: none`: what the user's artifact repository would keep.
    pub artifacts: BTreeMap<String, Vec<u8>>,
    /// Of every attempt, in order.
    pub stdout: String,
    pub stderr: String,
    /// Resolved `synchronization.mutexes[].name`.
    pub mutexes: Vec<String>,
}

impl Node {
    fn new(name: &str, display_name: &str, template: &str, kind: NodeKind) -> Self {
        Node {
            name: name.into(),
            display_name: display_name.into(),
            template: template.into(),
            kind,
            phase: Phase::Succeeded,
            message: String::new(),
            exit_codes: Vec::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            stdout: String::new(),
            stderr: String::new(),
            mutexes: Vec::new(),
        }
    }

    /// Exit code of the last attempt.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_codes.last().copied()
    }

    /// The audit events the step printed (its stdout lines).
    pub fn audit(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.starts_with("plan: "))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    pub fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{}: no output {name}; have {:?}", self.name, self.outputs))
    }

    pub fn artifact(&self, name: &str) -> &[u8] {
        self.artifacts.get(name).unwrap_or_else(|| {
            let have: Vec<&String> = self.artifacts.keys().collect();
            panic!("{}: no output artifact {name}; have {have:?}", self.name)
        })
    }
}

/// What a submitted workflow did.
#[derive(Debug, Clone)]
pub struct WorkflowRun {
    pub name: String,
    pub uid: String,
    pub scheduled_time: Option<String>,
    /// The resolved `spec.arguments.parameters`.
    pub parameters: BTreeMap<String, String>,
    pub phase: Phase,
    pub message: String,
    /// Parents before their children, in the order they started.
    pub nodes: Vec<Node>,
}

impl WorkflowRun {
    /// Pod nodes of one template, e.g. `write-vault`.
    pub fn pods_of(&self, template: &str) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Pod && n.template == template)
            .collect()
    }

    /// The only pod node of a template.
    #[track_caller]
    pub fn pod(&self, template: &str) -> &Node {
        let pods = self.pods_of(template);
        assert_eq!(pods.len(), 1, "one {template} pod\n{}", self.summary());
        pods[0]
    }

    /// Nodes whose step or task name is `display_name`.
    pub fn nodes_named(&self, display_name: &str) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.display_name == display_name)
            .collect()
    }

    #[track_caller]
    pub fn assert_phase(&self, phase: Phase) -> &Self {
        assert_eq!(self.phase, phase, "workflow phase\n{}", self.summary());
        self
    }

    /// About the bytes Argo keeps in the Workflow object (etcd refuses more than 1.5 MiB):
    /// the WorkflowTemplate spec it stores (`status.storedWorkflowTemplateSpec`), and per
    /// node a `status.nodes` entry with its input and output parameters and the fields every
    /// node has (id, names, type, phase, times, children), as compact JSON.
    pub fn stored_size(&self, template: &Value) -> usize {
        let mut size = template["spec"].to_string().len() + 1024; // + metadata, spec, conditions
        for n in &self.nodes {
            let params = |m: &BTreeMap<String, String>| {
                m.iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
            };
            let entry = json!({
                "id": format!("{}-1234567890", self.name),
                "name": n.name,
                "displayName": n.display_name,
                "type": format!("{:?}", n.kind),
                "templateName": n.template,
                "templateScope": "local/",
                "phase": n.phase.to_string(),
                "message": n.message,
                "boundaryID": format!("{}-1234567890", self.name),
                "startedAt": "2026-11-29T03:00:00Z",
                "finishedAt": "2026-11-29T03:00:00Z",
                "progress": "1/1",
                "resourcesDuration": {"cpu": 1, "memory": 1},
                "hostNodeName": "node-1.cluster.example",
                "children": [format!("{}-1234567890", self.name)],
                "inputs": {"parameters": params(&n.inputs)},
                "outputs": {"parameters": params(&n.outputs), "exitCode": "0"},
            });
            size += entry.to_string().len() + format!("{}-1234567890", self.name).len() + 4;
        }
        size
    }

    /// One line per node, and the stderr of the pods that did not succeed.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}: {}\n", self.name, self.phase, self.message);
        for n in &self.nodes {
            s += &format!(
                "  {} [{}] {} exit={:?} outputs={:?} {}\n",
                n.name, n.template, n.phase, n.exit_codes, n.outputs, n.message
            );
            if n.kind == NodeKind::Pod && n.phase != Phase::Succeeded {
                s += &format!("    stderr: {}\n", n.stderr.trim_end());
            }
        }
        s
    }
}

/// Submits workflows against a test [`Env`], as `argo submit --from` would.
pub struct Runner<'a> {
    env: &'a Env,
    namespace: String,
}

impl<'a> Runner<'a> {
    /// Workflows run in the workflow namespace of `templates/settings/` (where the
    /// ServiceAccounts live that the Vault roles are bound to).
    pub fn new(env: &'a Env) -> Self {
        Runner {
            env,
            namespace: workflow_namespace(),
        }
    }

    /// Workflows of `templates/authority/`, run in the authority's own namespace.
    pub fn authority(env: &'a Env) -> Self {
        Runner {
            env,
            namespace: authority_namespace(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs a WorkflowTemplate's entrypoint. `arguments` override `spec.arguments.parameters`;
    /// one the template does not declare is an error, as with `argo submit -p`.
    pub async fn submit(
        &self,
        template: impl Into<Source>,
        arguments: &[(&str, &str)],
    ) -> Result<WorkflowRun> {
        let (wft, _) = pick(template.into(), "WorkflowTemplate")?;
        let name = str_at(&wft, &["metadata", "name"])?;
        self.run(&wft, name, &[], arguments, None).await
    }

    /// Runs a CronWorkflow as its scheduler would at `scheduled_time`: the referenced
    /// WorkflowTemplate with the CronWorkflow's arguments, then `arguments` on top (as
    /// `argo submit --from cronworkflow/... -p`).
    pub async fn submit_cron(
        &self,
        cron: impl Into<Source>,
        scheduled_time: &str,
        arguments: &[(&str, &str)],
    ) -> Result<WorkflowRun> {
        let (cron, siblings) = pick(cron.into(), "CronWorkflow")?;
        let (wft, cron_args) = resolve_cron(&cron, &siblings)?;
        let cron_args: Vec<(&str, &str)> = cron_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let name = str_at(&cron, &["metadata", "name"])?;
        self.run(&wft, name, &cron_args, arguments, Some(scheduled_time))
            .await
    }

    /// Names the workflow `<base_name>-xxxxx` and runs `spec.entrypoint` to its end.
    async fn run(
        &self,
        wft: &Value,
        base_name: &str,
        cron_args: &[(&str, &str)],
        arguments: &[(&str, &str)],
        scheduled: Option<&str>,
    ) -> Result<WorkflowRun> {
        let spec = wft.get("spec").context("WorkflowTemplate without spec")?;
        check_keys(spec, SPEC_KEYS, "spec")?;
        let mut parameters = workflow_parameters(spec, cron_args, arguments)?;
        // The `cluster-name` knob of templates/settings/ as an install sets it (kustomize
        // replaces the parameter's empty default): the cluster this Env stands for.
        if let Some(v) = parameters.get_mut("cluster-name").filter(|v| v.is_empty()) {
            v.clone_from(&self.env.cluster_name);
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let name = format!("{base_name}-{}", &uid.replace('-', "")[..5]);
        let globals = self.globals(spec, &name, &uid, scheduled, &parameters);
        check_workflow_mutexes(spec, &globals)?;
        let dir = tempfile::Builder::new()
            .prefix(&name)
            .tempdir_in(self.env.dir.path())?
            .keep();
        let mut exec = Exec {
            env: self.env,
            namespace: &self.namespace,
            spec: spec.clone(),
            globals,
            dir,
            nodes: Vec::new(),
        };
        // The entrypoint gets `spec.arguments`, which Argo has substituted once with the
        // globals (unlike the `workflow.parameters.*` values themselves).
        let args = parameters
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, &exec.globals)))
            .collect();
        let entry = Call {
            template: str_at(spec, &["entrypoint"])?.to_owned(),
            node: name.clone(),
            display: name.clone(),
            args,
        };
        let outcome = exec.exec_template(entry).await?;
        Ok(WorkflowRun {
            name,
            uid,
            scheduled_time: scheduled.map(str::to_owned),
            parameters,
            phase: match outcome.phase {
                Phase::Skipped | Phase::Omitted => Phase::Succeeded,
                p => p,
            },
            message: outcome.message,
            nodes: exec.nodes,
        })
    }

    /// Argo's global variables. A parameter value is taken as written: Argo does not resolve
    /// `{{...}}` inside it before substituting it into a template (see `Exec::retry_pass`).
    fn globals(
        &self,
        spec: &Value,
        name: &str,
        uid: &str,
        scheduled: Option<&str>,
        parameters: &BTreeMap<String, String>,
    ) -> Scope {
        let mut g = Scope::from([
            ("workflow.name".into(), name.into()),
            ("workflow.uid".into(), uid.into()),
            ("workflow.namespace".into(), self.namespace.clone()),
            (
                "workflow.serviceAccountName".into(),
                spec["serviceAccountName"].as_str().unwrap_or("").into(),
            ),
        ]);
        if let Some(t) = scheduled {
            g.insert("workflow.scheduledTime".into(), t.into());
        }
        for (k, v) in parameters {
            g.insert(format!("workflow.parameters.{k}"), v.clone());
        }
        g
    }
}

// --- loading -------------------------------------------------------------------------------

/// The one document of `kind` in the source, and the other documents of its file.
fn pick(source: Source, kind: &str) -> Result<(Value, Vec<Value>)> {
    let docs = match source {
        Source::File(p) => load_yaml(&p)?,
        Source::Document(d) => vec![d],
    };
    let (mut of_kind, others): (Vec<Value>, Vec<Value>) =
        docs.into_iter().partition(|d| d["kind"] == kind);
    ensure!(
        of_kind.len() == 1,
        "expected one {kind}, found {}",
        of_kind.len()
    );
    let doc = of_kind.remove(0);
    ensure!(
        doc["apiVersion"] == "argoproj.io/v1alpha1",
        "{kind}: apiVersion {} is not argoproj.io/v1alpha1",
        doc["apiVersion"]
    );
    Ok((doc, others))
}

/// A CronWorkflow's WorkflowTemplate (from the same file, else `templates/workflows/`) and the
/// arguments it passes.
fn resolve_cron(cron: &Value, siblings: &[Value]) -> Result<(Value, Vec<(String, String)>)> {
    check_keys(&cron["spec"], CRON_SPEC_KEYS, "CronWorkflow spec")?;
    let ws = cron
        .pointer("/spec/workflowSpec")
        .context("CronWorkflow without spec.workflowSpec")?;
    check_keys(ws, "workflowTemplateRef arguments", "workflowSpec")?;
    let r = ws
        .get("workflowTemplateRef")
        .context("the runner supports CronWorkflows with a workflowTemplateRef only")?;
    check_keys(r, "name", "workflowTemplateRef")?;
    let name = str_at(r, &["name"])?;
    let wft = find_template(name, siblings)?;
    let mut args = Vec::new();
    for p in array_at(ws, &["arguments", "parameters"])? {
        check_keys(p, "name value", "workflowSpec.arguments.parameters[]")?;
        let value = scalar(&p["value"]).context("workflowSpec argument without a value")?;
        args.push((str_at(p, &["name"])?.to_owned(), value));
    }
    Ok((wft, args))
}

fn find_template(name: &str, siblings: &[Value]) -> Result<Value> {
    let is_it = |d: &Value| d["kind"] == "WorkflowTemplate" && d["metadata"]["name"] == name;
    if let Some(d) = siblings.iter().find(|d| is_it(d)) {
        return Ok(d.clone());
    }
    for dir in ["workflows", "authority"] {
        for entry in sorted_files(&templates_dir().join(dir), "yaml")? {
            if let Some(d) = load_yaml(&entry.1)?.into_iter().find(is_it) {
                return Ok(d);
            }
        }
    }
    bail!("WorkflowTemplate {name} not found in templates/workflows or templates/authority")
}

/// `spec.arguments.parameters` with the defaults, then each layer of overrides, applied.
fn workflow_parameters(
    spec: &Value,
    cron_args: &[(&str, &str)],
    arguments: &[(&str, &str)],
) -> Result<BTreeMap<String, String>> {
    let declared = array_at(spec, &["arguments", "parameters"])?;
    let mut values: BTreeMap<String, Option<String>> = BTreeMap::new();
    for p in declared {
        check_keys(p, "name value enum description", "spec.arguments")?;
        values.insert(str_at(p, &["name"])?.into(), scalar(&p["value"]));
    }
    for (k, v) in cron_args.iter().chain(arguments) {
        ensure!(
            values.contains_key(*k),
            "parameter {k:?} is not declared in spec.arguments.parameters (declared: {:?})",
            values.keys().collect::<Vec<_>>()
        );
        values.insert((*k).to_owned(), Some((*v).to_owned()));
    }
    let mut out = BTreeMap::new();
    for p in declared {
        let name = str_at(p, &["name"])?;
        let value = values[name]
            .clone()
            .with_context(|| format!("parameter {name} has no value"))?;
        if let Some(allowed) = p.get("enum").and_then(Value::as_array) {
            let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
            ensure!(
                allowed.contains(&value),
                "parameter {name}: {value:?} is not in its enum {allowed:?}"
            );
        }
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

fn check_workflow_mutexes(spec: &Value, globals: &Scope) -> Result<()> {
    let sync = subst_value(spec.get("synchronization").unwrap_or(&Value::Null), globals);
    mutex_names(&sync).map(drop)
}

// --- keys the runner understands ----------------------------------------------------------

const SPEC_KEYS: &str = "entrypoint arguments templates serviceAccountName
    automountServiceAccountToken volumes synchronization activeDeadlineSeconds parallelism podGC
    ttlStrategy securityContext metrics podMetadata workflowMetadata nodeSelector tolerations
    affinity";
const CRON_SPEC_KEYS: &str = "schedules timezone concurrencyPolicy startingDeadlineSeconds
    successfulJobsHistoryLimit failedJobsHistoryLimit suspend workflowSpec workflowMetadata";
const TEMPLATE_KEYS: &str =
    "name inputs outputs steps dag container containerSet volumes retryStrategy
    serviceAccountName automountServiceAccountToken activeDeadlineSeconds synchronization
    parallelism securityContext metadata nodeSelector tolerations affinity metrics";
const CONTAINER_KEYS: &str =
    "name image imagePullPolicy command args env volumeMounts securityContext resources";
const STEP_KEYS: &str = "name template arguments withParam withItems when continueOn";
const TASK_KEYS: &str = "name template arguments withParam withItems when continueOn dependencies";

/// Refuses any key outside `allowed` (space-separated): a feature the runner would otherwise
/// silently ignore.
fn check_keys(v: &Value, allowed: &str, what: &str) -> Result<()> {
    let Some(map) = v.as_object() else {
        bail!("{what}: expected a mapping, got {v}");
    };
    for k in map.keys() {
        ensure!(
            allowed.split_whitespace().any(|a| a == k),
            "{what}: `{k}` is not supported by the e2e Argo runner"
        );
    }
    Ok(())
}

// --- substitution --------------------------------------------------------------------------

type Scope = BTreeMap<String, String>;

/// A failure Argo reports on a node (unresolved reference, bad `withParam`, missing output),
/// as opposed to a template the runner refuses to interpret.
#[derive(Debug)]
struct NodeError(String);

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NodeError {}

fn node_error(msg: String) -> anyhow::Error {
    NodeError(msg).into()
}

/// Splits node errors (`Ok(Err(message))`) from refusals (`Err`).
fn split_node_error<T>(r: Result<T>) -> Result<std::result::Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match e.downcast::<NodeError>() {
            Ok(n) => Ok(Err(n.0)),
            Err(e) => Err(e),
        },
    }
}

/// Replaces every `{{ tag }}` found in `scope`; others are left as written (Argo's
/// `allowUnresolved` passes). One pass: substituted values are not scanned again.
fn substitute(text: &str, scope: &Scope) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + len + 2;
        out.push_str(&rest[..start]);
        match scope.get(rest[start + 2..end - 2].trim()) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn subst_value(v: &Value, scope: &Scope) -> Value {
    match v {
        Value::String(s) => Value::String(substitute(s, scope)),
        Value::Array(a) => Value::Array(a.iter().map(|x| subst_value(x, scope)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), subst_value(x, scope)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` if no `{{...}}` is left in it; a leftover reference is a node error.
fn resolved(text: String, what: &str) -> Result<String> {
    let Some(start) = text.find("{{") else {
        return Ok(text);
    };
    let tag = match text[start..].find("}}") {
        Some(len) => &text[start..start + len + 2],
        None => &text[start..],
    };
    if tag[2..].trim_start().starts_with('=') {
        bail!("{what}: expression tags like {tag} are not supported by the e2e Argo runner");
    }
    Err(node_error(format!("{what}: unresolved reference {tag}")))
}

/// Every string in `v` resolved.
fn check_resolved(v: &Value, what: &str) -> Result<()> {
    match v {
        Value::String(s) => resolved(s.clone(), what).map(drop),
        Value::Array(a) => a.iter().try_for_each(|x| check_resolved(x, what)),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_resolved(x, &format!("{what}.{k}"))),
        _ => Ok(()),
    }
}

/// `{{item}}` and `{{item.field}}` for one `withParam`/`withItems` element.
fn item_scope(item: &Value) -> Scope {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut s = Scope::from([("item".to_owned(), text(item))]);
    if let Value::Object(m) = item {
        for (k, v) in m {
            s.insert(format!("item.{k}"), text(v));
        }
    }
    s
}

// --- expressions ---------------------------------------------------------------------------

/// `a || b && c` over atoms (`&&` binds tighter); every atom is evaluated, so an unsupported
/// one is refused even where it would not decide the result.
fn eval_bool(expr: &str, atom: impl Fn(&str) -> Result<bool>) -> Result<bool> {
    let mut any = false;
    for disjunct in expr.split("||") {
        let mut all = true;
        for a in disjunct.split("&&") {
            all &= atom(a.trim())?;
        }
        any |= all;
    }
    Ok(any)
}

/// A `when` after substitution: comparisons (`==`, `!=`, `>`, `<`, `>=`, `<=`, numeric when
/// both sides are numbers), `true`, `false`, joined by `&&`/`||`.
fn eval_when(expr: &str) -> Result<bool> {
    eval_bool(expr, when_atom).with_context(|| format!("when {expr:?}"))
}

fn when_atom(atom: &str) -> Result<bool> {
    match atom {
        "true" => return Ok(true),
        "false" => return Ok(false),
        _ => {}
    }
    for op in [">=", "<=", "==", "!=", ">", "<"] {
        if let Some((l, r)) = atom.split_once(op) {
            return compare(operand(l)?, op, operand(r)?);
        }
    }
    bail!("unsupported clause {atom:?} (the runner knows comparisons, true and false)")
}

fn operand(s: &str) -> Result<String> {
    let s = s.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return Ok(inner.to_owned());
        }
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "._:/-+".contains(c);
    ensure!(
        !s.is_empty() && s.chars().all(plain),
        "unsupported operand {s:?}"
    );
    Ok(s.to_owned())
}

fn compare(l: String, op: &str, r: String) -> Result<bool> {
    if let (Ok(a), Ok(b)) = (l.parse::<f64>(), r.parse::<f64>()) {
        return Ok(match op {
            ">=" => a >= b,
            "<=" => a <= b,
            "==" => a == b,
            "!=" => a != b,
            ">" => a > b,
            _ => a < b,
        });
    }
    match op {
        "==" => Ok(l == r),
        "!=" => Ok(l != r),
        _ => bail!("{l:?} {op} {r:?}: ordering needs two numbers"),
    }
}

/// `retryStrategy`: `limit` retries after the first attempt, on exit codes the `expression`
/// accepts (without one: on any failure, Argo's default `OnFailure`). Backoff is not waited.
struct Retry {
    limit: u32,
    expression: Option<String>,
}

impl Retry {
    fn parse(v: Option<&Value>) -> Result<Option<Retry>> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        check_keys(v, "limit expression backoff", "retryStrategy")?;
        let limit = scalar(&v["limit"])
            .context("retryStrategy without a limit")?
            .parse()
            .context("retryStrategy.limit")?;
        let expression = v.get("expression").map(|e| {
            e.as_str()
                .map(str::to_owned)
                .context("retryStrategy.expression")
        });
        let r = Retry {
            limit,
            expression: expression.transpose()?,
        };
        r.retries(1, Phase::Failed)?;
        Ok(Some(r))
    }

    /// `phase` is the attempt's node phase: `Error` for a pod that never ran or died under
    /// the step (evicted, deleted), as Argo's `lastRetry.status` says.
    fn retries(&self, exit_code: i32, phase: Phase) -> Result<bool> {
        match &self.expression {
            None => Ok(true),
            Some(e) => eval_bool(e, |a| retry_atom(a, exit_code, phase))
                .with_context(|| format!("retryStrategy.expression {e:?}")),
        }
    }
}

/// `asInt(lastRetry.exitCode) == N` (or `!=`) and `lastRetry.status == "Error"` (or `!=`),
/// the only retry clauses the runner knows.
fn retry_atom(atom: &str, exit_code: i32, phase: Phase) -> Result<bool> {
    let compact: String = atom.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(rest) = compact.strip_prefix("lastRetry.status") {
        let (eq, v) = match (rest.strip_prefix("=="), rest.strip_prefix("!=")) {
            (Some(v), _) => (true, v),
            (_, Some(v)) => (false, v),
            _ => bail!("unsupported clause {atom:?}"),
        };
        let v = v.trim_matches('"');
        ensure!(
            ["Error", "Failed"].contains(&v),
            "unsupported status {v:?} in {atom:?}"
        );
        return Ok((phase.to_string() == v) == eq);
    }
    let rest = compact
        .strip_prefix("asInt(lastRetry.exitCode)")
        .with_context(|| format!("unsupported clause {atom:?}"))?;
    let (eq, n) = match (rest.strip_prefix("=="), rest.strip_prefix("!=")) {
        (Some(n), _) => (true, n),
        (_, Some(n)) => (false, n),
        _ => bail!("unsupported clause {atom:?}"),
    };
    let n: i32 = n.parse().with_context(|| format!("clause {atom:?}"))?;
    Ok((exit_code == n) == eq)
}

// --- execution -----------------------------------------------------------------------------

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

struct Call {
    template: String,
    node: String,
    display: String,
    args: Vec<(String, String)>,
}

struct Outcome {
    phase: Phase,
    outputs: BTreeMap<String, String>,
    artifacts: BTreeMap<String, Vec<u8>>,
    message: String,
}

impl Outcome {
    fn new(phase: Phase, message: impl Into<String>) -> Self {
        Outcome {
            phase,
            outputs: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            message: message.into(),
        }
    }
}

struct Exec<'r> {
    env: &'r Env,
    namespace: &'r str,
    spec: Value,
    globals: Scope,
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Exec<'_> {
    fn exec_template(&mut self, call: Call) -> Boxed<'_, Result<Outcome>> {
        Box::pin(async move {
            let idx = self.nodes.len();
            let mut node = Node::new(&call.node, &call.display, &call.template, NodeKind::Step);
            node.inputs = call.args.iter().cloned().collect();
            self.nodes.push(node);
            let outcome = match split_node_error(self.run_template(&call, idx).await)? {
                Ok(o) => o,
                Err(msg) => Outcome::new(Phase::Error, msg),
            };
            let node = &mut self.nodes[idx];
            node.phase = outcome.phase;
            node.message.clone_from(&outcome.message);
            node.outputs.clone_from(&outcome.outputs);
            node.artifacts.clone_from(&outcome.artifacts);
            Ok(outcome)
        })
    }

    async fn run_template(&mut self, call: &Call, idx: usize) -> Result<Outcome> {
        let t = self.prepare(call)?;
        self.nodes[idx].mutexes = mutex_names(t.get("synchronization").unwrap_or(&Value::Null))?;
        if t.get("containerSet").is_some() {
            self.nodes[idx].kind = NodeKind::Pod;
            return self.exec_container_set(&t, idx).await;
        }
        match (t.get("steps"), t.get("dag"), t.get("container")) {
            _ if t.get("container").is_none() && t.get("retryStrategy").is_some() => {
                bail!(
                    "template {}: retryStrategy on steps/dag templates is not supported",
                    call.template
                )
            }
            (Some(_), None, None) => {
                self.nodes[idx].kind = NodeKind::Steps;
                self.exec_steps(&t, &call.node).await
            }
            (None, Some(_), None) => {
                self.nodes[idx].kind = NodeKind::Dag;
                self.exec_dag(&t, &call.node).await
            }
            (None, None, Some(_)) => {
                self.nodes[idx].kind = NodeKind::Pod;
                self.exec_container(&t, idx).await
            }
            _ => bail!(
                "template {}: exactly one of steps, dag, container is supported",
                call.template
            ),
        }
    }

    /// The template with its inputs bound, then substituted as Argo's `SubstituteParams` does:
    /// globals first, then inputs.
    fn prepare(&self, call: &Call) -> Result<Value> {
        let tmpl = array_at(&self.spec, &["templates"])?
            .iter()
            .find(|t| t["name"] == call.template.as_str())
            .with_context(|| format!("template {} not found", call.template))?;
        check_keys(tmpl, TEMPLATE_KEYS, &format!("template {}", call.template))?;
        let inputs = bind_inputs(tmpl, &call.args)?;
        let t = subst_value(tmpl, &self.globals);
        Ok(subst_value(&t, &inputs))
    }

    async fn exec_steps(&mut self, t: &Value, node: &str) -> Result<Outcome> {
        ensure_no_outputs(t)?;
        let mut scope = Scope::new();
        for (i, group) in array_at(t, &["steps"])?.iter().enumerate() {
            let group = group.as_array().context("steps: each entry is a list")?;
            let mut produced = Scope::new();
            let mut failed = None;
            for step in group {
                check_keys(step, STEP_KEYS, "step")?;
                let name = str_at(step, &["name"])?;
                let out = self
                    .exec_fan_out(step, &format!("{node}[{i}].{name}"), &scope)
                    .await?;
                if out.phase.is_failure() && !continues(step, out.phase) {
                    failed.get_or_insert(Outcome::new(
                        out.phase,
                        format!("step {name} {}: {}", out.phase, out.message),
                    ));
                }
                for (p, v) in out.outputs {
                    produced.insert(format!("steps.{name}.outputs.parameters.{p}"), v);
                }
            }
            if let Some(f) = failed {
                return Ok(f);
            }
            scope.extend(produced);
        }
        Ok(Outcome::new(Phase::Succeeded, ""))
    }

    async fn exec_dag(&mut self, t: &Value, node: &str) -> Result<Outcome> {
        ensure_no_outputs(t)?;
        check_keys(&t["dag"], "tasks", "dag")?;
        let tasks = array_at(t, &["dag", "tasks"])?;
        let order = dag_order(tasks)?;
        let mut scope = Scope::new();
        let mut done: BTreeMap<&str, bool> = BTreeMap::new();
        let mut failed = None;
        for task in order {
            let name = str_at(task, &["name"])?;
            let blocker = dependencies(task)?.into_iter().find(|d| !done[d]);
            let out = match blocker {
                Some(d) => self.record(
                    &format!("{node}.{name}"),
                    task,
                    Phase::Omitted,
                    format!("dependency {d} did not succeed"),
                )?,
                None => {
                    self.exec_fan_out(task, &format!("{node}.{name}"), &scope)
                        .await?
                }
            };
            let ok = matches!(out.phase, Phase::Succeeded | Phase::Skipped)
                || (out.phase.is_failure() && continues(task, out.phase));
            if !ok && failed.is_none() {
                failed = Some(Outcome::new(
                    if out.phase == Phase::Omitted {
                        Phase::Failed
                    } else {
                        out.phase
                    },
                    format!("task {name} {}: {}", out.phase, out.message),
                ));
            }
            for (p, v) in out.outputs {
                scope.insert(format!("tasks.{name}.outputs.parameters.{p}"), v);
            }
            done.insert(name, ok);
        }
        Ok(failed.unwrap_or_else(|| Outcome::new(Phase::Succeeded, "")))
    }

    /// A step or task, once or once per `withParam`/`withItems` element (in order). The
    /// outputs of a fanned-out step are JSON lists of the children's values.
    async fn exec_fan_out(&mut self, step: &Value, name: &str, scope: &Scope) -> Result<Outcome> {
        let items = match split_node_error(items(step, scope))? {
            Ok(items) => items,
            Err(msg) => return self.record(name, step, Phase::Error, msg),
        };
        let Some(items) = items else {
            return self.exec_one(step, name, scope.clone()).await;
        };
        if items.is_empty() {
            return self.record(name, step, Phase::Skipped, "no items");
        }
        let mut outs = Vec::new();
        for (j, item) in items.iter().enumerate() {
            let mut local = scope.clone();
            local.extend(item_scope(item));
            outs.push(self.exec_one(step, &format!("{name}({j})"), local).await?);
        }
        Ok(aggregate(outs))
    }

    async fn exec_one(&mut self, step: &Value, name: &str, scope: Scope) -> Result<Outcome> {
        let args = match split_node_error(step_call(step, &scope))? {
            Err(msg) => return self.record(name, step, Phase::Error, msg),
            Ok(None) => return self.record(name, step, Phase::Skipped, "when is false"),
            Ok(Some(args)) => args,
        };
        let call = Call {
            template: str_at(step, &["template"])?.to_owned(),
            node: name.to_owned(),
            display: str_at(step, &["name"])?.to_owned(),
            args,
        };
        self.exec_template(call).await
    }

    /// A node for a step that did not reach its template.
    fn record(
        &mut self,
        name: &str,
        step: &Value,
        phase: Phase,
        message: impl Into<String>,
    ) -> Result<Outcome> {
        let mut n = Node::new(
            name,
            str_at(step, &["name"])?,
            step["template"].as_str().unwrap_or(""),
            NodeKind::Step,
        );
        let out = Outcome::new(phase, message);
        n.phase = phase;
        n.message.clone_from(&out.message);
        self.nodes.push(n);
        Ok(out)
    }

    async fn exec_container(&mut self, t: &Value, idx: usize) -> Result<Outcome> {
        let retry = Retry::parse(t.get("retryStrategy"))?;
        let t = if retry.is_some() {
            self.retry_pass(t)
        } else {
            t.clone()
        };
        let pod = Pod::from_template(&t, &self.spec)?;
        let mut attempt = 0;
        loop {
            let dir = self.dir.join(format!("pod-{idx}-{attempt}"));
            let a = self.run_pod(&pod, &dir).await?;
            let code = a.code;
            let node = &mut self.nodes[idx];
            node.exit_codes.push(code);
            node.stdout += &a.stdout;
            node.stderr += &a.stderr;
            node.args = a.args;
            node.env = a.env;
            let again = match &retry {
                Some(r) if code != 0 && attempt < r.limit => r.retries(code, a.outcome.phase)?,
                _ => false,
            };
            if !again {
                return Ok(a.outcome);
            }
            attempt += 1;
        }
    }

    /// A containerSet: its containers run in one pod, in `dependencies` order, sharing the
    /// pod's volumes (plus the set's own volumeMounts); a failed container stops those that
    /// depend on it and fails the pod. A retry re-runs the whole pod.
    async fn exec_container_set(&mut self, t: &Value, idx: usize) -> Result<Outcome> {
        ensure!(
            t.get("container").is_none() && t.get("outputs").is_none(),
            "containerSet: no container or outputs beside it are supported"
        );
        let retry = Retry::parse(t.get("retryStrategy"))?;
        let t = if retry.is_some() {
            self.retry_pass(t)
        } else {
            t.clone()
        };
        let set = &t["containerSet"];
        check_keys(set, "containers volumeMounts", "containerSet")?;
        let shared = array_at(set, &["volumeMounts"])?.to_vec();
        let mut pods = Vec::new();
        for c in array_at(set, &["containers"])? {
            let mut c = c.clone();
            let deps = strings(&c, "dependencies")?;
            let name = str_at(&c, &["name"])?.to_owned();
            if let Some(obj) = c.as_object_mut() {
                obj.remove("dependencies");
                let mut vm = shared.clone();
                vm.extend(
                    obj.get("volumeMounts")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                obj.insert("volumeMounts".into(), Value::Array(vm));
            }
            let mut single = t.clone();
            if let Some(obj) = single.as_object_mut() {
                obj.remove("containerSet");
                obj.insert("container".into(), c);
            }
            pods.push((name, deps, Pod::from_template(&single, &self.spec)?));
        }
        let mut attempt = 0;
        loop {
            let dir = self.dir.join(format!("pod-{idx}-{attempt}"));
            let mut done: Vec<String> = Vec::new();
            let mut failed: Option<(i32, Outcome)> = None;
            let mut remaining: Vec<&(String, Vec<String>, Pod)> = pods.iter().collect();
            while failed.is_none() && !remaining.is_empty() {
                let Some(pos) = remaining
                    .iter()
                    .position(|(_, deps, _)| deps.iter().all(|d| done.contains(d)))
                else {
                    bail!("containerSet: a dependency cycle or an unknown dependency");
                };
                let (name, _, pod) = remaining.remove(pos);
                let a = self.run_pod(pod, &dir).await?;
                let node = &mut self.nodes[idx];
                node.stdout += &a.stdout;
                node.stderr += &a.stderr;
                node.args.extend(a.args);
                if a.code != 0 || a.outcome.phase.is_failure() {
                    failed = Some((a.code, a.outcome));
                } else {
                    done.push(name.clone());
                }
            }
            let (code, outcome) = failed.unwrap_or((0, Outcome::new(Phase::Succeeded, "")));
            self.nodes[idx].exit_codes.push(code);
            let again = match &retry {
                Some(r) if code != 0 && attempt < r.limit => r.retries(code, outcome.phase)?,
                _ => false,
            };
            if !again {
                return Ok(outcome);
            }
            attempt += 1;
        }
    }

    /// With a `retryStrategy`, Argo substitutes the template a second time (for `retries`,
    /// `lastRetry.*`), with the globals again. Only there does a reference written inside a
    /// parameter's value, such as a CronWorkflow's `{{workflow.scheduledTime}}`, get resolved.
    fn retry_pass(&self, t: &Value) -> Value {
        subst_value(t, &self.globals)
    }

    async fn run_pod(&self, pod: &Pod, dir: &Path) -> Result<Attempt> {
        std::fs::create_dir_all(dir)?;
        let mounts = pod.mount_dirs(dir)?;
        if let Err(msg) = self.project_volumes(pod, dir).await {
            return Ok(Attempt {
                code: -1,
                stdout: String::new(),
                stderr: String::new(),
                args: pod.args.clone(),
                env: BTreeMap::new(),
                outcome: Outcome::new(Phase::Error, msg),
            });
        }
        let args: Vec<String> = pod.args.iter().map(|a| rewrite_arg(a, &mounts)).collect();
        let env = self.pod_env(pod, dir, &mounts)?;
        let mut cmd = tokio::process::Command::new(crate::bin(&pod.binary));
        cmd.env_clear()
            .envs(&env)
            .args(&args)
            .current_dir(dir)
            .kill_on_drop(true);
        let (code, stdout, stderr, deadline) = wait(cmd, pod.deadline).await?;
        let outcome = if deadline {
            Outcome::new(Phase::Failed, "active deadline exceeded")
        } else if code != 0 {
            // Argo's wait container saves output parameters once the main container has
            // ended, whatever its exit code (cmd/argoexec/commands/wait.go: SaveParameters
            // after Wait), so a failed step's outputs reach `continueOn` successors. A file
            // the step did not write is missing here (Argo adds an error to the node).
            // Artifacts likewise (SaveArtifacts runs after Wait); a missing optional one is
            // skipped, a missing required one fails the node only if it succeeded.
            Outcome {
                outputs: pod.read_written_outputs(&mounts),
                artifacts: pod.read_written_artifacts(&mounts),
                ..Outcome::new(Phase::Failed, format!("Error (exit code {code})"))
            }
        } else {
            let read = pod
                .read_outputs(&mounts)
                .and_then(|o| Ok((o, pod.read_artifacts(&mounts)?)));
            match split_node_error(read)? {
                Ok((outputs, artifacts)) => Outcome {
                    outputs,
                    artifacts,
                    ..Outcome::new(Phase::Succeeded, "")
                },
                Err(msg) => Outcome::new(Phase::Error, msg),
            }
        };
        Ok(Attempt {
            code,
            stdout,
            stderr,
            args,
            env,
            outcome,
        })
    }

    /// Writes each Secret and ConfigMap volume's keys as files, as the kubelet does (read with
    /// the test's admin client: the kubelet, not the pod, reads them). A missing object is
    /// the pod never starting.
    async fn project_volumes(&self, pod: &Pod, dir: &Path) -> std::result::Result<(), String> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        for (_, volume, source) in &pod.mounts {
            let d = dir.join("volumes").join(volume);
            let mut mode = None;
            let files: Vec<(String, Vec<u8>)> = match source {
                VolumeSource::EmptyDir => continue,
                // The kubelet asks for a token for this pod's ServiceAccount and audience.
                VolumeSource::ServiceAccountToken { audience, path } => vec![(
                    path.clone(),
                    self.env
                        .kube
                        .issue_token_for(self.namespace, &pod.service_account, audience)
                        .into_bytes(),
                )],
                VolumeSource::Secret {
                    name,
                    mode: m,
                    optional,
                } => {
                    mode = Some(*m);
                    let api: kube::Api<Secret> =
                        kube::Api::namespaced(self.env.client.clone(), self.namespace);
                    let s = match api.get_opt(name).await.map_err(|e| e.to_string())? {
                        Some(s) => s,
                        None if *optional => continue,
                        None => return Err(format!("volume {volume}: secret {name:?} not found")),
                    };
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect()
                }
                VolumeSource::ConfigMap { name, optional } => {
                    let api: kube::Api<ConfigMap> =
                        kube::Api::namespaced(self.env.client.clone(), self.namespace);
                    let c = match api.get_opt(name).await.map_err(|e| e.to_string())? {
                        Some(c) => c,
                        None if *optional => continue,
                        None => {
                            return Err(format!("volume {volume}: configmap {name:?} not found"))
                        }
                    };
                    c.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect()
                }
            };
            for (k, v) in files {
                let file = d.join(k);
                std::fs::write(&file, v).map_err(|e| e.to_string())?;
                if let Some(m) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The YAML's env, plus what a pod gets without it being written there: the cluster
    /// connection (here a kubeconfig, where a pod has in-cluster config) and its
    /// ServiceAccount token (here a file named by the env fallback of
    /// `--service-account-token-file`, where a pod has it at the default path).
    fn pod_env(
        &self,
        pod: &Pod,
        dir: &Path,
        mounts: &[(String, PathBuf)],
    ) -> Result<BTreeMap<String, String>> {
        // The kubeconfig's bearer token names the ServiceAccount, so the Kubernetes API's
        // records attribute each request to the identity a pod would have.
        let kubeconfig = dir.join("kubeconfig");
        self.env.kube.write_kubeconfig_as(
            &kubeconfig,
            "default",
            &service_account_user(self.namespace, &pod.service_account),
        )?;
        let mut env = BTreeMap::from([("KUBECONFIG".to_owned(), kubeconfig.display().to_string())]);
        if pod.automount_token {
            let token = dir.join("serviceaccount-token");
            std::fs::write(
                &token,
                self.env
                    .kube
                    .issue_service_account_token(self.namespace, &pod.service_account),
            )?;
            env.insert(
                "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE".into(),
                token.display().to_string(),
            );
        }
        // A path in an env value names a file in a mounted volume, as args do.
        env.extend(
            pod.env
                .iter()
                .map(|(k, v)| (k.clone(), rewrite_path(v, mounts))),
        );
        // An empty VAULT_CACERT means the roots built into the image; the test Vault's CA
        // stands in for them (Vault is on TLS, its CA is no public one).
        if env.get("VAULT_CACERT").is_none_or(String::is_empty) {
            let ca = dir.join("vault-ca.pem");
            std::fs::write(&ca, &crate::vault_pki().ca_pem)?;
            env.insert("VAULT_CACERT".into(), ca.display().to_string());
        }
        Ok(env)
    }
}

/// The Kubernetes user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// Runs the process to its end, or kills it at the deadline (`activeDeadlineSeconds`).
async fn wait(
    mut cmd: tokio::process::Command,
    deadline: Option<Duration>,
) -> Result<(i32, String, String, bool)> {
    let run = cmd.output();
    let out = match deadline {
        None => run.await?,
        Some(d) => match tokio::time::timeout(d, run).await {
            Ok(out) => out?,
            Err(_) => return Ok((-1, String::new(), String::new(), true)),
        },
    };
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        false,
    ))
}

struct Attempt {
    code: i32,
    stdout: String,
    stderr: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    outcome: Outcome,
}

/// Binds a template's `inputs.parameters` from the call's arguments, else `value`/`default`.
fn bind_inputs(tmpl: &Value, args: &[(String, String)]) -> Result<Scope> {
    let Some(inputs) = tmpl.get("inputs") else {
        return Ok(Scope::new());
    };
    check_keys(inputs, "parameters artifacts", "inputs")?;
    let mut scope = Scope::new();
    for p in array_at(inputs, &["parameters"])? {
        check_keys(
            p,
            "name value default enum description",
            "inputs.parameters[]",
        )?;
        let name = str_at(p, &["name"])?;
        let value = args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| scalar(&p["value"]))
            .or_else(|| scalar(&p["default"]))
            .ok_or_else(|| node_error(format!("inputs.parameters.{name} was not supplied")))?;
        scope.insert(format!("inputs.parameters.{name}"), value);
    }
    Ok(scope)
}

/// A steps/DAG template's own outputs would need `valueFrom.parameter`: not supported.
fn ensure_no_outputs(t: &Value) -> Result<()> {
    ensure!(
        t.get("outputs").is_none_or(|o| o == &json!({})),
        "template {}: outputs of steps/dag templates are not supported",
        t["name"]
    );
    Ok(())
}

/// `synchronization.mutexes[].name`, which must resolve (a mutex per Secret only works if its
/// name does).
fn mutex_names(sync: &Value) -> Result<Vec<String>> {
    if sync.is_null() {
        return Ok(Vec::new());
    }
    check_keys(sync, "mutexes", "synchronization")?;
    let mut names = Vec::new();
    for m in array_at(sync, &["mutexes"])? {
        check_keys(m, "name namespace", "synchronization.mutexes[]")?;
        let name = str_at(m, &["name"])?.to_owned();
        names.push(resolved(name, "synchronization.mutexes[].name")?);
    }
    Ok(names)
}

/// The elements of `withParam` (a JSON list after substitution) or `withItems`.
fn items(step: &Value, scope: &Scope) -> Result<Option<Vec<Value>>> {
    if let Some(p) = step.get("withParam") {
        let text = p.as_str().context("withParam must be a string")?;
        let text = resolved(substitute(text, scope), "withParam")?;
        let list: Value = serde_json::from_str(&text)
            .map_err(|e| node_error(format!("withParam {text:?} is not JSON: {e}")))?;
        let Value::Array(items) = list else {
            return Err(node_error(format!("withParam {text:?} is not a JSON list")));
        };
        return Ok(Some(items));
    }
    if let Some(list) = step.get("withItems") {
        let list = subst_value(list, scope);
        check_resolved(&list, "withItems")?;
        return Ok(Some(list.as_array().context("withItems: a list")?.clone()));
    }
    Ok(None)
}

/// The arguments of a step or task, or `None` when its `when` is false.
fn step_call(step: &Value, scope: &Scope) -> Result<Option<Vec<(String, String)>>> {
    if let Some(w) = step.get("when") {
        let w = w.as_str().context("when must be a string")?;
        if !eval_when(&resolved(substitute(w, scope), "when")?)? {
            return Ok(None);
        }
    }
    let Some(arguments) = step.get("arguments") else {
        return Ok(Some(Vec::new()));
    };
    check_keys(arguments, "parameters", "arguments")?;
    let mut args = Vec::new();
    for p in array_at(arguments, &["parameters"])? {
        check_keys(p, "name value", "arguments.parameters[]")?;
        let name = str_at(p, &["name"])?;
        let value = scalar(&p["value"]).with_context(|| format!("argument {name}: no value"))?;
        let what = format!("arguments.parameters.{name}");
        args.push((name.to_owned(), resolved(substitute(&value, scope), &what)?));
    }
    Ok(Some(args))
}

fn continues(step: &Value, phase: Phase) -> bool {
    let key = if phase == Phase::Error {
        "error"
    } else {
        "failed"
    };
    step.pointer(&format!("/continueOn/{key}")) == Some(&Value::Bool(true))
}

fn aggregate(outs: Vec<Outcome>) -> Outcome {
    if let Some(f) = outs.iter().find(|o| o.phase.is_failure()) {
        return Outcome::new(f.phase, f.message.clone());
    }
    if outs.iter().all(|o| o.phase == Phase::Skipped) {
        return Outcome::new(Phase::Skipped, "every item skipped");
    }
    let names: BTreeSet<&String> = outs.iter().flat_map(|o| o.outputs.keys()).collect();
    let mut outputs = BTreeMap::new();
    for n in names {
        let values: Option<Vec<&String>> = outs.iter().map(|o| o.outputs.get(n)).collect();
        if let Some(v) = values {
            outputs.insert(n.clone(), json!(v).to_string());
        }
    }
    Outcome {
        outputs,
        ..Outcome::new(Phase::Succeeded, "")
    }
}

fn dependencies(task: &Value) -> Result<Vec<&str>> {
    ensure!(
        task.get("depends").is_none(),
        "dag: `depends` is not supported (use dependencies)"
    );
    array_at(task, &["dependencies"])?
        .iter()
        .map(|d| d.as_str().context("dependencies: names"))
        .collect()
}

/// Tasks in an order where each comes after its dependencies (YAML order among ready ones).
fn dag_order(tasks: &[Value]) -> Result<Vec<&Value>> {
    let mut names = BTreeSet::new();
    for t in tasks {
        check_keys(t, TASK_KEYS, "dag task")?;
        ensure!(names.insert(str_at(t, &["name"])?), "dag: duplicate task");
    }
    let mut order: Vec<&Value> = Vec::new();
    let mut placed = BTreeSet::new();
    while order.len() < tasks.len() {
        let mut progressed = false;
        for t in tasks {
            let name = str_at(t, &["name"])?;
            let deps = dependencies(t)?;
            for d in &deps {
                ensure!(names.contains(d), "dag task {name}: unknown dependency {d}");
            }
            if !placed.contains(name) && deps.iter().all(|d| placed.contains(d)) {
                placed.insert(name);
                order.push(t);
                progressed = true;
            }
        }
        ensure!(progressed, "dag: dependency cycle");
    }
    Ok(order)
}

// --- pods ----------------------------------------------------------------------------------

/// A container template after substitution, checked and ready to start as a process.
struct Pod {
    binary: String,
    /// `command[1..]` then `args`, as written.
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// (mountPath, volume name, source)
    mounts: Vec<(String, String, VolumeSource)>,
    /// (path, raw data)
    artifacts: Vec<(String, String)>,
    /// (name, path, default)
    outputs: Vec<(String, String, Option<String>)>,
    /// (name, path, optional)
    output_artifacts: Vec<(String, String, bool)>,
    service_account: String,
    automount_token: bool,
    deadline: Option<Duration>,
}

impl Pod {
    fn from_template(t: &Value, spec: &Value) -> Result<Pod> {
        let c = &t["container"];
        check_keys(c, CONTAINER_KEYS, "container")?;
        let command = strings(c, "command")?;
        let path = command.first().context("container.command is required")?;
        let binary = path
            .strip_prefix('/')
            .with_context(|| format!("command {path}: expected /<binary>"))?
            .to_owned();
        check_image(str_at(c, &["image"])?, &binary)?;
        let mut args: Vec<String> = command[1..].to_vec();
        args.extend(strings(c, "args")?);
        for a in &args {
            resolved(a.clone(), "container.args")?;
        }
        let inherited = |k: &str| t.get(k).or(spec.get(k));
        Ok(Pod {
            binary,
            args,
            env: container_env(c)?,
            mounts: mounts(c, t, spec)?,
            artifacts: artifacts(t)?,
            outputs: output_params(t)?,
            output_artifacts: output_artifacts(t)?,
            service_account: inherited("serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            automount_token: inherited("automountServiceAccountToken") != Some(&json!(false)),
            deadline: t
                .get("activeDeadlineSeconds")
                .and_then(scalar)
                .map(|s| s.parse().map(Duration::from_secs))
                .transpose()
                .context("activeDeadlineSeconds")?,
        })
    }

    /// A fresh directory per volume (an emptyDir lives as long as its pod), the mount paths
    /// mapped to them, and each input artifact written (on its volume, or mounted by itself as
    /// Argo does when its path is on none). Longest path first.
    fn mount_dirs(&self, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let mut map = Vec::new();
        for (mount_path, volume, _) in &self.mounts {
            let d = dir.join("volumes").join(volume);
            std::fs::create_dir_all(&d)?;
            map.push((mount_path.trim_end_matches('/').to_owned(), d));
        }
        map.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (i, (path, data)) in self.artifacts.iter().enumerate() {
            let mapped = PathBuf::from(rewrite_path(path, &map));
            let file = if mapped.as_os_str() == path.as_str() {
                let f = dir.join(format!("artifact-{i}")).join(
                    Path::new(path)
                        .file_name()
                        .context("artifact path without a file name")?,
                );
                map.insert(0, (path.clone(), f.clone()));
                f
            } else {
                mapped
            };
            std::fs::create_dir_all(file.parent().context("artifact dir")?)?;
            std::fs::write(&file, data)?;
        }
        Ok(map)
    }

    /// Output parameters from their files, after the process exited.
    /// The output parameters whose files (or defaults) exist: a failed pod's outputs.
    fn read_written_outputs(&self, map: &[(String, PathBuf)]) -> BTreeMap<String, String> {
        self.outputs
            .iter()
            .filter_map(|(name, path, default)| {
                let file = rewrite_path(path, map);
                let value = std::fs::read_to_string(file)
                    .ok()
                    .or_else(|| default.clone())?;
                Some((name.clone(), value))
            })
            .collect()
    }

    /// The output artifacts whose files exist: a failed pod's artifacts.
    fn read_written_artifacts(&self, map: &[(String, PathBuf)]) -> BTreeMap<String, Vec<u8>> {
        self.output_artifacts
            .iter()
            .filter_map(|(name, path, _)| {
                let data = std::fs::read(rewrite_path(path, map)).ok()?;
                Some((name.clone(), data))
            })
            .collect()
    }

    /// Output artifacts from their files; a required one that is missing is a node error,
    /// as Argo's "failed to save outputs".
    fn read_artifacts(&self, map: &[(String, PathBuf)]) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for (name, path, optional) in &self.output_artifacts {
            let file = rewrite_path(path, map);
            ensure!(
                &file != path,
                "output artifact {name}: {path} is on no volume; the runner reads volumes only"
            );
            match std::fs::read(&file) {
                Ok(data) => {
                    out.insert(name.clone(), data);
                }
                Err(_) if *optional => {}
                Err(e) => {
                    return Err(node_error(format!(
                        "output artifact {name}: cannot read {path}: {e}"
                    )))
                }
            }
        }
        Ok(out)
    }

    fn read_outputs(&self, map: &[(String, PathBuf)]) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (name, path, default) in &self.outputs {
            let file = rewrite_path(path, map);
            ensure!(
                &file != path,
                "output {name}: {path} is on no volume; the runner reads volumes only"
            );
            let value = match (std::fs::read_to_string(&file), default) {
                (Ok(v), _) => v,
                (Err(_), Some(d)) => d.clone(),
                (Err(e), None) => {
                    return Err(node_error(format!(
                        "output parameter {name}: cannot read {path}: {e}"
                    )))
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

/// Each step image holds only its own binary (`ghcr.io/secops/<step>:<tag>`), so a command
/// naming another binary would not start.
fn check_image(image: &str, binary: &str) -> Result<()> {
    let repo = image.rsplit('/').next().unwrap_or(image);
    let repo = repo.split(['@', ':']).next().unwrap_or(repo);
    if repo != binary {
        return Err(node_error(format!(
            "image {image} has no /{binary}: each step image holds only its own binary"
        )));
    }
    Ok(())
}

fn container_env(c: &Value) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for e in array_at(c, &["env"])? {
        check_keys(e, "name value", "container.env[]")?;
        let name = str_at(e, &["name"])?;
        let value = scalar(&e["value"]).unwrap_or_default();
        env.push((name.to_owned(), resolved(value, &format!("env {name}"))?));
    }
    Ok(env)
}

/// What a volume holds: an emptyDir, or the keys of a Secret or ConfigMap in the workflow
/// namespace (as the kubelet projects them: one file per key).
#[derive(Debug, Clone, PartialEq)]
enum VolumeSource {
    EmptyDir,
    /// The Secret's name, the files' mode (`defaultMode`), and `optional` (as for ConfigMaps).
    Secret {
        name: String,
        mode: u32,
        optional: bool,
    },
    /// `optional`: a missing ConfigMap mounts as an empty directory instead of keeping the
    /// pod from starting.
    ConfigMap {
        name: String,
        optional: bool,
    },
    /// A projected ServiceAccount token for `audience`, in the file `path`.
    ServiceAccountToken {
        audience: String,
        path: String,
    },
}

fn mounts(c: &Value, t: &Value, spec: &Value) -> Result<Vec<(String, String, VolumeSource)>> {
    let volumes: Vec<&Value> = array_at(t, &["volumes"])?
        .iter()
        .chain(array_at(spec, &["volumes"])?)
        .collect();
    let mut out = Vec::new();
    for m in array_at(c, &["volumeMounts"])? {
        check_keys(m, "name mountPath readOnly", "volumeMounts[]")?;
        let name = str_at(m, &["name"])?;
        let volume = volumes
            .iter()
            .find(|v| v["name"] == name)
            .ok_or_else(|| node_error(format!("volumeMount {name}: no such volume")))?;
        check_keys(
            volume,
            "name emptyDir secret configMap projected",
            "volumes[] (emptyDir, secret, configMap, projected)",
        )?;
        let source = if volume.get("emptyDir").is_some() {
            VolumeSource::EmptyDir
        } else if let Some(sv) = volume.get("secret") {
            check_keys(sv, "secretName defaultMode optional", "volumes[].secret")?;
            let mode = match sv.get("defaultMode") {
                None => 0o644,
                Some(m) => m
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .context("volumes[].secret.defaultMode: an integer")?,
            };
            VolumeSource::Secret {
                name: str_at(sv, &["secretName"])?.to_owned(),
                mode,
                optional: sv["optional"] == Value::Bool(true),
            }
        } else if let Some(cm) = volume.get("configMap") {
            check_keys(cm, "name optional", "volumes[].configMap")?;
            VolumeSource::ConfigMap {
                name: str_at(cm, &["name"])?.to_owned(),
                optional: cm["optional"] == Value::Bool(true),
            }
        } else if let Some(p) = volume.get("projected") {
            check_keys(p, "sources", "volumes[].projected")?;
            let sources = array_at(p, &["sources"])?;
            ensure!(
                sources.len() == 1,
                "volume {name}: one projected source (a serviceAccountToken) is supported"
            );
            let t = &sources[0]["serviceAccountToken"];
            check_keys(
                &sources[0],
                "serviceAccountToken",
                "volumes[].projected.sources[]",
            )?;
            check_keys(
                t,
                "audience expirationSeconds path",
                "volumes[].projected.sources[].serviceAccountToken",
            )?;
            VolumeSource::ServiceAccountToken {
                audience: str_at(t, &["audience"])?.to_owned(),
                path: str_at(t, &["path"])?.to_owned(),
            }
        } else {
            bail!("volume {name}: emptyDir, secret, configMap or projected only")
        };
        out.push((
            str_at(m, &["mountPath"])?.to_owned(),
            name.to_owned(),
            source,
        ));
    }
    Ok(out)
}

fn artifacts(t: &Value) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for a in array_at(t, &["inputs", "artifacts"])? {
        check_keys(a, "name path raw", "inputs.artifacts[] (raw only)")?;
        check_keys(&a["raw"], "data", "inputs.artifacts[].raw")?;
        let what = format!("inputs.artifacts.{}", str_at(a, &["name"])?);
        let data = scalar(&a["raw"]["data"]).with_context(|| format!("{what}: raw.data"))?;
        out.push((
            resolved(str_at(a, &["path"])?.to_owned(), &what)?,
            resolved(data, &what)?,
        ));
    }
    Ok(out)
}

fn output_params(t: &Value) -> Result<Vec<(String, String, Option<String>)>> {
    let Some(outputs) = t.get("outputs") else {
        return Ok(Vec::new());
    };
    check_keys(outputs, "parameters artifacts", "outputs")?;
    let mut out = Vec::new();
    for p in array_at(outputs, &["parameters"])? {
        check_keys(p, "name valueFrom description", "outputs.parameters[]")?;
        let vf = &p["valueFrom"];
        check_keys(vf, "path default", "outputs.parameters[].valueFrom")?;
        let name = str_at(p, &["name"])?;
        let path = resolved(str_at(vf, &["path"])?.to_owned(), "valueFrom.path")?;
        out.push((name.to_owned(), path, scalar(&vf["default"])));
    }
    Ok(out)
}

/// `outputs.artifacts[]` kept as plain files (`archive: none`): the runner hands their bytes
/// to the test as the artifact repository would keep them.
fn output_artifacts(t: &Value) -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for a in array_at(t, &["outputs", "artifacts"])? {
        check_keys(a, "name path optional archive", "outputs.artifacts[]")?;
        let name = str_at(a, &["name"])?;
        let what = format!("outputs.artifacts.{name}");
        ensure!(
            a["archive"] == json!({"none": {}}),
            "{what}: only `archive: {{none: {{}}}}` is supported (the step writes one file)"
        );
        let optional = match &a["optional"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            other => bail!("{what}.optional: expected a boolean, got {other}"),
        };
        out.push((
            name.to_owned(),
            resolved(str_at(a, &["path"])?.to_owned(), &what)?,
            optional,
        ));
    }
    Ok(out)
}

/// `--flag=/mount/x` or `/mount/x` with the mount path replaced by its directory.
fn rewrite_arg(arg: &str, map: &[(String, PathBuf)]) -> String {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') => {
            format!("{flag}={}", rewrite_path(value, map))
        }
        _ => rewrite_path(arg, map),
    }
}

fn rewrite_path(path: &str, map: &[(String, PathBuf)]) -> String {
    for (from, to) in map {
        if let Some(rest) = path.strip_prefix(from.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{}{rest}", to.display());
            }
        }
    }
    path.to_owned()
}

// --- small JSON helpers --------------------------------------------------------------------

/// A YAML scalar as Argo's `AnyString` reads it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Result<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .with_context(|| format!("missing string {}", path.join(".")))
}

/// The list at `path`, empty when absent.
fn array_at<'v>(v: &'v Value, path: &[&str]) -> Result<&'v [Value]> {
    match path.iter().try_fold(v, |v, k| v.get(k)) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => bail!("{}: expected a list, got {other}", path.join(".")),
    }
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>> {
    array_at(v, &[key])?
        .iter()
        .map(|x| scalar(x).with_context(|| format!("{key}: scalars only")))
        .collect()
}

fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == ext) {
            let stem = p.file_stem().context("file stem")?.to_string_lossy().into();
            files.push((stem, p));
        }
    }
    files.sort();
    Ok(files)
}

// --- Vault configuration from templates/vault ----------------------------------------------

/// Installs `templates/vault/` into OpenBao as docs/install.md's steps do (`Env` has
/// already; a re-install changes nothing).
pub async fn install_vault_config(env: &Env) -> Result<()> {
    crate::vault::install_config(&env.vault.bao, &crate::vault::templates_vault_dir()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_one_pass_and_leaves_unknown_tags() {
        let scope = Scope::from([
            ("a".to_owned(), "{{b}}".to_owned()),
            ("b".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(substitute("{{ a }}-{{b}}-{{c}}", &scope), "{{b}}-x-{{c}}");
        let err = resolved(
            "--v={{steps.w.outputs.parameters.vault-verison}}".into(),
            "arg",
        )
        .unwrap_err();
        assert!(err.is::<NodeError>());
        assert!(resolved("{{=sprig.trim(x)}}".into(), "arg").is_err_and(|e| !e.is::<NodeError>()));
    }

    #[test]
    fn when_compares_numbers_and_strings_and_refuses_the_rest() {
        assert!(!eval_when("0 > 0").unwrap());
        assert!(eval_when("2 > 10 || a == a && 3 >= 3").unwrap());
        assert!(eval_when("'x y' != 'x'").unwrap());
        assert!(eval_when("abc > abd").is_err());
        assert!(eval_when("{{x}} > 0").is_err());
        assert!(eval_when("len(x) > 0").is_err());
    }

    #[test]
    fn retry_expression_knows_exit_code_clauses_only() {
        let r = Retry::parse(Some(&json!({
            "limit": "4",
            "expression": "asInt(lastRetry.exitCode) == 4 || asInt(lastRetry.exitCode) == 5",
        })))
        .unwrap()
        .unwrap();
        assert_eq!(r.limit, 4);
        assert!(r.retries(4, Phase::Failed).unwrap() && r.retries(5, Phase::Failed).unwrap());
        assert!(!r.retries(2, Phase::Failed).unwrap());
        let status = json!({"limit": 1, "expression": "lastRetry.status == \"Error\" && asInt(lastRetry.exitCode) != 2"});
        let status = Retry::parse(Some(&status)).unwrap().unwrap();
        assert!(status.retries(-1, Phase::Error).unwrap());
        assert!(!status.retries(2, Phase::Error).unwrap());
        assert!(!status.retries(1, Phase::Failed).unwrap());
        let other = json!({"limit": 1, "expression": "lastRetry.duration > 1"});
        assert!(Retry::parse(Some(&other)).is_err());
        let policy = json!({"limit": 1, "retryPolicy": "Always"});
        assert!(Retry::parse(Some(&policy)).is_err());
    }

    #[test]
    fn volume_paths_are_rewritten_as_prefixes_only() {
        let map = vec![("/outputs".to_owned(), PathBuf::from("/tmp/p/outputs"))];
        assert_eq!(
            rewrite_arg("--outputs-dir=/outputs", &map),
            "--outputs-dir=/tmp/p/outputs"
        );
        assert_eq!(rewrite_arg("/outputs/count", &map), "/tmp/p/outputs/count");
        assert_eq!(rewrite_arg("--x=/outputs2", &map), "--x=/outputs2");
        assert_eq!(rewrite_arg("--x=a/outputs", &map), "--x=a/outputs");
    }

    #[test]
    fn items_render_like_argo() {
        let s = item_scope(&json!({"name": "db", "n": 1, "o": {"a": 1}}));
        assert_eq!(s["item"], r#"{"n":1,"name":"db","o":{"a":1}}"#);
        assert_eq!(s["item.name"], "db");
        assert_eq!(s["item.n"], "1");
        assert_eq!(item_scope(&json!("x"))["item"], "x");
    }
}
