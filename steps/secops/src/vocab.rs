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
/// A handover whose bootstrap Secret was re-created (cluster rebuilt from Git) with the same
/// data: the earlier uids, most recent first, comma-separated, bounded to one value (512 bytes).
pub const META_PREVIOUS_SOURCE_UIDS: &str = "secops.io/previous-source-uids";
/// When and by which workflow the provenance was moved to the re-created Secret's uid.
pub const META_SOURCE_RELINKED_AT: &str = "secops.io/source-relinked-at";
pub const META_SOURCE_RELINKED_BY: &str = "secops.io/source-relinked-by";
/// The cluster (`--cluster-name`, as Git names it) the source Secret lives in.
pub const META_SOURCE_CLUSTER: &str = "secops.io/source-cluster";
/// The uid of the source Secret's namespace when write-vault handed over or relinked: the
/// same uid later means GitOps re-created the Secret (resurrected, nothing written), another
/// one that the namespace was re-created too (a cluster rebuild: the provenance moves).
pub const META_SOURCE_NAMESPACE_UID: &str = "secops.io/source-namespace-uid";
/// Other clusters sharing a path (equal data, or `--fleet-vault-authoritative`), comma-separated,
/// bounded to one value (512 bytes).
pub const META_CLUSTERS: &str = "secops.io/clusters";
/// The step that owns a Vault secret it publishes (`push-secret`); absent for handovers.
pub const META_OWNER: &str = "secops.io/owner";
/// Comma-separated key names stored as base64; continued in `-2`, `-3`... past 512 bytes.
pub const META_BASE64_KEYS: &str = "secops.io/base64-keys";

/// The selector every discovery starts from.
pub fn bootstrap_selector() -> String {
    format!("{LABEL_CLASS}={CLASS_BOOTSTRAP}")
}

/// The runtime authority's own unseal material (init-authority, unseal, audit-authority).
pub const CLASS_AUTHORITY: &str = "authority";
/// `pending` (placeholder made before init), `stored` (material written), `established`
/// (policies and roles written, root token revoked).
pub const ANN_AUTHORITY_STATE: &str = "secops.io/authority-state";
pub const AUTHORITY_PENDING: &str = "pending";
pub const AUTHORITY_STORED: &str = "stored";
pub const AUTHORITY_ESTABLISHED: &str = "established";
/// `age` or `none`.
pub const ANN_UNSEAL_ENCRYPTION: &str = "secops.io/unseal-encryption";
/// The age recipients (public keys) the material is encrypted to, comma-separated.
pub const ANN_UNSEAL_RECIPIENTS: &str = "secops.io/unseal-recipients";
/// `shamir` (unseal keys) or `recovery` (auto-unseal recovery keys).
pub const ANN_UNSEAL_TYPE: &str = "secops.io/unseal-type";
pub const ANN_UNSEAL_SHARES: &str = "secops.io/unseal-shares";
pub const ANN_UNSEAL_THRESHOLD: &str = "secops.io/unseal-threshold";
pub const ANN_INITIALIZED_AT: &str = "secops.io/initialized-at";
pub const ANN_INITIALIZED_BY: &str = "secops.io/initialized-by";
/// The last init attempt (written before `sys/init`, proving the step may update the Secret).
pub const ANN_INIT_ATTEMPT: &str = "secops.io/init-attempt";
/// ESO's label on the Secrets it manages.
pub const LABEL_ESO_MANAGED: &str = "reconcile.external-secrets.io/managed";
/// push-secret's source Secrets.
pub const CLASS_INTERNAL: &str = "internal";
