# push-secret: only under the internal/ prefix.
path "secret/data/internal/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/internal/*" {
  capabilities = ["patch"]
  # custom_metadata only: not max_versions, delete_version_after or cas_required.
  allowed_parameters = { "custom_metadata" = [] }
}
