# snapshot-authority: reads raft snapshots of the whole store (ciphertext under Vault's
# barrier; the unseal material is what opens it), and nothing else: no secret path, no sys
# write. Restoring (snapshot-force) is init-authority's, with a root token from the shares.
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
