#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain and prints the path of the
# Python interpreter the interop tests use. Idempotent and safe to run concurrently.
#   - Debian packages: python3 + venv, openssl (only if missing; needs root or sudo)
#   - a virtualenv at target/test-venv with the independent implementations the tests
#     compare against (cbor2 + cryptography for COSE/X.509).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/test-venv"
stamp="$venv/.strongroom-deps-$(sha256sum "$root/tests/interop/requirements.txt" | cut -c1-12)"
mkdir -p "$root/target"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-env: installing Debian packages: ${need_apt[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >&2
fi

exec 9>"$root/target/.test-env.lock"
flock 9
if [ ! -f "$stamp" ]; then
  echo "test-env: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$root/tests/interop/requirements.txt" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
