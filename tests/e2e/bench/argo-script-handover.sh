#!/bin/sh
# The baseline `make bench` compares with: the handover as an Argo `script` step usually does
# it today, one process chain per Secret, with sh, curl and jq. It is a careful version
# (create-only write, provenance, read-back comparison, delete with uid/resourceVersion
# preconditions), so the comparison is like for like.
#
#   argo-script-handover.sh discover NAMESPACE     # names of the bootstrap Secrets, one a line
#   argo-script-handover.sh handover NAMESPACE NAME
#
# Environment: KUBE_URL, KUBE_TOKEN, VAULT_ADDR, VAULT_ROLE, SA_TOKEN_FILE.
set -eu

k() { curl -sS -f -H "Authorization: Bearer $KUBE_TOKEN" "$@"; }

case "$1" in
discover)
  k "$KUBE_URL/api/v1/namespaces/$2/secrets?labelSelector=secops.io%2Fclass%3Dbootstrap" |
    jq -r '.items[] | select(.metadata.labels["secops.io/state"] != "consumed") | .metadata.name'
  ;;
handover)
  ns=$2
  name=$3
  jwt=$(cat "$SA_TOKEN_FILE")
  token=$(jq -n -c --arg role "$VAULT_ROLE" --arg jwt "$jwt" '{role: $role, jwt: $jwt}' |
    curl -sS -f -X POST --data-binary @- "$VAULT_ADDR/v1/auth/kubernetes/login" |
    jq -r .auth.client_token)
  v() { curl -sS -f -H "X-Vault-Token: $token" "$@"; }
  secret=$(k "$KUBE_URL/api/v1/namespaces/$ns/secrets/$name")
  uid=$(printf '%s' "$secret" | jq -r .metadata.uid)
  rv=$(printf '%s' "$secret" | jq -r .metadata.resourceVersion)
  data=$(printf '%s' "$secret" | jq -S -c '.data | map_values(@base64d)')
  printf '%s' "$data" | jq -c '{data: ., options: {cas: 0}}' |
    v -X POST --data-binary @- "$VAULT_ADDR/v1/secret/data/$ns/$name" >/dev/null
  jq -n -c --arg src "$ns/$name" --arg uid "$uid" \
    '{custom_metadata: {"secops.io/source": $src, "secops.io/source-uid": $uid}}' |
    v -X PATCH -H 'Content-Type: application/merge-patch+json' --data-binary @- \
      "$VAULT_ADDR/v1/secret/metadata/$ns/$name" >/dev/null
  back=$(v "$VAULT_ADDR/v1/secret/data/$ns/$name" | jq -S -c .data.data)
  if [ "$back" != "$data" ]; then
    echo "read-back of $ns/$name differs; not deleting" >&2
    exit 3
  fi
  jq -n -c --arg uid "$uid" --arg rv "$rv" '{preconditions: {uid: $uid, resourceVersion: $rv}}' |
    k -X DELETE -H 'Content-Type: application/json' --data-binary @- \
      "$KUBE_URL/api/v1/namespaces/$ns/secrets/$name" >/dev/null
  v -X POST "$VAULT_ADDR/v1/auth/token/revoke-self" >/dev/null || true
  ;;
*)
  echo "usage: $0 discover NAMESPACE | handover NAMESPACE NAME" >&2
  exit 2
  ;;
esac
