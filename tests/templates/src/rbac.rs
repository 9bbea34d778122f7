//! RBAC: every Role a binding names and every ServiceAccount it binds exists, every Role is
//! bound, and every ServiceAccount an Argo pod runs as may record task results (Argo's wait
//! container creates and patches WorkflowTaskResults with the pod's identity, argo-facts
//! section 9; without that it fails with 403).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::load::{Doc, Templates};
use crate::xref::{check_sa, Index, PodUse};
use crate::{path, Problem};

pub fn check(t: &Templates, idx: &Index, pods: &[PodUse], out: &mut Vec<Problem>) {
    let mut bound = BTreeSet::new();
    let mut grants = Grants::default();
    for d in &t.docs {
        if let ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") =
            (d.api_version(), d.kind())
        {
            check_binding(t, d, idx, out, &mut bound, &mut grants);
        }
    }
    for d in &t.docs {
        let key = match (d.api_version(), d.kind()) {
            ("rbac.authorization.k8s.io/v1", "Role") => (
                "Role",
                idx.namespace(d).map(str::to_owned),
                d.name().to_owned(),
            ),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                ("ClusterRole", None, d.name().to_owned())
            }
            _ => continue,
        };
        if !bound.contains(&key) {
            out.push(Problem::at(
                d,
                "metadata.name",
                format!(
                    "{} {} is bound by no RoleBinding or ClusterRoleBinding",
                    key.0, key.2
                ),
            ));
        }
    }
    // Argo's wait container records outputs as WorkflowTaskResults with the pod's identity
    // (argo-facts section 9): without create and patch it fails with 403.
    for p in pods {
        let ns = p.namespace.as_deref();
        let ok = grants.executor.iter().any(|g| {
            g.sa == p.service_account
                && (ns.is_none()
                    || (g.within.is_none() || g.within.as_deref() == ns)
                        && g.sa_namespace.as_deref() == ns)
        });
        if !ok {
            out.push(Problem::new(
                &p.file,
                Some(p.doc),
                &p.path,
                format!(
                    "ServiceAccount {} is bound to no Role granting create and patch on \
                     workflowtaskresults.argoproj.io: Argo's wait container would fail with 403",
                    p.service_account
                ),
            ));
        }
    }
}

/// A binding that lets a ServiceAccount record task results.
struct Grant {
    /// The namespace the binding grants in; `None` for a ClusterRoleBinding (all).
    within: Option<String>,
    sa_namespace: Option<String>,
    sa: String,
}

#[derive(Default)]
struct Grants {
    executor: Vec<Grant>,
}

/// `rules` allow every verb of `verbs` on `resource` in API group `group`.
fn rules_grant(rules: &Value, group: &str, resource: &str, verbs: &[&str]) -> bool {
    let has = |r: &Value, k: &str, want: &str| {
        r[k].as_array()
            .into_iter()
            .flatten()
            .any(|v| v == want || v == "*")
    };
    verbs.iter().all(|verb| {
        rules.as_array().into_iter().flatten().any(|r| {
            has(r, "apiGroups", group) && has(r, "resources", resource) && has(r, "verbs", verb)
        })
    })
}

fn check_binding(
    t: &Templates,
    d: &Doc,
    idx: &Index,
    out: &mut Vec<Problem>,
    bound: &mut BTreeSet<(&'static str, Option<String>, String)>,
    grants: &mut Grants,
) {
    let ns = idx.namespace(d);
    let cluster_binding = d.kind() == "ClusterRoleBinding";
    let r = &d.value["roleRef"];
    let name = r["name"].as_str().unwrap_or("");
    let role_kind = r["kind"].as_str().unwrap_or("");
    let rules = t
        .docs
        .iter()
        .find(|x| {
            x.api_version() == "rbac.authorization.k8s.io/v1"
                && x.kind() == role_kind
                && x.name() == name
                && (role_kind == "ClusterRole" || idx.namespace(x) == ns)
        })
        .map_or(&Value::Null, |x| &x.value["rules"]);
    let executor = rules_grant(
        rules,
        "argoproj.io",
        "workflowtaskresults",
        &["create", "patch"],
    );
    match r["kind"].as_str().unwrap_or("") {
        "Role" if cluster_binding => out.push(Problem::at(
            d,
            "roleRef.kind",
            "a ClusterRoleBinding can only bind a ClusterRole",
        )),
        "Role" => {
            if idx
                .roles
                .contains(&(ns.map(str::to_owned), name.to_owned()))
            {
                bound.insert(("Role", ns.map(str::to_owned), name.to_owned()));
            } else {
                let place = ns.map_or(String::new(), |n| format!(" in namespace {n}"));
                out.push(Problem::at(
                    d,
                    "roleRef.name",
                    format!("no Role {name:?}{place} in templates/"),
                ));
            }
        }
        "ClusterRole" => {
            if idx.cluster_roles.contains(name) {
                bound.insert(("ClusterRole", None, name.to_owned()));
            } else {
                out.push(Problem::at(
                    d,
                    "roleRef.name",
                    format!("no ClusterRole {name:?} in templates/"),
                ));
            }
        }
        k => out.push(Problem::at(
            d,
            "roleRef.kind",
            format!("roleRef.kind must be Role or ClusterRole, not {k:?}"),
        )),
    }
    for (i, s) in d.value["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if s["kind"] != "ServiceAccount" {
            continue;
        }
        let p = path::index("subjects", i);
        let sa = s["name"].as_str().unwrap_or("");
        let sns = s["namespace"]
            .as_str()
            .or(if cluster_binding { None } else { ns });
        if cluster_binding && sns.is_none() {
            out.push(Problem::at(
                d,
                path::key(&p, "namespace"),
                "a ServiceAccount subject of a ClusterRoleBinding needs a namespace",
            ));
            continue;
        }
        if executor {
            // A ClusterRoleBinding grants in every namespace.
            grants.executor.push(Grant {
                within: if cluster_binding {
                    None
                } else {
                    ns.map(str::to_owned)
                },
                sa_namespace: sns.map(str::to_owned),
                sa: sa.to_owned(),
            });
        }
        check_sa(d, &path::key(&p, "name"), idx, sns, sa, out);
    }
}
