# audit-authority: lists and reads metadata (provenance) and reads data to find copies in
# Kubernetes Secrets (values are compared in memory only; the report holds references). The
# handover subtree and push-secret's internal/ subtree, each its own knob (settings/).
path "secret/metadata/*" {
  capabilities = ["list", "read"]
}
path "secret/data/*" {
  capabilities = ["read"]
}
path "secret/metadata/internal/*" {
  capabilities = ["list", "read"]
}
path "secret/data/internal/*" {
  capabilities = ["read"]
}
