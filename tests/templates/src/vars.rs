//! Argo's `{{...}}` variables (docs/variables.md): which parameter, step output or global a
//! string refers to, so that every reference can be checked against a declaration.

/// What a tag refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `workflow.parameters.NAME`
    WorkflowParam(String),
    /// `inputs.parameters.NAME`
    InputParam(String),
    /// `steps.S.outputs.parameters.P` (`steps` is "steps") or `tasks.T.outputs.parameters.P`.
    OutputParam {
        steps: &'static str,
        node: String,
        param: String,
    },
    /// Any other field of a step or task: `steps.S.outputs.result`, `tasks.T.status`, ...
    Node { steps: &'static str, node: String },
    /// `item` or `item.KEY` (only inside a step with `withItems`/`withParam`).
    Item,
    /// A global or template variable that needs no declaration.
    Known,
    /// A simple tag that is none of the above: Argo fails to resolve it.
    Unknown(String),
}

/// The variables referenced in `s`.
pub fn refs(s: &str) -> Vec<Var> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let tag = after[..end].trim();
        match tag.strip_prefix('=') {
            Some(expr) => expression(expr, &mut out),
            None => out.push(simple(tag)),
        }
        rest = &after[end + 2..];
    }
    out
}

fn simple(tag: &str) -> Var {
    let parts: Vec<&str> = tag.split('.').collect();
    match parts.as_slice() {
        ["workflow", "parameters", name] if *name != "json" => Var::WorkflowParam((*name).into()),
        ["inputs", "parameters", name] if *name != "json" => Var::InputParam((*name).into()),
        ["steps", "name"] | ["tasks", "name"] => Var::Known,
        [s @ ("steps" | "tasks"), node, "outputs", "parameters", param] => Var::OutputParam {
            steps: steps_word(s),
            node: (*node).into(),
            param: (*param).into(),
        },
        [s @ ("steps" | "tasks"), node, ..] if parts.len() >= 3 => Var::Node {
            steps: steps_word(s),
            node: (*node).into(),
        },
        ["item", ..] => Var::Item,
        _ if known(tag) => Var::Known,
        _ => Var::Unknown(tag.into()),
    }
}

fn steps_word(s: &str) -> &'static str {
    if s == "steps" {
        "steps"
    } else {
        "tasks"
    }
}

/// Globals and template variables from Argo's docs/variables.md.
fn known(tag: &str) -> bool {
    const EXACT: [&str; 28] = [
        "workflow.name",
        "workflow.namespace",
        "workflow.uid",
        "workflow.mainEntrypoint",
        "workflow.serviceAccountName",
        "workflow.parameters",
        "workflow.parameters.json",
        "workflow.annotations",
        "workflow.annotations.json",
        "workflow.labels",
        "workflow.labels.json",
        "workflow.creationTimestamp",
        "workflow.priority",
        "workflow.duration",
        "workflow.scheduledTime",
        "workflow.status",
        "workflow.failures",
        "inputs.parameters",
        "inputs.parameters.json",
        "outputs.result",
        "pod.name",
        "node.name",
        "retries",
        "status",
        "duration",
        "exitCode",
        "item",
        "workflow.outputs.parameters",
    ];
    const PREFIX: [&str; 10] = [
        "workflow.labels.",
        "workflow.annotations.",
        "workflow.creationTimestamp.",
        "workflow.outputs.",
        "inputs.artifacts.",
        "outputs.parameters.",
        "outputs.artifacts.",
        "lastRetry.",
        "resourcesDuration.",
        "item.",
    ];
    EXACT.contains(&tag) || PREFIX.iter().any(|p| tag.starts_with(p))
}

/// References inside an `{{=expr}}` tag: `workflow.parameters.x`, `workflow.parameters['x-y']`,
/// `inputs.parameters...`, `steps.S.outputs.parameters.P` and `tasks...`. Anything else in an
/// expression (functions, operators, globals) is left to Argo.
fn expression(expr: &str, out: &mut Vec<Var>) {
    let ident = |s: &str| -> Option<String> {
        if let Some(r) = s.strip_prefix("['").or_else(|| s.strip_prefix("[\"")) {
            let end = r.find(['\'', '"'])?;
            return Some(r[..end].to_owned());
        }
        let s = s.strip_prefix('.')?;
        let n: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!n.is_empty()).then_some(n)
    };
    let bytes = expr.as_bytes();
    for (i, _) in expr.char_indices() {
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b'.');
        if !boundary {
            continue;
        }
        let rest = &expr[i..];
        if let Some(r) = rest.strip_prefix("workflow.parameters") {
            if let Some(n) = ident(r) {
                out.push(Var::WorkflowParam(n));
            }
        } else if let Some(r) = rest.strip_prefix("inputs.parameters") {
            if let Some(n) = ident(r) {
                out.push(Var::InputParam(n));
            }
        } else {
            for word in ["steps", "tasks"] {
                let Some(r) = rest.strip_prefix(word) else {
                    continue;
                };
                let Some(node) = ident(r) else { continue };
                let r = &r[r.find(&node).map_or(0, |p| p + node.len())..];
                let r = r
                    .strip_prefix(['\'', '"'])
                    .and_then(|r| r.strip_prefix(']'))
                    .unwrap_or(r);
                let steps = steps_word(word);
                match r.strip_prefix(".outputs.parameters").and_then(ident) {
                    Some(param) => out.push(Var::OutputParam { steps, node, param }),
                    None => out.push(Var::Node { steps, node }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_simple_tags() {
        assert_eq!(
            refs("--a={{workflow.parameters.kv-mount}} {{ inputs.parameters.x }} {{workflow.uid}}"),
            [
                Var::WorkflowParam("kv-mount".into()),
                Var::InputParam("x".into()),
                Var::Known
            ]
        );
        assert_eq!(
            refs("{{steps.write.outputs.parameters.vault-version}} > 0 {{steps.d.outputs.result}}"),
            [
                Var::OutputParam {
                    steps: "steps",
                    node: "write".into(),
                    param: "vault-version".into()
                },
                Var::Node {
                    steps: "steps",
                    node: "d".into()
                }
            ]
        );
        assert_eq!(
            refs("{{item.name}} {{workflow.nmae}}"),
            [Var::Item, Var::Unknown("workflow.nmae".into())]
        );
        assert_eq!(refs("no tags {{ unterminated"), []);
    }

    #[test]
    fn reads_expression_tags() {
        assert_eq!(
            refs("{{=sprig.replace('/', '-', inputs.parameters.msg) + workflow.parameters['kv-mount']}}"),
            [Var::InputParam("msg".into()), Var::WorkflowParam("kv-mount".into())]
        );
        assert_eq!(
            refs("{{=asInt(tasks.gen.outputs.parameters.count) > 0}}"),
            [Var::OutputParam {
                steps: "tasks",
                node: "gen".into(),
                param: "count".into()
            }]
        );
    }
}
