#!/usr/bin/env bash
# `make repro`: builds the production enclave binary and its root file system twice, from
# two clean exports of HEAD in different directories at different times, and fails unless
# both builds are byte for byte identical.
#
# What this proves: nothing from the build's location, the clock or leftover state reaches
# the output (eif-build/enclave-binary.sh pins those). Across machines the compilers must
# also be the same; `make eif` gets that from the base image pinned by digest.
#
# Installs what it needs if missing: the Rust target x86_64-unknown-linux-musl (rustup) and
# musl-gcc (Debian's musl-tools). Env: REPRO_KEEP=1 keeps the work directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$root"
TARGET=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$TARGET"; then
  echo "repro: adding the Rust target $TARGET" >&2
  rustup target add "$TARGET" >&2
fi
if ! command -v musl-gcc >/dev/null; then
  command -v apt-get >/dev/null || {
    echo "repro: musl-gcc is missing and this is not a Debian system: install musl's gcc wrapper (Debian/Ubuntu: musl-tools), or run make repro in a Debian container" >&2
    exit 2
  }
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "repro: musl-gcc is missing: apt-get install musl-tools (as root)" >&2
      exit 2
    }
    sudo=sudo
  fi
  echo "repro: installing Debian's musl-tools" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq musl-tools >&2
fi

commit=$(git rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
export SOURCE_DATE_EPOCH
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "repro: note: the working tree has uncommitted changes; this checks HEAD ($commit) only" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-repro.XXXXXX")
if [ "${REPRO_KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$work"' EXIT
fi
# Different depths and names, so a path that leaked into the output would differ.
trees=("$work/first/strongroom" "$work/second-build/elsewhere/src")
for i in 0 1; do
  tree=${trees[$i]}
  mkdir -p "$tree"
  git archive --format=tar "$commit" | tar -x -C "$tree"
  echo "repro: build $((i + 1)) of 2 in $tree ($(date -u +%H:%M:%S))" >&2
  # Each tree has its own target directory: nothing is shared but the crate downloads.
  (cd "$tree" && umask $((i == 0 ? 22 : 77)) && CARGO_TARGET_DIR="$tree/target" \
    bash eif-build/enclave-binary.sh "$work/out-$i" >/dev/null)
  # The outputs are in out-$i; a release target directory is ~1 GB that CI's disk needs.
  [ "${REPRO_KEEP:-0}" = 1 ] || rm -rf "$tree/target"
done

status=0
for f in strongroom-enclave rootfs.tar; do
  a="$work/out-0/$f" b="$work/out-1/$f"
  if cmp -s "$a" "$b"; then
    echo "repro: $f identical: sha256 $(sha256sum "$a" | cut -d' ' -f1) ($(stat -c %s "$a") bytes)"
  else
    status=1
    echo "repro: $f DIFFERS between the two builds:" >&2
    sha256sum "$a" "$b" >&2
    cmp "$a" "$b" | head -1 >&2 || true
    echo "repro: REPRO_KEEP=1 make repro keeps both under $work for diffoscope" >&2
  fi
done
# Identical builds could still both carry a path of this machine; none may be in the binary.
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
for leak in "$work" "$cargo_home" "$root"; do
  if grep -qaF -- "$leak" "$work/out-0/strongroom-enclave"; then
    status=1
    echo "repro: the binary contains the build machine's path $leak" >&2
  fi
done
[ $status -eq 0 ] && echo "repro: commit $commit, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH: reproducible"
exit $status
