//! The GitOps flags (clap, with their `SECOPS_*` environment fallbacks): which owner kinds
//! deliver bootstrap Secrets from Git, and read-bootstrap's view of the chain's consume
//! mode. What they mean is `gitops`'.

use clap::Args;

use crate::gitops::{OwnerKinds, DEFAULT_OWNER_KINDS};
use crate::handover::mark_consumed::Mode;

#[derive(Debug, Clone, Args)]
pub struct GitopsArgs {
    /// Owner kinds that deliver bootstrap Secrets from Git, as a comma list of Kind.group:
    /// a Secret whose one owner reference is the controller reference of such a kind is
    /// handed over; every other owner reference is refused. Empty: no owner allowed.
    #[arg(long, env = "SECOPS_GITOPS_OWNER_KINDS", default_value = DEFAULT_OWNER_KINDS, value_parser = OwnerKinds::parse, value_name = "KIND.GROUP,...")]
    pub gitops_owner_kinds: OwnerKinds,
}

/// read-bootstrap's: the owner kinds, and the chain's consume mode.
#[derive(Debug, Clone, Args)]
pub struct DiscoveryGitopsArgs {
    /// The chain's consume mode (as mark-consumed's --mode): Secrets it cannot hold for are
    /// refused here, before anything is written (a SealedSecret-owned one in delete or inert
    /// mode). Unset: not checked here (mark-consumed still refuses before its first write).
    #[arg(long, env = "SECOPS_CONSUME_MODE", value_enum)]
    pub consume_mode: Option<Mode>,
    #[command(flatten)]
    pub kinds: GitopsArgs,
}
