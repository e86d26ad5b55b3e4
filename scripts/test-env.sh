#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain and prints the path of the
# Python interpreter the interop tests use (and nothing else on stdout: other scripts read
# it). Idempotent and safe to run concurrently. With --system, only the Debian packages
# (what `make eif-tool` and `make lint` need), and nothing is printed.
#   - Debian packages: python3 + venv, openssl, nodejs + npm, postgresql (its server
#     programs), haproxy, and pkg-config + libssl-dev for the EIF tool's openssl-sys (only if
#     missing; needs root or sudo)
#   - a virtualenv at target/test-venv with the independent implementations the tests
#     compare against (cbor2 + cryptography for COSE/X.509, eth-account, web3.py).
#   - the Node clients' dependencies (ethers), from tests/interop/node/package-lock.json,
#     into tests/interop/node/node_modules, where `node tests/interop/node/*.mjs` finds them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/test-venv"
stamp="$venv/.strongroom-deps-$(sha256sum "$root/tests/interop/requirements.txt" | cut -c1-12)"
node_dir="$root/tests/interop/node"
node_stamp="$node_dir/node_modules/.strongroom-deps-$(sha256sum "$node_dir/package-lock.json" | cut -c1-12)"
mkdir -p "$root/target"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# openssl-sys (the EIF tool, eif-build/measure) finds OpenSSL's headers through pkg-config.
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
# The storage conformance suite and the replica tests start PostgreSQL servers of their own
# (initdb + postgres on loopback, strongroom-store's testing module); the package's own
# cluster is not used.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# The replica tests and `make run-cluster` put HAProxy in front of the replicas.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      sudo="sudo"
    else
      echo "test-env: missing ${need_apt[*]}; install them (Debian: apt-get install ${need_apt[*]}), or run this as root or with sudo available" >&2
      exit 1
    fi
  fi
  echo "test-env: installing Debian packages: ${need_apt[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >&2
fi
if [ "${1:-}" = "--system" ]; then
  exit 0
fi
# ethers 6 needs Node 18 or later.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 18 ]; then
  echo "test-env: Node $(node --version 2>/dev/null || echo '(none)') is too old for the interop clients: install Node 18 or later" >&2
  exit 1
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
if [ ! -f "$node_stamp" ]; then
  # npm ci removes node_modules (and the stale stamp in it) and installs the lockfile exactly.
  echo "test-env: installing $node_dir/node_modules" >&2
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  touch "$node_stamp"
fi
echo "$venv/bin/python"
