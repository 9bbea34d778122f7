//! The Argo Events trigger: the Sensor's dependencies name existing event sources, the
//! Workflow it submits is valid and references an existing WorkflowTemplate with declared
//! arguments, and no trigger parameter passes on the event body. A resource event carries the
//! whole object, Secret `data` included (argo-events `pkg/eventsources/sources/resource`), so
//! only `body.metadata.*` may leave the Sensor.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::load::{Doc, Templates};
use crate::schema::Schemas;
use crate::xref::{check_arguments_against, Index};
use crate::{path, strict, Problem};

const ARGO: &str = "argoproj.io/v1alpha1";

/// Fields of an EventSource spec that are not event-source types.
const NOT_SOURCES: [&str; 4] = ["template", "service", "eventBusName", "replicas"];

pub fn check(t: &Templates, idx: &Index, schemas: &Schemas, out: &mut Vec<Problem>) {
    for d in &t.docs {
        match (d.api_version(), d.kind()) {
            (ARGO, "EventSource") => service_account(d, idx, out),
            (ARGO, "Sensor") => {
                service_account(d, idx, out);
                check_sensor(d, idx, schemas, out);
            }
            _ => {}
        }
    }
}

fn service_account(d: &Doc, idx: &Index, out: &mut Vec<Problem>) {
    if let Some(sa) = d.value["spec"]["template"]["serviceAccountName"].as_str() {
        let ns = idx.namespace(d);
        if !idx.service_account(ns, sa) {
            out.push(Problem::at(
                d,
                "spec.template.serviceAccountName",
                format!("no ServiceAccount {sa:?} in templates/"),
            ));
        }
    }
}

/// Event names an EventSource defines: the keys under each source type.
fn event_names(es: &Doc) -> Vec<&str> {
    es.value["spec"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !NOT_SOURCES.contains(&k.as_str()))
        .filter_map(|(_, v)| v.as_object())
        .flat_map(|m| m.keys().map(String::as_str))
        .collect()
}

fn check_sensor(d: &Doc, idx: &Index, schemas: &Schemas, out: &mut Vec<Problem>) {
    let spec = &d.value["spec"];
    let mut deps = BTreeMap::new();
    for (i, dep) in spec["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = path::index("spec.dependencies", i);
        deps.insert(dep["name"].as_str().unwrap_or(""), ());
        let es_name = dep["eventSourceName"].as_str().unwrap_or("");
        let event = dep["eventName"].as_str().unwrap_or("");
        match idx.event_sources.get(es_name) {
            None => out.push(Problem::at(
                d,
                path::key(&p, "eventSourceName"),
                format!("no EventSource {es_name:?} in templates/"),
            )),
            Some(es) if !event_names(es).contains(&event) => out.push(Problem::at(
                d,
                path::key(&p, "eventName"),
                format!(
                    "EventSource {es_name} defines no event {event:?} (it has {:?})",
                    event_names(es)
                ),
            )),
            Some(_) => {}
        }
    }

    for (i, trig) in spec["triggers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let tp = path::keys(&path::index("spec.triggers", i), "template");
        for kind in ["argoWorkflow", "k8s"] {
            let trigger = &trig["template"][kind];
            if !trigger.is_object() {
                continue;
            }
            let kp = path::key(&tp, kind);
            let rp = path::keys(&kp, "source.resource");
            let resource = &trigger["source"]["resource"];
            let mut args = &Value::Null;
            if resource["kind"] == "Workflow" && resource["apiVersion"] == ARGO {
                schemas.validate_value(d, &rp, resource, out);
                strict::check_metadata_at(d, &rp, resource, true, out);
                args = &resource["spec"]["arguments"]["parameters"];
                check_workflow_ref(d, &rp, resource, idx, out);
            }
            for (j, param) in trigger["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let pp = path::index(&path::key(&kp, "parameters"), j);
                let src = &param["src"];
                let dep = src["dependencyName"].as_str().unwrap_or("");
                if !deps.contains_key(dep) {
                    out.push(Problem::at(
                        d,
                        path::keys(&pp, "src.dependencyName"),
                        format!("no dependency named {dep:?}"),
                    ));
                }
                if let Some(msg) = leaks_body(src) {
                    out.push(Problem::at(d, path::key(&pp, "src"), msg));
                }
                check_dest(
                    d,
                    &path::key(&pp, "dest"),
                    param["dest"].as_str().unwrap_or(""),
                    args,
                    out,
                );
            }
        }
    }
}

