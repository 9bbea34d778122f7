# The batch pod: write-vault's and mark-consumed's rights together (create-only data writes,
# reads for judging and acknowledging, provenance PATCH).
path "secret/data/*" {
  capabilities = ["create", "read"]
}
path "secret/metadata/*" {
  capabilities = ["patch"]
  # custom_metadata only: not max_versions, delete_version_after or cas_required.
  allowed_parameters = { "custom_metadata" = [] }
}
