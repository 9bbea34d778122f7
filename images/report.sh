#!/usr/bin/env bash
# images/report.sh STEP IMAGE BINARY: after `buildah bud`, for one image
#   - exports it as an OCI layout under target/images/STEP.oci and measures it: the
#     uncompressed size (what the node stores) and the compressed size (what a pull moves);
#   - fails if the uncompressed size is over the budget (IMAGE_BUDGET bytes, 8 MiB);
#   - writes its SBOM, target/images/STEP.cdx.json (CycloneDX), from the dependency list
#     `cargo auditable` embedded in the very binary the image holds.
set -euo pipefail
step=$1 image=$2 binary=$3
budget=${IMAGE_BUDGET:-8388608}
read -r -a BUILDAH <<<"${BUILDAH:-buildah --storage-driver vfs}"
out=target/images
mkdir -p "$out"
oci="$out/$step.oci"
rm -rf "$oci"
"${BUILDAH[@]}" push -q "$image" "oci:$oci" >/dev/null

blob() { echo "$oci/blobs/sha256/${1#sha256:}"; }
manifest=$(blob "$(grep -o '"digest":"sha256:[0-9a-f]*"' "$oci/index.json" | head -1 | cut -d'"' -f4)")
config=$(grep -o '"config":{[^}]*}' "$manifest" | grep -o '"digest":"sha256:[0-9a-f]*"' | cut -d'"' -f4)
compressed=$(stat -c %s "$manifest")
uncompressed=$(stat -c %s "$(blob "$config")")
for layer in $(grep -o '"layers":\[.*\]' "$manifest" | grep -o '"digest":"sha256:[0-9a-f]*"' | cut -d'"' -f4); do
  compressed=$((compressed + $(stat -c %s "$(blob "$layer")")))
  if gzip -t "$(blob "$layer")" 2>/dev/null; then
    uncompressed=$((uncompressed + $(gzip -dc "$(blob "$layer")" | wc -c)))
  else
    uncompressed=$((uncompressed + $(stat -c %s "$(blob "$layer")")))
  fi
done
compressed=$((compressed + $(stat -c %s "$(blob "$config")")))

# The SBOM: the crates compiled into this binary, as cargo auditable recorded them.
auditable2cdx "$binary" >"$out/$step.cdx.json"
components=$({ grep -o '"bom-ref"' "$out/$step.cdx.json" || true; } | wc -l)

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
printf '%-16s %s uncompressed (%s bytes), %s compressed, budget %s; SBOM %s (%d components)\n' \
  "$step" "$(mib "$uncompressed")" "$uncompressed" "$(mib "$compressed")" "$(mib "$budget")" \
  "$out/$step.cdx.json" "$components"
if [ "$uncompressed" -gt "$budget" ]; then
  echo "images: $image is $uncompressed bytes, over the budget of $budget bytes" >&2
  exit 1
fi
