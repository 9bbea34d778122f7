# rotate: read and update data (check-and-set), read and patch metadata (intent and
# completion records), revoke old versions, and have Vault generate from password policies.
path "secret/data/*" {
  capabilities = ["read", "update"]
}
path "secret/metadata/*" {
  capabilities = ["read", "patch"]
  # custom_metadata only: not max_versions, delete_version_after or cas_required.
  allowed_parameters = { "custom_metadata" = [] }
}
path "secret/delete/*" {
  capabilities = ["update"]
}
path "secret/destroy/*" {
  capabilities = ["update"]
}
path "sys/policies/password/+/generate" {
  capabilities = ["read"]
}
