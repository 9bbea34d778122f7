# audit-authority: lists and reads metadata (provenance) and reads data to find copies in
# Kubernetes Secrets (values are compared in memory only; the report holds references).
path "secret/metadata/*" {
  capabilities = ["list", "read"]
}
path "secret/data/*" {
  capabilities = ["read"]
}
