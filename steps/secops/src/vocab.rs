//! The label, annotation and Vault metadata vocabulary other tools and our templates rely on.

/// Marks a bootstrap Secret (RFC 5.2: explicitly labeled and traceable).
pub const LABEL_CLASS: &str = "secops.io/class";
pub const CLASS_BOOTSTRAP: &str = "bootstrap";
/// Set once Vault acknowledged the handover.
pub const LABEL_STATE: &str = "secops.io/state";
pub const STATE_CONSUMED: &str = "consumed";

/// Optional: the Vault path (under the KV mount) a bootstrap Secret is handed over to.
pub const ANN_VAULT_PATH: &str = "secops.io/vault-path";
pub const ANN_VAULT_VERSION: &str = "secops.io/vault-version";
pub const ANN_CONSUMED_AT: &str = "secops.io/consumed-at";
pub const ANN_CONSUMED_BY: &str = "secops.io/consumed-by";
pub const ANN_CONSUMED_MODE: &str = "secops.io/consumed-mode";
/// Why consumption needed a human's attention (e.g. Vault holds other data): no value, a reason.
pub const ANN_CONSUMED_NOTE: &str = "secops.io/consumed-note";

/// Provenance recorded in the Vault secret's `custom_metadata` (never values).
pub const META_SOURCE: &str = "secops.io/source";
pub const META_SOURCE_UID: &str = "secops.io/source-uid";
pub const META_SOURCE_RV: &str = "secops.io/source-resource-version";
pub const META_SOURCE_TYPE: &str = "secops.io/source-type";
pub const META_HANDOVER_AT: &str = "secops.io/handover-at";
pub const META_WORKFLOW: &str = "secops.io/workflow";
/// The step that owns a Vault secret it publishes (`push-secret`); absent for handovers.
pub const META_OWNER: &str = "secops.io/owner";
/// Comma-separated key names stored as base64; continued in `-2`, `-3`... past 512 bytes.
pub const META_BASE64_KEYS: &str = "secops.io/base64-keys";

/// The selector every discovery starts from.
pub fn bootstrap_selector() -> String {
    format!("{LABEL_CLASS}={CLASS_BOOTSTRAP}")
}
