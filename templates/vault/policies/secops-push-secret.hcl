# push-secret: only under the internal/ prefix.
path "secret/data/internal/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/internal/*" {
  capabilities = ["patch"]
}
