#!/usr/bin/env bash
# Builds the production enclave binary and its root file system, reproducibly.
#
# Run from the root of a source tree (a clean export of one commit):
#   SOURCE_DATE_EPOCH=<commit time> eif-build/enclave-binary.sh OUT_DIR
#
# OUT_DIR receives:
#   strongroom-enclave  static x86_64-unknown-linux-musl, real NSM only (no mock NSM)
#   rootfs.tar          the image's root file system: that binary alone, with fixed owner,
#                       mode and mtime, so the layer is a function of the binary's bytes
#   SHA256SUMS          of both
#
# The same script runs in the pinned Docker build (eif-build/Dockerfile) and in
# `make repro`, so the flags that make the output independent of where and when it was
# built live in one place: every absolute path the compilers could record (this tree,
# CARGO_HOME, the target directory) is rewritten to a fixed prefix, and the only clock the
# build may read is SOURCE_DATE_EPOCH.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: SOURCE_DATE_EPOCH=<seconds> $0 OUT_DIR" >&2
  exit 2
fi
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the commit time: git log -1 --format=%ct)}"
TARGET=x86_64-unknown-linux-musl
src=$(pwd -P)
[ -f "$src/Cargo.lock" ] && [ -d "$src/enclave" ] || {
  echo "enclave-binary.sh: run it from the root of a Strongroom source tree" >&2
  exit 2
}
mkdir -p "$1"
out=$(cd "$1" && pwd -P)
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
target_dir=${CARGO_TARGET_DIR:-$src/target}
mkdir -p "$target_dir"
target_dir=$(cd "$target_dir" && pwd -P)
for p in "$src" "$cargo_home" "$target_dir"; do
  case "$p" in
    *[[:space:]]*) echo "enclave-binary.sh: paths with spaces are not supported: $p" >&2; exit 2 ;;
  esac
done

command -v musl-gcc >/dev/null || {
  echo "enclave-binary.sh: musl-gcc is missing (Debian: apt-get install musl-tools); aws-lc-sys compiles C for the musl target with it" >&2
  exit 2
}
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || {
  echo "enclave-binary.sh: the Rust target $TARGET is missing (rustup target add $TARGET)" >&2
  exit 2
}

# Later maps win in rustc, so the target dir (which may sit inside the tree) comes last.
maps=("$src=/strongroom" "$cargo_home=/cargo" "$target_dir=/target")
rustflags=(-C target-feature=+crt-static)
cflags=()
for m in "${maps[@]}"; do
  rustflags+=("--remap-path-prefix=$m")
  cflags+=("-ffile-prefix-map=$m")
done
# The unit separator keeps each flag whole (CARGO_ENCODED_RUSTFLAGS's format).
CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; echo "${rustflags[*]}")
export CARGO_ENCODED_RUSTFLAGS
export CC_x86_64_unknown_linux_musl=musl-gcc
export CFLAGS_x86_64_unknown_linux_musl="${cflags[*]}"
export CARGO_TARGET_DIR="$target_dir" SOURCE_DATE_EPOCH TZ=UTC LC_ALL=C
unset RUSTFLAGS CFLAGS CXXFLAGS

features=(--no-default-features --features nitro)
# The mock NSM signs attestation documents with a CA it made itself: an image with it
# compiled in could attest to anything. Refuse before building if any crate would switch
# it on (Cargo unifies features across the build)...
attestation_features=$(cargo tree --locked -p strongroom-enclave "${features[@]}" --target "$TARGET" \
  -e normal --prefix none -f '{p} [{f}]' | { grep '^strongroom-attestation ' || true; } | sort -u)
case "$attestation_features" in
  '') echo "enclave-binary.sh: strongroom-attestation is missing from the enclave's dependency tree" >&2
    exit 1 ;;
  *'[mock'* | *',mock'*)
    echo "enclave-binary.sh: the production build would compile the mock NSM in: $attestation_features" >&2
    exit 1 ;;
esac
cargo build --locked --release -p strongroom-enclave "${features[@]}" --target "$TARGET" >&2
bin="$target_dir/$TARGET/release/strongroom-enclave"
# ...and check the binary itself after.
bash "$src/eif-build/check-no-mock.sh" "$bin"

install -m 0755 "$bin" "$out/strongroom-enclave"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
install -m 0755 "$bin" "$rootfs/strongroom-enclave"
chmod 0755 "$rootfs"
# GNU tar with every varying field pinned: names sorted, owner root, mtime the commit's,
# no atime/ctime in pax headers.
tar --sort=name --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$rootfs" -cf "$out/rootfs.tar" .
(cd "$out" && sha256sum strongroom-enclave rootfs.tar > SHA256SUMS)
cat "$out/SHA256SUMS"
