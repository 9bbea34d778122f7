#!/usr/bin/env bash
# make image-test: proves each step image holds what its binary needs and nothing else.
#
# For every step image built by `make images` (buildah, vfs storage, as root):
#   1. the templates reference exactly these images, each with `command: [/<step>]`;
#   2. the image config: numeric non-root User 65532:65532, Entrypoint ["/<step>"], OCI labels;
#   3. the exported root filesystem holds exactly /<step> (no shell, no package manager,
#      no /etc/ssl, no libc);
#   4. in a `chroot --userspec=65532:65532` of that root filesystem, plus only what kubelet
#      mounts into a pod (/etc/hosts, /etc/resolv.conf, the service-account token, CA and
#      namespace, a VAULT_CACERT file from a ConfigMap, an emptyDir for outputs), the binary
#      runs `--version` and then one real scenario against loopback test servers reached as
#      kube.test (in-cluster config, TLS with the cluster CA) and vault.test (TLS, VAULT_CACERT):
#      read-bootstrap -> write-vault -> mark-consumed hand one Secret over, rotate rotates a
#      Vault secret, push-secret publishes an internal Secret. write-vault also runs once
#      without VAULT_CACERT and must fail closed (the test CA is in no public root store).
#   5. what Kubernetes and Vault hold afterwards is checked against the scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-read-bootstrap write-vault mark-consumed rotate push-secret}
REGISTRY=${REGISTRY:-ghcr.io/secops}
TAG=${TAG:-0.1.0}
REVISION=${REVISION:-$(git rev-parse --short=12 HEAD)}
read -r -a BUILDAH <<<"${BUILDAH:-buildah --storage-driver vfs}"
SERVERS=${SERVERS:-target/debug/test-servers}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
USERSPEC=65532:65532
CHROOT=$(command -v chroot)

