//! The nine step binaries, as their clap definitions describe them, and the check of one
//! container against its binary: image, command, every flag, every environment variable,
//! every required option, and every literal value (parsed by the binary's own value parser).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Command, CommandFactory};
use serde_json::Value;

use crate::load::Doc;
use crate::vars::{self, Var};
use crate::{path, Problem};

/// Where the step images come from.
pub const IMAGE_REGISTRY: &str = "ghcr.io/secops/";

/// Environment variables a step reads outside its clap definition: `VAULT_TOKEN` and
/// `SECOPS_LOG` (`secops::run`), `KUBECONFIG` (kube's config inference).
pub const EXTRA_ENV: [&str; 3] = ["VAULT_TOKEN", "SECOPS_LOG", "KUBECONFIG"];

#[derive(Clone)]
pub struct Binary {
    pub name: &'static str,
    pub command: Command,
    /// `steps/<name>/Cargo.toml` exists.
    pub in_repo: bool,
}

impl Binary {
    fn long(&self, flag: &str) -> Option<&Arg> {
        self.command.get_arguments().find(|a| {
            a.get_long() == Some(flag) || a.get_all_aliases().is_some_and(|al| al.contains(&flag))
        })
    }
    fn by_env(&self, name: &str) -> Option<&Arg> {
        self.command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name))
    }
    fn reads_env(&self, name: &str) -> bool {
        EXTRA_ENV.contains(&name) || self.by_env(name).is_some()
    }
    /// The binary talks to Vault (has the Vault flag group).
    pub fn uses_vault(&self) -> bool {
        self.long("vault-addr").is_some()
    }

    /// Logs in to Vault (init-authority and unseal talk to it before any auth method exists).
    pub fn logs_in_to_vault(&self) -> bool {
        self.long("vault-auth").is_some()
    }

    /// Parses `value` as the binary would for `arg`; the error message if it refuses it.
    fn refuses(&self, arg: &Arg, value: &str) -> Option<String> {
        let long = arg.get_long()?;
        let res = self
            .command
            .clone()
            .try_get_matches_from([self.name.to_owned(), format!("--{long}={value}")]);
        match res {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::InvalidValue
                        | ErrorKind::ValueValidation
                        | ErrorKind::InvalidUtf8
                        | ErrorKind::WrongNumberOfValues
                        | ErrorKind::TooManyValues
                        | ErrorKind::TooFewValues
                ) =>
            {
                let text = e.to_string();
                if !text.contains(&format!("--{long}")) {
                    // About another option (e.g. from this process's environment).
                    return None;
                }
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                Some(first.to_owned())
            }
            _ => None,
        }
    }
}

