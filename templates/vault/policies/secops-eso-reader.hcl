# External Secrets Operator's ClusterSecretStore: the read path (RFC 5.5).
path "secret/data/*" {
  capabilities = ["read"]
}
path "secret/metadata/*" {
  capabilities = ["read", "list"]
}