fn check_workflow_ref(d: &Doc, rp: &str, wf: &Value, idx: &Index, out: &mut Vec<Problem>) {
    let r = &wf["spec"]["workflowTemplateRef"];
    if !r.is_object() {
        return;
    }
    let name = r["name"].as_str().unwrap_or("");
    let cluster = r["clusterScope"].as_bool().unwrap_or(false);
    match idx.workflow_template(name, cluster) {
        None => out.push(Problem::at(
            d,
            path::keys(rp, "spec.workflowTemplateRef.name"),
            format!(
                "no {} named {name:?} in templates/",
                if cluster {
                    "ClusterWorkflowTemplate"
                } else {
                    "WorkflowTemplate"
                }
            ),
        )),
        Some(target) => check_arguments_against(
            d,
            &path::keys(rp, "spec.arguments.parameters"),
            &wf["spec"]["arguments"]["parameters"],
            target,
            out,
        ),
    }
}

/// `spec.arguments.parameters.N.value` (or `.name`) points at an argument the Workflow has.
fn check_dest(d: &Doc, at: &str, dest: &str, args: &Value, out: &mut Vec<Problem>) {
    let Some(rest) = dest.strip_prefix("spec.arguments.parameters.") else {
        return;
    };
    let len = args.as_array().map_or(0, Vec::len);
    match rest.split_once('.') {
        Some((n, "value" | "name")) => match n.parse::<usize>() {
            Ok(n) if n < len => {}
            _ => out.push(Problem::at(
                d,
                at,
                format!(
                    "{dest:?} points at argument {n}, but the Workflow declares {len} argument(s)"
                ),
            )),
        },
        _ => out.push(Problem::at(
            d,
            at,
            format!("{dest:?} is not spec.arguments.parameters.<index>.value"),
        )),
    }
}

/// Why a trigger parameter source would pass on (part of) the event body, if it would.
pub fn leaks_body(src: &Value) -> Option<String> {
    let s = |k: &str| src[k].as_str().filter(|v| !v.is_empty());
    if let Some(key) = s("dataKey") {
        let plain = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        let ok = if key == "body" || key.starts_with("body.") {
            plain
                && key
                    .strip_prefix("body.metadata.")
                    .is_some_and(|r| !r.is_empty())
                && !key.starts_with("body.metadata.annotations")
                && !key.starts_with("body.metadata.managedFields")
        } else {
            plain && !key.contains('.')
        };
        if !ok {
            return Some(format!(
                "dataKey {key:?} passes on more than a metadata field of the event body, which \
                 carries the whole Secret (data and last-applied annotation included): use \
                 body.metadata.name or body.metadata.namespace"
            ));
        }
    }
    if let Some(tmpl) = s("dataTemplate") {
        let whole = tmpl.match_indices(".Input").any(|(i, _)| {
            !tmpl[i + ".Input".len()..].starts_with(".body.metadata.")
                || tmpl[i..].starts_with(".Input.body.metadata.annotations")
        });
        if whole {
            return Some(format!(
                "dataTemplate {tmpl:?} reads more of the event than .Input.body.metadata.<field>"
            ));
        }
    }
    let any = [
        "dataKey",
        "dataTemplate",
        "value",
        "contextKey",
        "contextTemplate",
    ]
    .iter()
    .any(|k| src.get(*k).is_some());
    if !any {
        return Some("a parameter without dataKey, dataTemplate or value passes on the whole event, Secret data included".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_metadata_fields_leave_the_sensor() {
        for ok in ["body.metadata.name", "body.metadata.namespace", "type"] {
            assert_eq!(leaks_body(&json!({"dataKey": ok})), None, "{ok}");
        }
        for bad in [
            "body",
            "body.data",
            "body.data.password",
            "body.metadata",
            "body.metadata.annotations",
            "@this",
            "body|@pretty",
            "body.metadata.*",
        ] {
            assert!(leaks_body(&json!({"dataKey": bad})).is_some(), "{bad}");
        }
        assert!(leaks_body(&json!({"dependencyName": "x"})).is_some());
        assert!(leaks_body(&json!({"dataTemplate": "{{ .Input.body.data.x }}"})).is_some());
        assert_eq!(
            leaks_body(&json!({"dataTemplate": "{{ .Input.body.metadata.name }}"})),
            None
        );
    }
}
