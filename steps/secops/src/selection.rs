//! Which Secrets a step acts on: one by namespace and name, or all carrying its class label
//! in the allowed namespaces (one LIST each). Shared by read-bootstrap and push-secret.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
#[cfg(feature = "io")]
use crate::kube::{BootstrapSecret, Kube};
use crate::names::{is_dns_label, is_object_name};

#[derive(Debug, Clone)]
pub struct Selection {
    /// The namespaces this run may touch; discovery lists each of them.
    pub namespaces: BTreeSet<String>,
    /// One Secret by namespace and name instead of discovery.
    pub single: Option<(String, String)>,
    /// Extra label selector ANDed with the class label.
    pub selector: Option<String>,
}

/// Empty or blank values count as absent (a template passes every flag, some empty).
pub fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Selection {
    /// Empty values count as absent, so a template can always pass every flag.
    pub fn new(
        namespaces: &[String],
        namespace: Option<String>,
        name: Option<String>,
        selector: Option<String>,
    ) -> Result<Self> {
        let s = Selection {
            namespaces: namespaces
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            single: nonempty(namespace).zip(nonempty(name)),
            selector: nonempty(selector),
        };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<()> {
        if self.namespaces.is_empty() {
            return Err(Error::Usage(
                "--namespaces is required: the namespaces Secrets may be read from".into(),
            ));
        }
        for ns in &self.namespaces {
            if !is_dns_label(ns) {
                return Err(Error::Usage(format!(
                    "--namespaces: {ns:?} is not a namespace name"
                )));
            }
        }
        if let Some((ns, name)) = &self.single {
            if !self.namespaces.contains(ns) {
                return Err(Error::Usage(format!(
                    "namespace {ns:?} is not among the allowed --namespaces; add it there if the \
                     step may work in it"
                )));
            }
            if !is_object_name(name) {
                return Err(Error::Usage(format!(
                    "--name {:?} is not a Secret name (lowercase letters, digits, '-', '.')",
                    name.escape_debug().to_string()
                )));
            }
            if self.selector.is_some() {
                return Err(Error::Usage(
                    "--selector selects among many; it cannot be combined with --name".into(),
                ));
            }
        }
        if self
            .selector
            .as_deref()
            .is_some_and(|s| s.chars().any(char::is_control))
        {
            return Err(Error::Usage("--selector has control characters".into()));
        }
        Ok(())
    }

    /// The Secrets selected: the named one (it must exist), or one LIST per namespace with
    /// `class_selector` and the extra selector.
    #[cfg(feature = "io")]
    pub async fn fetch(&self, kube: &Kube, class_selector: &str) -> Result<Vec<BootstrapSecret>> {
        let mut all = Vec::new();
        self.for_each_page(kube, class_selector, |page| all.extend(page))
            .await?;
        Ok(all)
    }

    /// Hands the selected Secrets to `f` one LIST page at a time (`limit`/`continue`, at
    /// most [`crate::batch::PAGE`] Secrets each), fetching the next page only after `f` has
    /// returned: a caller that drops each page holds one page of values, whatever the count.
    /// The named Secret (it must exist) is one page of one.
    #[cfg(feature = "io")]
    pub async fn for_each_page<F>(&self, kube: &Kube, class_selector: &str, mut f: F) -> Result<()>
    where
        F: FnMut(Vec<BootstrapSecret>),
    {
        if let Some((ns, name)) = &self.single {
            return match kube.get_secret(ns, name).await? {
                Some(s) => {
                    f(vec![s]);
                    Ok(())
                }
                None => Err(Error::precondition(
                    format!("Secret {ns}/{name}"),
                    "not found",
                    "check the name; it may not have been created yet",
                )),
            };
        }
        let selector = match &self.selector {
            Some(extra) => format!("{class_selector},{extra}"),
            None => class_selector.to_owned(),
        };
        for ns in &self.namespaces {
            let mut next: Option<String> = None;
            loop {
                let (page, cont) = kube
                    .list_secrets_page(ns, &selector, crate::batch::PAGE, next.as_deref())
                    .await?;
                f(page);
                match cont {
                    Some(c) => next = Some(c),
                    None => break,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn empty_flags_are_absent_and_rules_hold() {
        let s = Selection::new(
            &v(&["apps", " "]),
            Some("".into()),
            Some("".into()),
            Some(" ".into()),
        )
        .unwrap();
        assert!(s.single.is_none() && s.selector.is_none());
        assert_eq!(s.namespaces.len(), 1);
        for (ns, one, sel) in [
            (v(&[]), None, None),
            (v(&["Apps"]), None, None),
            (v(&["apps"]), Some(("kube-system", "x")), None),
            (v(&["apps"]), Some(("apps", "a/b")), None),
            (v(&["apps"]), Some(("apps", "..")), None),
            (v(&["apps"]), Some(("apps", "%2e%2e")), None),
            (v(&["apps"]), Some(("apps", "x")), Some("a=b")),
            (v(&["apps"]), None, Some("a=\u{1}b")),
        ] {
            let (n, m) = one
                .map(|(a, b): (&str, &str)| (Some(a.to_owned()), Some(b.to_owned())))
                .unwrap_or((None, None));
            assert!(
                matches!(
                    Selection::new(&ns, n, m, sel.map(str::to_owned)),
                    Err(Error::Usage(_))
                ),
                "{ns:?} {one:?} {sel:?}"
            );
        }
    }
}
