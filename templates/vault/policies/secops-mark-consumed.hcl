# mark-consumed: reads the version back to acknowledge the handover. Nothing else.
path "secret/data/*" {
  capabilities = ["read"]
}