/// A step's name and its clap definition.
type Definition = (&'static str, fn() -> Command);

#[derive(Clone)]
pub struct Binaries {
    pub list: Vec<Binary>,
    /// Where the images come from: [`IMAGE_REGISTRY`] in the sources; what the images knob
    /// sets in rendered output.
    pub registry: String,
}

impl Binaries {
    pub fn new(repo: &Path) -> Binaries {
        let defs: [Definition; 9] = [
            ("read-bootstrap", secops::steps::ReadBootstrapArgs::command),
            ("write-vault", secops::steps::WriteVaultArgs::command),
            ("mark-consumed", secops::steps::MarkConsumedArgs::command),
            ("rotate", secops::steps::RotateArgs::command),
            ("push-secret", secops::steps::PushSecretArgs::command),
            ("init-authority", secops::steps::InitAuthorityArgs::command),
            ("unseal", secops::steps::UnsealArgs::command),
            (
                "audit-authority",
                secops::steps::AuditAuthorityArgs::command,
            ),
            (
                "snapshot-authority",
                secops::steps::SnapshotAuthorityArgs::command,
            ),
        ];
        let steps: PathBuf = repo.join("steps");
        let list = defs
            .into_iter()
            .map(|(name, f)| {
                let mut command = f();
                command.build();
                Binary {
                    name,
                    command,
                    in_repo: steps.join(name).join("Cargo.toml").is_file(),
                }
            })
            .collect();
        Binaries {
            list,
            registry: IMAGE_REGISTRY.into(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Binary> {
        self.list.iter().find(|b| b.name == name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|b| b.name).collect()
    }
}

/// The step binary an image names: `ghcr.io/secops/<name>:<tag>`.
pub fn image_binary(image: &str) -> Option<(&str, &str)> {
    image_binary_at(image, IMAGE_REGISTRY)
}

/// The step binary an image names: `<registry><name>:<tag>`.
pub fn image_binary_at<'a>(image: &'a str, registry: &str) -> Option<(&'a str, &'a str)> {
    let rest = image.strip_prefix(registry)?;
    let (name, tag) = rest.split_once(':')?;
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !tag.starts_with(['.', '-']);
    (tag_ok && !name.is_empty() && !name.contains('/')).then_some((name, tag))
}

/// What a container check learned, for the Vault and kustomize checks.
#[derive(Debug, Default, Clone)]
pub struct ContainerFacts {
    pub binary: Option<&'static str>,
    /// A literal Vault role (`SECOPS_VAULT_ROLE` or `--vault-role`) and where it is set.
    pub vault_role: Option<(String, String)>,
}

/// Checks one container (`c` at `at` in `doc`) against the step binary its image names.
/// `params` are the workflow's declared parameters, to check the defaults a flag receives.
pub fn check_container(
    doc: &Doc,
    at: &str,
    c: &Value,
    binaries: &Binaries,
    params: &BTreeMap<String, Value>,
    out: &mut Vec<Problem>,
) -> ContainerFacts {
    // Found whatever the image: the pod logs in to Vault with it all the same.
    let mut facts = ContainerFacts {
        binary: None,
        vault_role: literal_role(c, at),
    };
    let image = c["image"].as_str().unwrap_or("");
    let names = binaries.names().join(", ");
    let registry = &binaries.registry;
    let Some(bin) = image_binary_at(image, registry).and_then(|(name, _)| binaries.get(name))
    else {
        out.push(Problem::at(
            doc,
            path::key(at, "image"),
            format!("image {image:?} is not {registry}<step>:<tag> for a step binary ({names})"),
        ));
        return facts;
    };
    facts.binary = Some(bin.name);
    if !bin.in_repo {
        out.push(Problem::at(
            doc,
            path::key(at, "image"),
            format!(
                "image {image:?}: there is no steps/{}/Cargo.toml in the repository",
                bin.name
            ),
        ));
    }
    let want = format!("/{}", bin.name);
    if c["command"] != Value::Array(vec![want.clone().into()]) {
        out.push(Problem::at(
            doc,
            path::key(at, "command"),
            format!(
                "command must be [{want}] (the image's binary; the images have no shell), not {}",
                c["command"]
            ),
        ));
    }

    let mut given: Vec<&str> = Vec::new();
    let args_path = path::key(at, "args");
    let args = c["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut i = 0;
    while i < args.len() {
        let p = path::index(&args_path, i);
        let Some(a) = args[i].as_str() else {
            out.push(Problem::at(doc, p, "an argument must be a string"));
            i += 1;
            continue;
        };
        i += 1;
        let Some(flag) = a.strip_prefix("--") else {
            out.push(Problem::at(
                doc,
                p,
                format!(
                    "{a:?} is not a --flag: {} takes no positional arguments",
                    bin.name
                ),
            ));
            continue;
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (flag, None),
        };
        let Some(arg) = bin.long(flag) else {
            out.push(Problem::at(
                doc,
                p,
                format!("unknown flag --{flag}: {} has no such option", bin.name),
            ));
            continue;
        };
        let id = arg.get_id().as_str();
        if given.contains(&id) && matches!(arg.get_action(), ArgAction::Set) {
            out.push(Problem::at(
                doc,
                &p,
                format!("--{flag} is given twice; {} accepts it once", bin.name),
            ));
        }
        given.push(id);
        if !arg.get_action().takes_values() {
            if inline.is_some() {
                out.push(Problem::at(doc, p, format!("--{flag} takes no value")));
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match args.get(i).and_then(Value::as_str) {
                Some(v) => {
                    i += 1;
                    v
                }
                None => {
                    out.push(Problem::at(doc, p, format!("--{flag} needs a value")));
                    continue;
                }
            },
        };
        check_value(doc, &p, bin, arg, &format!("--{flag}"), value, params, out);
    }

    let mut env_given: Vec<&str> = Vec::new();
    let env_path = path::key(at, "env");
    for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        let p = path::index(&env_path, j);
        let name = e["name"].as_str().unwrap_or("");
        env_given.push(name);
        if !bin.reads_env(name) {
            out.push(Problem::at(
                doc,
                path::key(&p, "name"),
                format!("{} does not read the environment variable {name}", bin.name),
            ));
            continue;
        }
        let (Some(value), Some(arg)) = (e["value"].as_str(), bin.by_env(name)) else {
            continue;
        };
        check_value(
            doc,
            &path::key(&p, "value"),
            bin,
            arg,
            name,
            value,
            params,
            out,
        );
    }
    if c.get("envFrom").is_some() {
        out.push(Problem::at(
            doc,
            path::key(at, "envFrom"),
            "envFrom hides which variables the step gets: set them one by one in env",
        ));
    }

    for arg in bin.command.get_arguments().filter(|a| a.is_required_set()) {
        let by_flag = given.contains(&arg.get_id().as_str());
        let env = arg.get_env().and_then(|e| e.to_str());
        let by_env = env.is_some_and(|e| env_given.contains(&e));
        if !by_flag && !by_env {
            let long = arg.get_long().unwrap_or(arg.get_id().as_str());
            let via = env.map_or(String::new(), |e| format!(" (or env {e})"));
            out.push(Problem::at(
                doc,
                at,
                format!(
                    "{} requires --{long}{via}, which the container does not set",
                    bin.name
                ),
            ));
        }
    }

    // Every step gets the workflow's dry-run parameter, so a dry run writes nothing anywhere.
    from_parameter(
        (doc, at, c, bin.name),
        ("--dry-run", "SECOPS_DRY_RUN", "dry-run"),
        "a dry run of the workflow must reach every step",
        out,
    );
    // A cluster's own Vault rarely has a publicly trusted certificate: every Vault step takes
    // its CA bundle from the workflow (the optional ConfigMap secops-vault-ca, mounted).
    if bin.uses_vault() {
        from_parameter(
            (doc, at, c, bin.name),
            ("--vault-cacert", "VAULT_CACERT", "vault-cacert"),
            "without it a Vault with a private CA cannot be reached",
            out,
        );
    }

    if bin.logs_in_to_vault() && facts.vault_role.is_none() {
        let auth =
            literal_of(c, "--vault-auth", "SECOPS_VAULT_AUTH").unwrap_or("kubernetes".into());
        if auth == "kubernetes" {
            out.push(Problem::at(
                doc,
                at,
                format!("{} logs in to Vault with Kubernetes auth but no literal SECOPS_VAULT_ROLE or --vault-role is set", bin.name),
            ));
        }
    }
    facts
}

/// The container passes the workflow (or input) parameter `param` as `flag` or `env`.
fn from_parameter(
    (doc, at, c, step): (&Doc, &str, &Value, &str),
    (flag, env, param): (&str, &str, &str),
    why: &str,
    out: &mut Vec<Problem>,
) {
    let given = literal_of(c, flag, env);
    if !given
        .as_deref()
        .is_some_and(|v| v.contains(&format!("parameters.{param}}}}}")))
    {
        out.push(Problem::at(
            doc,
            at,
            format!(
                "{step} must get {flag}={{{{workflow.parameters.{param}}}}} (or env {env}, or \
                 an input parameter {param}), not {given:?}: {why}"
            ),
        ));
    }
}

/// A literal Vault role (`--vault-role` wins over `SECOPS_VAULT_ROLE`, as in clap) and its path.
fn literal_role(c: &Value, at: &str) -> Option<(String, String)> {
    let args = c["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (i, a) in args.iter().enumerate() {
        let a = a.as_str().unwrap_or("");
        let (value, j) = if let Some(v) = a.strip_prefix("--vault-role=") {
            (Some(v), i)
        } else if a == "--vault-role" {
            (args.get(i + 1).and_then(Value::as_str), i + 1)
        } else {
            continue;
        };
        return value
            .filter(|v| !v.contains("{{"))
            .map(|v| (v.to_owned(), path::index(&path::key(at, "args"), j)));
    }
    let env = c["env"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    env.iter()
        .enumerate()
        .find(|(_, e)| e["name"] == "SECOPS_VAULT_ROLE")
        .and_then(|(j, e)| {
            let v = e["value"].as_str().filter(|v| !v.contains("{{"))?;
            Some((
                v.to_owned(),
                path::key(&path::index(&path::key(at, "env"), j), "value"),
            ))
        })
}

/// The value set for a flag (`--flag=v`) or its env variable, if written out.
fn literal_of(c: &Value, flag: &str, env: &str) -> Option<String> {
    for a in c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_owned());
        }
    }
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == env)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

/// A literal value is parsed as the binary parses it. A value that is exactly one
/// `{{workflow.parameters.X}}` is checked with X's default and each of its `enum` values.
#[allow(clippy::too_many_arguments)]
fn check_value(
    doc: &Doc,
    at: &str,
    bin: &Binary,
    arg: &Arg,
    what: &str,
    value: &str,
    params: &BTreeMap<String, Value>,
    out: &mut Vec<Problem>,
) {
    let mut candidates: Vec<(String, String)> = Vec::new();
    if !value.contains("{{") {
        candidates.push((value.to_owned(), String::new()));
    } else if let [Var::WorkflowParam(name)] = vars::refs(value).as_slice() {
        if value.trim() == format!("{{{{workflow.parameters.{name}}}}}") {
            if let Some(decl) = params.get(name) {
                if let Some(v) = decl["value"].as_str().filter(|v| !v.contains("{{")) {
                    candidates.push((
                        v.to_owned(),
                        format!(" (the default of workflow parameter {name})"),
                    ));
                }
                for v in decl["enum"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    candidates.push((
                        v.to_owned(),
                        format!(" (an enum value of workflow parameter {name})"),
                    ));
                }
            }
        }
    }
    for (v, origin) in candidates {
        if let Some(err) = bin.refuses(arg, &v) {
            out.push(Problem::at(
                doc,
                at,
                format!("{} refuses {what}={v:?}{origin}: {err}", bin.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_step_images() {
        assert_eq!(
            image_binary("ghcr.io/secops/rotate:0.1.0"),
            Some(("rotate", "0.1.0"))
        );
        assert_eq!(image_binary("ghcr.io/secops/rotate"), None);
        assert_eq!(image_binary("docker.io/secops/rotate:1"), None);
        assert_eq!(image_binary("ghcr.io/secops/a/b:1"), None);
    }

    #[test]
    fn knows_the_binaries_flags_and_values() {
        let b = Binaries::new(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
        let rotate = b.get("rotate").unwrap();
        assert!(rotate.in_repo);
        assert!(rotate.long("paths-file").is_some());
        assert!(rotate.long("path-prefix").is_none());
        assert!(rotate.reads_env("SECOPS_KV_MOUNT") && rotate.reads_env("VAULT_TOKEN"));
        assert!(!b.get("read-bootstrap").unwrap().reads_env("VAULT_ADDR"));
        let grace = rotate.long("grace").unwrap();
        assert!(rotate.refuses(grace, "1h").is_none());
        assert!(rotate.refuses(grace, "one hour").is_some());
    }
}
