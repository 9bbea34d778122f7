# write-vault: create-only. Without `update`, Vault itself refuses any overwrite of an
# existing secret; `read` judges what is there; `patch` records provenance in custom_metadata.
# The paths follow the knobs in settings/ (narrow them to your kv-mount and path-prefix).
path "secret/data/*" {
  capabilities = ["create", "read"]
}
path "secret/metadata/*" {
  capabilities = ["patch"]
  # custom_metadata only: not max_versions, delete_version_after or cas_required.
  allowed_parameters = { "custom_metadata" = [] }
}