work=$(mktemp -d /tmp/image-test.XXXXXX)
servers_pid=
containers=()
cleanup() {
  if [ -n "$servers_pid" ]; then kill "$servers_pid" 2>/dev/null || true; fi
  for c in "${containers[@]}"; do "${BUILDAH[@]}" rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
ok() { echo "image-test: ok: $*"; }

# 1. The templates reference exactly the images built here, with the entrypoint as command.
refs=$(grep -rhoE 'ghcr\.io/secops/[a-z-]+' templates | sort -u | tr '\n' ' ')
want=$(for s in $STEPS; do echo "$REGISTRY/$s"; done | sort -u | tr '\n' ' ')
[ "$refs" = "$want" ] || fail "templates reference [$refs], images built are [$want]"
for s in $STEPS; do
  grep -q "^  - name: $REGISTRY/$s\$" templates/settings/kustomization.yaml || fail "images knob lacks $s"
  grep -A1 -q "newName: $REGISTRY/$s\$" templates/settings/kustomization.yaml || fail "images knob renames $s"
  uses=$(grep -rh -A1 "image: $REGISTRY/$s:" templates/workflows templates/authority || true)
  [ -n "$uses" ] || fail "no workflow runs $s"
  grep -q "image: $REGISTRY/$s:$TAG\$" <<<"$uses" || fail "workflows use $s with another tag than $TAG"
  bad=$(grep -h 'command:' <<<"$uses" | grep -v "command: \[/$s\]" || true)
  [ -z "$bad" ] || fail "a workflow runs $s with $bad"
done
ok "templates reference $want with tag $TAG and command [/<step>]"

# 2 and 3. Each image's config and root filesystem.
for s in $STEPS; do
  img="$REGISTRY/$s:$TAG"
  fmt() { "${BUILDAH[@]}" inspect --type image --format "$1" "$img"; }
  user=$(fmt '{{.OCIv1.Config.User}}')
  [ "$user" = "$USERSPEC" ] || fail "$img: User is '$user', want $USERSPEC"
  entry=$(fmt '{{range .OCIv1.Config.Entrypoint}}<{{.}}>{{end}}')
  [ "$entry" = "</$s>" ] || fail "$img: Entrypoint is $entry, want </$s>"
  cmd=$(fmt '{{range .OCIv1.Config.Cmd}}<{{.}}>{{end}}')
  [ -z "$cmd" ] || fail "$img: Cmd is $cmd, want none (templates pass args)"
  for kv in "title=$s" "version=$TAG" "revision=$REVISION" \
            "source=https://github.com/secops/secret-lifecycle" "licenses=Apache-2.0"; do
    got=$(fmt "{{index .OCIv1.Config.Labels \"org.opencontainers.image.${kv%%=*}\"}}")
    [ "$got" = "${kv#*=}" ] || fail "$img: label org.opencontainers.image.${kv%%=*} is '$got', want '${kv#*=}'"
  done
  ctr=$("${BUILDAH[@]}" from --pull-never --name "image-test-$s-$$" "$img")
  containers+=("$ctr")
  mnt=$("${BUILDAH[@]}" mount "$ctr")
  files=$(cd "$mnt" && find . -mindepth 1 | sort | tr '\n' ' ')
  [ "$files" = "./$s " ] || fail "$img: the root filesystem holds [$files], want exactly ./$s"
  [ -f "$mnt/$s" ] && [ -x "$mnt/$s" ] || fail "$img: /$s is not an executable file"
  [ "$(stat -c %u:%g "$mnt/$s")" = 0:0 ] || fail "$img: /$s is not owned by root"
  for shell in bin/sh bin/bash bin/busybox usr/bin/apt usr/bin/dpkg sbin/apk etc/ssl; do
    [ ! -e "$mnt/$shell" ] || fail "$img: has /$shell"
  done
  rootfs="$work/$s"
  mkdir "$rootfs"
  cp -a "$mnt/." "$rootfs/"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  ok "$img: User $user, Entrypoint $entry, labels, root filesystem is exactly /$s"
done

# 4. Test servers, then the binaries in chroots shaped like pods.
"$SERVERS" --dir "$work" >"$work/servers.log" 2>&1 &
servers_pid=$!
for _ in $(seq 1 300); do [ -e "$work/ready" ] && break; sleep 0.1; done
[ -e "$work/ready" ] || { cat "$work/servers.log" >&2; fail "test servers did not start"; }
# shellcheck disable=SC1091
. "$work/servers.env"

# pod ROOTFS SERVICE_ACCOUNT: what kubelet puts into a container's root filesystem.
pod() {
  local root=$1 sa=$2 sadir="$1/var/run/secrets/kubernetes.io/serviceaccount"
  mkdir -p "$root/etc" "$sadir" "$root/etc/secops" "$root/tmp"
  printf '127.0.0.1\tlocalhost\n127.0.0.1\tkube.test\n127.0.0.1\tvault.test\n' >"$root/etc/hosts"
  printf 'search secops.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.53\noptions ndots:5\n' \
    >"$root/etc/resolv.conf"
  cp "$work/cluster-ca.pem" "$sadir/ca.crt"
  printf 'secops' >"$sadir/namespace"
  if [ -n "$sa" ]; then cp "$work/$sa.token" "$sadir/token"; else printf 'none' >"$sadir/token"; fi
  cp "$work/vault-ca.pem" "$root/etc/secops/vault-ca.pem"
  rm -rf "$root/tmp/outputs" && mkdir -p "$root/tmp/outputs" && chown "$USERSPEC" "$root/tmp/outputs"
}

# run STEP [ENV=VALUE | unset:ENV ...] -- ARGS...: the step as its pod runs it; stdout/stderr/code in $work.
run() {
  local s=$1; shift
  local envs=(KUBERNETES_SERVICE_HOST=kube.test "KUBERNETES_SERVICE_PORT=$KUBE_PORT"
    SECOPS_OUTPUTS_DIR=/tmp/outputs SECOPS_WORKFLOW_NAME=image-test SECOPS_WORKFLOW_UID=image-test-uid
    SECOPS_CLUSTER_NAME=image-test)
  if [ "$s" != read-bootstrap ]; then
    envs+=("VAULT_ADDR=https://vault.test:$VAULT_PORT" VAULT_CACERT=/etc/secops/vault-ca.pem
      "SECOPS_VAULT_ROLE=secops-$s")
  fi
  while [ "$1" != -- ]; do
    case $1 in
      unset:*) local keep=() e; for e in "${envs[@]}"; do [[ $e == "${1#unset:}="* ]] || keep+=("$e"); done
               envs=("${keep[@]}") ;;
      *) envs+=("$1") ;;
    esac
    shift
  done
  shift
  set +e
  env -i "${envs[@]}" "$CHROOT" --userspec="$USERSPEC" "$work/$s" "/$s" "$@" \
    >"$work/$s.out" 2>"$work/$s.err"
  code=$?
  set -e
}

expect() { # expect STEP CODE WHAT
  [ "$code" = "$2" ] || { cat "$work/$1.err" >&2; fail "$1: $3: exit $code, want $2"; }
  ok "$1: $3 (exit $code)"
}
output() { cat "$work/$1/tmp/outputs/$2"; }

for s in $STEPS; do
  pod "$work/$s" ""
  run "$s" -- --version
  expect "$s" 0 "--version"
  v=$(cat "$work/$s.out")
  grep -q "$VERSION" <<<"$v" && grep -q "$REVISION" <<<"$v" \
    || fail "$s --version printed '$v', want version $VERSION and revision $REVISION"
