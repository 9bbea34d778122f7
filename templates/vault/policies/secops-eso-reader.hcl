# External Secrets Operator's ClusterSecretStore: the read path (RFC 5.5), of handed-over and
# of internal (pushed) secrets.
path "secret/data/*" {
  capabilities = ["read"]
}
path "secret/metadata/*" {
  capabilities = ["read", "list"]
}
path "secret/data/internal/*" {
  capabilities = ["read"]
}
path "secret/metadata/internal/*" {
  capabilities = ["read", "list"]
}
