//! What a step that speaks to both authorities works with, passed as one value instead of a
//! long argument list: the Kubernetes and Vault clients, the audit trail and the output files.
//! Built once by the entry function in `steps`; the step's logic borrows it.

use crate::audit::Auditor;
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::vault::Vault;

#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub kube: &'a Kube,
    pub vault: &'a Vault,
    pub audit: &'a Auditor,
    pub outputs: &'a Outputs,
}

impl<'a> Ctx<'a> {
    pub fn new(kube: &'a Kube, vault: &'a Vault, audit: &'a Auditor, outputs: &'a Outputs) -> Self {
        Ctx {
            kube,
            vault,
            audit,
            outputs,
        }
    }
}
