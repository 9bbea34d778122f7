//! The outcome names write-vault and mark-consumed write to their `outcome` output parameter
//! and audit lines, pinned for every variant as their hand-written matches spelled them before
//! the names came from serde's `rename_all = "kebab-case"` (through `variant_name`).
//! (An integration test: `variant_name` is below `handover` and must not import it.)

use secops::handover::{mark_consumed, write_vault};
use secops::variant_name::variant_name;

#[test]
fn write_vault_outcome_names_are_the_ones_outputs_always_had() {
    let all = [
        (write_vault::Outcome::Written, "written"),
        (write_vault::Outcome::Unchanged, "unchanged"),
        (write_vault::Outcome::WouldWrite, "would-write"),
        (
            write_vault::Outcome::ProvenanceUpdated,
            "provenance-updated",
        ),
        (write_vault::Outcome::Resurrected, "resurrected"),
        (write_vault::Outcome::VaultDiffers, "vault-differs"),
        (write_vault::Outcome::Shared, "shared"),
    ];
    for (outcome, name) in all {
        assert_eq!(variant_name(&outcome), name);
        assert_eq!(serde_json::to_value(&outcome).unwrap(), name);
    }
}

#[test]
fn mark_consumed_outcome_names_are_the_ones_outputs_always_had() {
    let all = [
        (mark_consumed::Outcome::Consumed, "consumed"),
        (
            mark_consumed::Outcome::ConsumedVaultDiffers,
            "consumed-vault-differs",
        ),
        (mark_consumed::Outcome::Unchanged, "unchanged"),
        (mark_consumed::Outcome::WouldConsume, "would-consume"),
    ];
    for (outcome, name) in all {
        assert_eq!(variant_name(&outcome), name);
        assert_eq!(serde_json::to_value(&outcome).unwrap(), name);
    }
}
