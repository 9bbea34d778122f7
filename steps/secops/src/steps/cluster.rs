//! `--cluster-name`, the flag every step that records or judges provenance takes (see
//! `fleet` for what the name means).

use clap::Args;

use crate::error::{Error, Result};
use crate::fleet::ClusterName;

/// `--cluster-name`: required by the steps that record or judge provenance.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The name of this cluster as Git (the kustomize knob `cluster-name`) names it; recorded
    /// in Vault provenance, audit lines and Events, and what `{cluster}` in a path prefix
    /// becomes. The same name after a rebuild: the cluster takes back its own paths.
    #[arg(long, env = "SECOPS_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
}

impl ClusterArgs {
    /// Exit 2 with a clear message when it is missing or invalid.
    pub fn required(&self) -> Result<ClusterName> {
        match self.optional()? {
            Some(c) => Ok(c),
            None => Err(Error::Usage(
                "--cluster-name (env SECOPS_CLUSTER_NAME) is required: the name of this cluster \
                 as Git names it (the `cluster-name` knob of templates/settings/settings.yaml), \
                 the same after a rebuild and different for every cluster sharing this Vault"
                    .into(),
            )),
        }
    }

    /// `None` when unset or empty (a template passes every flag, some empty).
    pub fn optional(&self) -> Result<Option<ClusterName>> {
        match crate::selection::nonempty(self.cluster_name.clone()) {
            None => Ok(None),
            Some(s) => ClusterName::parse(&s).map(Some),
        }
    }
}