done

pod "$work/read-bootstrap" ""
run read-bootstrap -- --namespaces apps
expect read-bootstrap 0 "lists bootstrap Secrets over TLS (in-cluster config, kube.test via /etc/hosts)"
[ "$(output read-bootstrap count)" = 1 ] || fail "read-bootstrap found $(output read-bootstrap count) Secrets, want 1"
# The one item, as Argo's withParam passes it to the next steps.
ref=$(output read-bootstrap references.json | sed 's/^\[//; s/\]$//')
grep -q '"name":"db"' <<<"$ref" || fail "references.json: $(output read-bootstrap references.json)"

pod "$work/write-vault" secops-write-vault
run write-vault unset:VAULT_CACERT -- --reference "$ref"
expect write-vault 2 "without VAULT_CACERT the test CA is not trusted: fails closed"
grep -q "TLS to Vault failed" "$work/write-vault.err" || fail "write-vault: $(cat "$work/write-vault.err")"
pod "$work/write-vault" secops-write-vault
run write-vault -- --reference "$ref"
expect write-vault 0 "writes the Secret to Vault over TLS (vault.test, VAULT_CACERT)"
[ "$(output write-vault vault-version)" = 1 ] || fail "write-vault: vault-version $(output write-vault vault-version)"

pod "$work/mark-consumed" secops-mark-consumed
run mark-consumed -- --reference "$ref" --vault-version "$(output write-vault vault-version)" --mode ignore
expect mark-consumed 0 "reads the version back from Vault and marks the Secret consumed"

pod "$work/rotate" secops-rotate
run rotate -- --path apps/rotating --key password=password --rotation-id image-test
expect rotate 0 "rotates a Vault secret"
[ "$(output rotate rotated)" = 1 ] || fail "rotate: rotated $(output rotate rotated)"

pod "$work/push-secret" secops-push-secret
run push-secret -- --namespaces apps
expect push-secret 0 "pushes an internal Secret into Vault"
[ "$(output push-secret pushed)" = 1 ] || fail "push-secret: pushed $(output push-secret pushed)"

# The authority steps that need no login: each reaches Vault over TLS and answers from what
# it finds (the test Vault is initialised and unsealed, and no unseal material is stored).
case " $STEPS " in *" unseal "*)
  pod "$work/unseal" ""
  run unseal --
  expect unseal 0 "reads Vault's seal status over TLS: already unsealed, nothing to do"
  [ "$(output unseal outcome)" = already-unsealed ] || fail "unseal: outcome $(output unseal outcome)"
esac
case " $STEPS " in *" init-authority "*)
  pod "$work/init-authority" ""
  run init-authority -- --plaintext-unseal-keys=true
  expect init-authority 3 "finds Vault initialised over TLS with no stored unseal material: refuses"
  grep -q "no unseal material is stored" "$work/init-authority.err" \
    || fail "init-authority: $(cat "$work/init-authority.err")"
esac

# snapshot-authority: the test Vault is a dev server (no raft storage); its flags are checked
# before Vault is contacted: a snapshot directory that is not there is exit 2.
case " $STEPS " in *" snapshot-authority "*)
  pod "$work/snapshot-authority" ""
  run snapshot-authority -- --snapshot-dir /no-such-volume
  expect snapshot-authority 2 "refuses a snapshot directory that is not mounted, before contacting Vault"
  grep -q "is not a directory" "$work/snapshot-authority.err" \
    || fail "snapshot-authority: $(cat "$work/snapshot-authority.err")"
esac

# 5. What the servers hold afterwards.
kill -TERM "$servers_pid"
wait "$servers_pid" || true
servers_pid=
[ -e "$work/final.env" ] || { cat "$work/servers.log" >&2; fail "test servers wrote no final state"; }
# shellcheck disable=SC1091
. "$work/final.env"
[ "$vault_apps_db_versions" = 1 ] || fail "Vault apps/db has $vault_apps_db_versions versions, want 1"
[ "$kube_apps_db_state" = consumed ] || fail "apps/db state is $kube_apps_db_state, want consumed"
[ "$vault_apps_rotating_versions" = 2 ] || fail "apps/rotating has $vault_apps_rotating_versions versions, want 2"
[ "$vault_internal_apps_api_versions" = 1 ] || fail "internal/apps/api has $vault_internal_apps_api_versions versions, want 1"
ok "Vault and Kubernetes hold what the scenarios did"
echo "image-test: all $(wc -w <<<"$STEPS") images passed"
