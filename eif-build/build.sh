#!/usr/bin/env bash
# `make eif`: the production Enclave Image File, reproducibly.
#
#   1. exports HEAD (committed files only) as the Docker build context;
#   2. builds the static musl enclave binary and its root file system tar in the pinned
#      image (eif-build/Dockerfile) and copies them out;
#   3. builds a FROM-scratch image holding only that tar (eif-build/image.Dockerfile);
#   4. `nitro-cli build-enclave` turns it into eif-build/out/strongroom-enclave.eif and
#      writes the PCRs to eif-build/out/measurements.json (nitro-cli's own format, which
#      `strongroom kms-policy --pcrs` and `--expect-pcrs` read).
#
# Needs a running Docker engine and nitro-cli (Amazon Linux 2023:
#   dnf install aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel docker).
# Where they are missing it says what is missing and exits 2 without building anything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$root"
out="$root/eif-build/out"

missing=()
if ! command -v docker >/dev/null; then
  missing+=("docker (the Docker CLI and engine)")
elif ! docker info >/dev/null 2>&1; then
  missing+=("a running Docker engine (the docker CLI is installed, but 'docker info' cannot reach a daemon)")
fi
command -v nitro-cli >/dev/null ||
  missing+=("nitro-cli (package aws-nitro-enclaves-cli, plus aws-nitro-enclaves-cli-devel for the kernel and init blobs in /usr/share/nitro_enclaves/blobs)")
if [ ${#missing[@]} -gt 0 ]; then
  {
    echo "make eif: cannot build the enclave image here; missing:"
    for m in "${missing[@]}"; do echo "  - $m"; done
    echo "Without them, 'make repro' still checks that the enclave binary and its root file system build reproducibly."
  } >&2
  exit 2
fi

commit=$(git rev-parse HEAD)
short=$(git rev-parse --short=12 HEAD)
epoch=$(git log -1 --format=%ct HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "make eif: note: uncommitted changes are not in the image; it is built from HEAD ($commit)" >&2
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-eif.XXXXXX")
trap 'rm -rf "$context"' EXIT
git archive --format=tar "$commit" | tar -x -C "$context"
rm -rf "$out"
mkdir -p "$out/build"

echo "make eif: building the enclave binary in the pinned image (commit $short)" >&2
DOCKER_BUILDKIT=1 docker build \
  --file "$context/eif-build/Dockerfile" \
  --build-arg "SOURCE_DATE_EPOCH=$epoch" \
  --target artefacts \
  --output "type=local,dest=$out/build" \
  "$context"
(cd "$out/build" && sha256sum -c SHA256SUMS >&2)

image="strongroom-enclave:$short"
echo "make eif: building $image (root file system only)" >&2
DOCKER_BUILDKIT=1 docker build \
  --file "$context/eif-build/image.Dockerfile" \
  --build-arg "SOURCE_DATE_EPOCH=$epoch" \
  --tag "$image" \
  "$out/build"

echo "make eif: nitro-cli build-enclave" >&2
nitro-cli build-enclave --docker-uri "$image" --output-file "$out/strongroom-enclave.eif" >&2
# describe-eif prints JSON; keep only the measurements, in build-enclave's shape.
nitro-cli describe-eif --eif-path "$out/strongroom-enclave.eif" |
  python3 -c 'import json, sys; d = json.load(sys.stdin); json.dump({"Measurements": d["Measurements"]}, sys.stdout, indent=2); print()' \
  > "$out/measurements.json"

# A second, independent measurement when the strongroom CLI and its EIF tool are built.
strongroom="$root/target/release/strongroom"
[ -x "$strongroom" ] || strongroom="$root/target/debug/strongroom"
if [ -x "$strongroom" ]; then
  "$strongroom" measure --eif "$out/strongroom-enclave.eif" --check "$out/measurements.json" >&2 ||
    { echo "make eif: strongroom measure disagrees with nitro-cli (see above)" >&2; exit 1; }
fi

(cd "$out" && sha256sum strongroom-enclave.eif build/strongroom-enclave build/rootfs.tar > SHA256SUMS)
echo "commit $commit (SOURCE_DATE_EPOCH $epoch)"
cat "$out/SHA256SUMS"
cat "$out/measurements.json"
echo "next: strongroom kms-policy --pcrs $out/measurements.json --role ARN_OF_THE_PARENT_ROLE (docs/deploy.md)" >&2
